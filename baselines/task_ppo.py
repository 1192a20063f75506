"""Task PPO (the paper's privileged "RL w/ task reward + score"): APPO per task on the tracker's reward.

reward = clip(0.1 * score delta, +-10) + task_coef * (task value after the step - before it)

The paper gives neither the weighting nor the task reward (docs/method.md §12.10). Ours: the task
reward is the increment of the task tracker's value (benchmark.tasks: 1 at success for success tasks,
+1 per counted event for count tasks), weighted by task_coef = 10, the size of the score term's clip:
one task event is worth as much as the largest score step, and 2x a descent (50 points -> 5), so the
task dominates the score without the score vanishing. The training env carries the tracker, so an
episode also ends on success, as in evaluation. Per task; MaestroMotif's APPO trainer and network
without the skill one-hot (baselines.appo).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from baselines.appo import TrainedBaseline
from benchmark.config import ConfigError


class TaskPPO(TrainedBaseline):
    name = "task_ppo"
    per_task = True

    # values: conf/method/task_ppo.yaml (benchmark.evaluate.build_method passes them)
    def __init__(self, *, task_coef: float, trainer: dict):
        super().__init__(trainer=trainer)
        if task_coef <= 0:
            raise ConfigError(f"task_ppo.task_coef must be > 0 (the task reward's weight), got {task_coef}")
        self.task_coef = float(task_coef)

    def env_kwargs(self, params: Any, out_dir: Path, seed: int, task: Optional[str]) -> dict:
        return {"reward": "task", "track_task": True, "task_coef": self.task_coef}
