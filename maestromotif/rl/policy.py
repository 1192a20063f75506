"""Deployment: the trained skill network + a task's program over skills, evaluated zero-shot.

    policy = SkillPolicy.from_run("data/fit/maestromotif/seed0", program="gnomish")
    env = policy.wrap_env(benchmark.env.make(task="gnomish"))   # + OptionsWrapper + network inputs
    actions, state = policy.act(stacked_obs, policy.initial_state(n), episode_start)

The network is rebuilt from the run's sample-factory configuration (sf/config.json) through the same
registration as training, and its weights are read from the latest checkpoint. It runs on `device`
(benchmark.evaluate passes the `evaluate.device` setting: "auto" is the GPU when there is one); the envs
and the program stay on the CPU, so only the observations go to the device and the actions come back.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from benchmark.appo.patches import allow_checkpoint_globals
from benchmark.appo.trainer import EXPERIMENT, checkpoints
from benchmark.env import ACTIONS
from benchmark.method import Policy
from benchmark.seeding import derive_seed
from maestromotif.rl.obs import PolicyObservation, observation_space
from maestromotif.rl.sf_env import register, wrap_skills

log = logging.getLogger(__name__)


class PolicyLoadError(RuntimeError):
    """A trained run's config or checkpoint cannot be read; the message names the file and the fix."""


