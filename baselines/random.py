"""Uniform-random policy over the paper's 28 actions: the floor every method must beat.

It needs no training, no LLM and no GPU, so it calibrates the benchmark itself: a task metric that a
random Monk already scores on says how much of a method's number is luck, and it exercises the whole
evaluate -> aggregate -> report path in seconds.

Repeatability: the evaluation harness tells the policy each episode's seed (`seed_episodes`), and every
env slot draws its actions from a generator seeded by that episode seed alone. So episode k gets the
same actions whether it runs first or after a resume, alone or in a batch of 16.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.env import ACTIONS
from benchmark.io import write_json
from benchmark.method import Method, Policy
from benchmark.seeding import derive_seed

log = logging.getLogger(__name__)


class RandomPolicy(Policy):
    """Each env slot draws actions uniformly from `num_actions` with its own per-episode generator."""

    def __init__(self, num_actions: int = len(ACTIONS), seed: int = 0):
        if num_actions <= 0:
            raise ValueError(f"num_actions must be positive, got {num_actions}")
        self.num_actions = num_actions
        self.seed = seed

    def initial_state(self, num_envs: int) -> list[np.random.Generator]:
        # Fallback generators for harnesses that never call seed_episodes.
        return [np.random.default_rng([self.seed, i]) for i in range(num_envs)]

    def seed_episodes(self, state: list[np.random.Generator], env_ids,
                      episode_seeds) -> list[np.random.Generator]:
        """Called by benchmark.evaluate when env `env_ids[j]` starts the episode of seed
        `episode_seeds[j]`."""
        for i, s in zip(env_ids, episode_seeds):
            state[int(i)] = np.random.default_rng([derive_seed(self.seed, "random-policy"), int(s)])
        return state

    def act(self, obs: dict[str, np.ndarray], state: list[np.random.Generator], episode_start: np.ndarray):
        actions = np.fromiter((int(g.integers(self.num_actions)) for g in state), dtype=np.int64,
                              count=len(state))
        return actions, state


class RandomMethod(Method):
    """fit() only records its settings; the policy acts uniformly at random."""

    name = "random"
    per_task = False

    def __init__(self, *, num_actions: int):  # conf/method/random.yaml
        self.num_actions = int(num_actions)

    def fit(self, params: Any, out_dir: Path, seed: int, task: str | None = None) -> Path:
        out_dir = Path(out_dir)
        write_json(out_dir / "method.json",
                   {"method": self.name, "num_actions": self.num_actions, "seed": seed})
        return out_dir

    def policy(self, artefact: Path | None, task: str, params: Any) -> RandomPolicy:
        return RandomPolicy(self.num_actions)
