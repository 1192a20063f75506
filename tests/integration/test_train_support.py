"""Shared by the training tests and the training benchmark: tiny real reward models and ci params.

(No tests here; the file name keeps it among the files of the training tests.)
"""
from __future__ import annotations

import numpy as np
import torch

from benchmark.config import compose, defaults, write_params
from benchmark.env import decode_message, make
from maestromotif.reward.model import (QUANTILE_LEVELS, RewardCheckpoint, RewardModel, RewardModelConfig,
                                       diffstats, encode_messages, save_checkpoint, score)

SKILLS = ("discoverer", "descender", "ascender", "worshipper", "merchant")
# A per-skill liking for words in real messages: enough to give each tiny model a different reward.
LIKES = {"discoverer": ("gold", "find", "kill"), "descender": ("stair", "down"), "ascender": ("up", "stair"),
         "worshipper": ("altar", "pray"), "merchant": ("shop", "sell", "buy")}


def real_messages(steps: int = 600, seed: int = 0) -> list[str]:
    """Distinct messages of a uniformly random Monk in the real env."""
    env = make(seed=seed, max_episode_steps=steps)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset()
    seen = {decode_message(obs["message"])}
    for _ in range(steps):
        obs, _, term, trunc, _ = env.step(int(rng.integers(env.action_space.n)))
        seen.add(decode_message(obs["message"]))
        if term or trunc:
            obs, _ = env.reset()
    env.close()
    return sorted(seen)


def train_tiny_reward_models(reward_dir, messages: list[str], epochs: int = 20) -> None:
    """Fit one small RewardModel per skill to a word-liking target on real messages; save as the reward
    stage does (normalisation over unique keys, quantile table)."""
    torch.manual_seed(0)
    changes = [0] * len(messages)
    x, d = torch.from_numpy(encode_messages(messages)), torch.from_numpy(diffstats(changes))
    for skill in SKILLS:
        target = torch.tensor([float(sum(w in m.lower() for w in LIKES[skill])) for m in messages])
        model = RewardModel(defaults("reward.model", RewardModelConfig, conv_channels=16, message_dim=32,
                                     diffstats_dim=16, hidden_dim=32))
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(epochs):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x, d), target)
            loss.backward()
            opt.step()
        raw = score(model, messages, changes)
        mean, var = float(raw.mean()), float(raw.var()) + 1e-6
        normed = (raw - mean) / np.sqrt(var)
        quantiles = {q: float(np.quantile(normed, q)) for q in QUANTILE_LEVELS}
        save_checkpoint(reward_dir / skill / "model.pt", RewardCheckpoint(
            skill=skill, model=model, reward_mean=mean, reward_var=var, quantiles=quantiles,
            metadata={"note": "tiny test model (tests/integration/test_train_support.py)"}))


def ci_params(tmp_path, *overrides: str):
    """ci-profile params with data under tmp_path, written to tmp_path/params.yaml; returns (cfg, path)."""
    cfg = compose("ci", [f"data_dir={tmp_path / 'data'}", *overrides])
    path = tmp_path / "params.yaml"
    write_params(cfg, path)
    return cfg, path


def untrained_skill_run(params, seed: int = 0, method: str = "maestromotif"):
    """A train_skills run dir of MaestroMotif method `method` as deployment reads it (sample-factory
    config.json + one checkpoint), holding the real skill network at its random initialisation: evaluation
    tests need the network, not its training."""
    import json

    import gymnasium as gym
    from sample_factory.cfg.arguments import cfg_dict
    from sample_factory.model.actor_critic import create_actor_critic

    from benchmark.config import section
    from benchmark.env import ACTIONS
    from maestromotif.rl.obs import observation_space
    from benchmark.appo.runner import parse_cfg
    from benchmark.appo.trainer import EXPERIMENT
    from maestromotif.rl.train import RLConfig, run_dir, sf_argv

    run = run_dir(params, seed, method)
    cfg = parse_cfg(sf_argv(section(params, "rl", RLConfig), params, seed, run, method=method))
    (run / EXPERIMENT / "checkpoint_p0").mkdir(parents=True, exist_ok=True)
    (run / EXPERIMENT / "config.json").write_text(json.dumps(cfg_dict(cfg), default=str))
    torch.manual_seed(seed)
    model = create_actor_critic(cfg, observation_space(cfg.mm_crop_mode), gym.spaces.Discrete(len(ACTIONS)))
    torch.save({"model": model.state_dict()},
               run / EXPERIMENT / "checkpoint_p0" / "checkpoint_000000000_0.pth")
    (run / "summary.json").write_text(json.dumps({"seed": seed, "note": "untrained (tests)"}))
    return run
