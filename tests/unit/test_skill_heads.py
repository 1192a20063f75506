"""rl.skill_heads: the paper's network by default, per-skill heads that read the one-hot when asked, and the
learner's sequence path giving what the acting path gives."""
from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from sample_factory.algo.learning.rnn_utils import build_core_out_from_seq, build_rnn_inputs
from sample_factory.model.actor_critic import ActorCriticSharedWeights, create_actor_critic

from benchmark.appo.runner import parse_cfg
from benchmark.config import ConfigError, compose, defaults, root, section
from benchmark.env import ACTIONS
from maestromotif.rl.heads import SkillHeadsActorCritic
from maestromotif.rl.network import ONEHOT_COLUMNS
from maestromotif.rl.obs import NUM_SKILLS, observation_space
from maestromotif.rl.sf_env import register
from maestromotif.rl.train import RLConfig, _check_inputs, sf_argv
from tests.unit.test_network import batch


def model(tmp_path, heads: str | None):
    params = compose("ci", [f"data_dir={tmp_path}", "rl.crop_mode=embed"]
                     + ([f"rl.skill_heads={heads}"] if heads else []))
    register()
    cfg = parse_cfg(sf_argv(section(params, "rl", RLConfig), params, 0, tmp_path / "run"))
    torch.manual_seed(0)
    return create_actor_critic(cfg, observation_space("embed"), gym.spaces.Discrete(len(ACTIONS))).eval()


def skill_batch(n: int, seed: int = 0):
    obs = batch(observation_space("embed"), n=n, seed=seed)
    obs["stats"][:, 30:] = 0.0
    obs["stats"][torch.arange(n), 30 + torch.arange(n) % NUM_SKILLS] = 1.0
    return obs


def test_the_default_is_the_papers_network(tmp_path):
    m = model(tmp_path, None)
    assert type(m) is ActorCriticSharedWeights and m.critic_linear.out_features == 1
    assert defaults("rl", RLConfig).skill_heads == "shared"


@pytest.mark.parametrize("heads", ["value", "policy_value"])
def test_each_skill_is_valued_and_acts_by_its_own_head(tmp_path, heads):
    m = model(tmp_path, heads)
    assert isinstance(m, SkillHeadsActorCritic) and m.critic_linear.out_features == NUM_SKILLS
    obs = skill_batch(10)
    with torch.no_grad():
        head = m.forward_head(obs)
        assert torch.equal(head[:, ONEHOT_COLUMNS], obs["stats"][:, 30:])  # the one-hot, passed unchanged
        core, _ = m.forward_core(head, torch.zeros(10, m.cfg.rnn_size))
        out = m.forward_tail(core, values_only=False, sample_actions=True)
        h, skill = core[:, :-NUM_SKILLS], obs["stats"][:, 30:].argmax(1)
        every_value = m.critic_linear(h)  # (B, skills)
        assert torch.allclose(out["values"], every_value[torch.arange(10), skill])
        assert every_value.std(dim=1).min() > 0  # the skills' heads really differ
        logits = m.policy_linear(h)
        if heads == "policy_value":
            logits = logits.view(10, NUM_SKILLS, -1)[torch.arange(10), skill]
        assert torch.allclose(out["action_logits"], logits) and out["actions"].shape == (10,)
        # the same state under another one-hot: another value (its own head)
        other = {k: v.clone() for k, v in obs.items()}
        other["stats"][:, 30:] = torch.roll(obs["stats"][:, 30:], 1, dims=1)
        moved = m(other, torch.zeros(10, m.cfg.rnn_size), values_only=True)["values"]
        assert not torch.allclose(moved, out["values"])


def test_the_learners_sequence_path_equals_step_by_step_acting(tmp_path):
    """The learner runs the GRU over packed sequences (episodes cut by dones); the one-hot carried past it
    must stay on its own row, or each step would be valued by another step's skill."""
    m = model(tmp_path, "value")
    trajectories, steps = 3, 4
    obs = skill_batch(trajectories * steps, seed=1)
    dones = torch.zeros(trajectories * steps)
    dones[5] = 1.0  # an episode ends inside the second trajectory
    with torch.no_grad():
        head = m.forward_head(obs)
        no_state = torch.zeros(trajectories * steps, m.cfg.rnn_size)
        seq, states, inverse = build_rnn_inputs(head, dones, no_state, steps)
        core_seq, _ = m.forward_core(seq, states)
        learner = m.forward_tail(build_core_out_from_seq(core_seq, inverse), values_only=True,
                                 sample_actions=False)["values"]
        acting = []
        for t in range(trajectories):
            state = torch.zeros(1, m.cfg.rnn_size)
            for i in range(t * steps, (t + 1) * steps):
                core, state = m.forward_core(head[i:i + 1], state)
                acting.append(m.forward_tail(core, values_only=True, sample_actions=False)["values"])
                if dones[i]:
                    state = torch.zeros_like(state)
        assert torch.allclose(learner, torch.stack(acting), atol=1e-5)


def test_an_unknown_choice_names_the_key(tmp_path):
    params = compose("ci", [f"data_dir={tmp_path}", "rl.skill_heads=per_skill"])
    rl = section(params, "rl", RLConfig)
    with pytest.raises(ConfigError, match="rl.skill_heads='per_skill'.*shared"):
        _check_inputs(rl, root(params))


def test_per_skill_heads_refuse_an_encoder_without_the_one_hot(tmp_path):
    params = compose("ci", [f"data_dir={tmp_path}", "rl.skill_heads=value"])
    register()
    argv = sf_argv(section(params, "rl", RLConfig), params, 0, tmp_path / "run")
    cfg = parse_cfg(argv + ["--mm_encoder=trivial"])
    with pytest.raises(ValueError, match="one-hot"):
        create_actor_critic(cfg, observation_space("rgb"), gym.spaces.Discrete(len(ACTIONS)))
