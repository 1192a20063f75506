"""Score PPO (the paper's "RL w/ score", CDGPT5-style): APPO on the game score alone.

reward = clip(0.1 * score delta, +-10), as the paper's sample-factory config (--reward_scale 0.1, SF's
reward clip). One run per seed, not per task: the score is every task's shared proxy, and the policy is
evaluated on every task. Trained with MaestroMotif's APPO trainer and network without the skill
one-hot (baselines.appo).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from baselines.appo import TrainedBaseline


class ScorePPO(TrainedBaseline):
    name = "score_ppo"
    per_task = False

    def env_kwargs(self, params: Any, out_dir: Path, seed: int, task: Optional[str]) -> dict:
        return {"reward": "score"}
