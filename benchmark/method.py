"""The interface every method implements (MaestroMotif and each baseline).

A method is named in conf/method/<name>.yaml by `_target_` (Hydra instantiation is the registry), so
the benchmark never imports a method module. See README "Adding a baseline".
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np


class Policy(ABC):
    """Acts in a batch of envs. `state` is whatever the policy carries between steps (RNN state...)."""

    def wrap_env(self, env: gym.Env) -> gym.Env:
        """Wrap each evaluation env (e.g. MaestroMotif's options wrapper); default: unchanged."""
        return env

    def step_envs(self, envs: list[gym.Env], actions: list[int]) -> list[tuple]:
        """env.step(action) for each of the (wrapped) envs, in order. A policy whose wrappers can share work
        across envs overrides it (MaestroMotif: one sandbox call for the whole batch's programs); the
        results must be those of stepping the envs one by one. Default: one by one."""
        return [env.step(action) for env, action in zip(envs, actions)]

    @abstractmethod
    def initial_state(self, num_envs: int) -> Any:
        """The state before the first step of `num_envs` fresh episodes."""

    def seed_episodes(self, state: Any, env_ids: list[int], episode_seeds: list[int]) -> Any:
        """Called when envs `env_ids` start episodes with these seeds: seed the policy's own randomness so
        episode k acts the same however many envs run and after a resume. Default: nothing to seed."""
        return state

    def episode_stats(self, env_id: int) -> dict[str, Any]:
        """Extra numbers for the record of the episode env `env_id` just finished (e.g. LLM tokens)."""
        return {}

    def provenance(self) -> dict[str, dict[str, Any]]:
        """What this policy runs beyond its fit() artefact, named for every evaluation record: one entry per
        part, e.g. {"program": {"path": ..., "sha256": ..., "source": "llm" | "reference",
        "fallback": bool, ...}}. A part with "fallback": true ran a reference stand-in for LLM-written code;
        the tables mark it. Default: nothing beyond the artefact."""
        return {}

    @abstractmethod
    def act(self, obs: dict[str, np.ndarray], state: Any,
            episode_start: np.ndarray) -> tuple[np.ndarray, Any]:
        """Actions (int array, one per env) for a batch of observations stacked along axis 0.

        episode_start[i] is True on the first observation of a new episode in env i: reset its state.
        """


class Method(ABC):
    """fit() trains (or prepares) artefacts; policy() turns them into a Policy for one task."""

    name: str = "method"
    #: True when fit() is needed once per task (task-specific baselines), False when once for all tasks.
    per_task: bool = False

    @abstractmethod
    def fit(self, params: Any, out_dir: Path, seed: int, task: str | None = None) -> Path:
        """Train with the pipeline params; write artefacts under out_dir (atomically); return out_dir."""

    @abstractmethod
    def policy(self, artefact: Path, task: str, params: Any) -> Policy:
        """The policy that evaluates `task` from the artefacts written by fit()."""
