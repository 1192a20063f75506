"""The task registry: every task by name (the paper's 9, benchmark.trackers, and the small variants,
benchmark.variants), its conf/task file, and the wrapper that runs its tracker on an env.

    env = make(task="delphi", seed=0)          # or wrap_task(make(seed=0), "delphi")
    obs, info = env.reset()
    ... info["task"] == {"name", "category", "metric", "value", "success"}
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from benchmark.trackers import (  # noqa: F401  re-exported: the task API is benchmark.tasks
    BASE_PRICES, CATEGORIES, EXIT_PROMPT_WORD, GNOMISH_MINES_DNUM, METRICS, PAPER_TASKS, TASK_CONF_DIR,
    BUCIdentified, Delphi, DiscoveryHunger, GnomishMines, GoldenExit, LevelUpSell, Minetown,
    NavigationTask, PriceIdentified, Task, TaskConfig, TaskError, Transactions, price_identifies,
    read_task_config)
from benchmark.variants import VARIANT_TASKS

TASKS: dict[str, type[Task]] = dict(PAPER_TASKS)
for _name, _cls in VARIANT_TASKS.items():
    if TASKS.get(_name, _cls) is not _cls:
        raise TaskError(f"task name {_name!r} is registered twice")
TASKS.update(VARIANT_TASKS)  # the one task registry: make(task=...), load_task_config, evaluate


def _check_name(name: str) -> None:
    if name not in TASKS:
        from benchmark.config import did_you_mean

        raise TaskError(f"unknown task {name!r}{did_you_mean(name, list(TASKS))}; "
                        f"valid tasks: {', '.join(TASKS)}")


def load_task_config(name: str) -> TaskConfig:
    """Read and validate conf/task/<name>.yaml."""
    _check_name(name)
    return read_task_config(name, TASKS[name], TASK_CONF_DIR)


class TaskWrapper(gym.Wrapper):
    """Runs a task tracker on every transition; adds info["task"] and ends the episode on success."""

    def __init__(self, env: gym.Env, task: Task):
        super().__init__(env)
        self.task = task
        self._prev: dict[str, np.ndarray] = {}

    def _info(self) -> dict[str, Any]:
        t = self.task
        return {"name": t.name, "category": t.category, "metric": t.metric, "value": t.value,
                "success": t.success}

    def _remember(self) -> None:
        # NLE re-uses its arrays between steps; keep the little the trackers may read of the past.
        last = self.env.unwrapped.last_observation
        base = self.env.unwrapped
        self._prev = {"message": last[base._message_index].copy(),
                      "blstats": last[base._blstats_index].copy()}

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.task.reset(obs)
        self._remember()
        info["task"] = self._info()
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.task.update(self._prev, action, obs, info, self.env.unwrapped)
        self._remember()
        info["task"] = self._info()
        return obs, reward, terminated or self.task.done, truncated, info


def wrap_task(env: gym.Env, name: str) -> gym.Env:
    """`env` (a benchmark.env.make env) with the tracker of task `name`."""
    _check_name(name)
    return TaskWrapper(env, TASKS[name](load_task_config(name)))