def load_actor_critic(run: Path, checkpoint: Path | None = None, device: str | torch.device = "cpu",
                      retrain: str | None = None):
    """(model in eval mode on `device`, its sample-factory cfg, the checkpoint path) of a training run.
    `retrain`: how to redo the run, for the error on a corrupt file (default: the skills' training)."""
    from sample_factory.model.actor_critic import create_actor_critic
    from sample_factory.utils.attr_dict import AttrDict

    cfg_path = run / EXPERIMENT / "config.json"
    if not cfg_path.exists():
        raise FileNotFoundError(f"{cfg_path} missing: {run} is not a finished train_skills run "
                                "(python -m maestromotif.rl.train --seed <k>)")
    retrain = retrain or (f"delete {run} and train it again (`python -m maestromotif.rl.train --seed "
                          "<seed>`, or `dvc repro`)")
    try:
        cfg = AttrDict(json.loads(cfg_path.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PolicyLoadError(f"{cfg_path} is corrupt ({type(e).__name__}: {e}); {retrain}") from e
    found = checkpoints(run)
    if checkpoint is None:
        if not found:
            raise FileNotFoundError(f"no checkpoint under {run / EXPERIMENT / 'checkpoint_p0'}; train first")
        checkpoint = found[-1]
    register()
    model = create_actor_critic(cfg, observation_space(cfg.mm_crop_mode), gym.spaces.Discrete(len(ACTIONS)))
    allow_checkpoint_globals()  # only tensors, builtins and numpy scalars are unpickled (weights_only)
    try:
        state = torch.load(checkpoint, map_location=device, weights_only=True)
    except Exception as e:  # truncated zip, overwritten bytes...: torch raises several types
        older = [c for c in found if c != checkpoint]
        fix = (f"delete it to use the previous checkpoint {older[-1].name} instead (an earlier point of the "
               f"same training), or {retrain}" if older else retrain)
        raise PolicyLoadError(f"policy checkpoint {checkpoint} is corrupt or truncated ({type(e).__name__}: "
                              f"{str(e)[:200]}); {fix}") from e
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        if "stats_mlp" in str(e):  # the stats MLP gained its fourth linear layer (the official depth)
            raise RuntimeError(f"{checkpoint} has the old 3-layer stats MLP and cannot be loaded by this "
                               "network; retrain the skills (python -m maestromotif.rl.train)") from e
        raise
    model.to(device).eval()
    return model, cfg, checkpoint


class SkillPolicy(Policy):
    """Acts in a batch of envs with the skill network; the skill comes from the task program's wrapper."""

    def __init__(self, model, cfg, program, deterministic: bool = False, seed: int = 0,
                 provenance: dict | None = None):
        """program: a maestromotif.options.program.Program, or a name/codegen folder for load_program."""
        self.model, self.cfg = model, cfg
        self.program, self.deterministic, self.seed = program, deterministic, seed
        self._provenance = dict(provenance or {})
        self.keys = tuple(observation_space(cfg.mm_crop_mode).spaces)
        self.device = next(model.parameters()).device
        self._envs = 0
        # One action sampler per env slot, reseeded by seed_episodes from the episode's seed: episode k draws
        # the same actions whichever slot plays it, however many envs run, and after a resume.
        self._samplers: list[torch.Generator | None] = []

    @classmethod
    def from_run(cls, run: str | Path, program, deterministic: bool = False, seed: int = 0,
                 checkpoint: str | Path | None = None, provenance: dict | None = None,
                 device: str | torch.device = "cpu") -> "SkillPolicy":
        model, cfg, ckpt = load_actor_critic(Path(run), Path(checkpoint) if checkpoint else None, device)
        log.info("skill policy from %s with program %s on %s", ckpt, getattr(program, "name", program),
                 device)
        return cls(model, cfg, program, deterministic, seed, provenance)

    def provenance(self) -> dict:
        return {k: dict(v) for k, v in self._provenance.items()}

    def wrap_env(self, env: gym.Env) -> gym.Env:
        self._envs += 1  # each env's program gets its own random stream
        env = wrap_skills(env, self.program, seed=self.seed * 1000 + self._envs)
        return PolicyObservation(env, self.cfg.mm_crop_mode, keep_raw=True)

    def step_envs(self, envs: list[gym.Env], actions: list[int]) -> list[tuple]:
        from maestromotif.options.wrapper import step_batch

        return step_batch(envs, actions)  # one sandbox round trip for the batch's programs, not one per env

    def initial_state(self, num_envs: int) -> torch.Tensor:
        self._samplers = [None] * num_envs
        return torch.zeros(num_envs, self.cfg.rnn_size, device=self.device)

    def seed_episodes(self, state: Any, env_ids: list[int], episode_seeds: list[int]) -> Any:
        for i, seed in zip(env_ids, episode_seeds):
            self._samplers[i] = torch.Generator().manual_seed(derive_seed(seed, "actions"))
        return state

    @torch.inference_mode()
    def act(self, obs: dict[str, np.ndarray], state: Any, episode_start: np.ndarray):
        state = state.clone()
        start = torch.from_numpy(np.asarray(episode_start, dtype=bool)).to(state.device)
        state[start] = 0.0  # new episode: fresh GRU state
        inputs = {k: torch.from_numpy(np.ascontiguousarray(obs[k])).to(self.device) for k in self.keys}
        seeded = bool(self._samplers) and all(g is not None for g in self._samplers)
        if self.deterministic or seeded:  # only the logits: sample-factory's draw and log-probs go unused
            model = self.model
            core, new_state = model.forward_core(model.forward_head(model.normalize_obs(inputs)), state)
            logits = model.forward_tail(core, values_only=False, sample_actions=False)["action_logits"]
            actions = logits.argmax(dim=-1) if self.deterministic else self._sample(logits)
        else:  # a harness that never seeds episodes: sample-factory's own draw (process-wide RNG)
            out = self.model(self.model.normalize_obs(inputs), state)
            actions, new_state = out["actions"], out["new_rnn_states"]
        return actions.reshape(-1).cpu().numpy().astype(np.int64), new_state

    def _sample(self, logits: torch.Tensor) -> torch.Tensor:
        """One categorical draw per env from its own sampler (on the CPU: the same draws on every device)."""
        probs = torch.softmax(logits.reshape(len(self._samplers), -1).float().cpu(), dim=-1)
        return torch.stack([torch.multinomial(p, 1, generator=g)[0] for p, g in zip(probs, self._samplers)])
