"""Motif (Klissarov et al., 2023) as the paper's per-task baseline: LLM preferences -> reward -> APPO.

Per task:
  1. labels  `python -m maestromotif.annotate --variant motif --task T` -> <data_dir>/labels/motif/<T>/
             (Motif's prompt with a per-task goal, message-only captions; fit() runs it when missing);
  2. reward  one Bradley-Terry model on those labels (maestromotif.reward.train.train_reward_model, the
             `reward` section's sizes) that sees the message only, as Motif's (no depth-change input,
             unlike MaestroMotif's skill models) -> <artefact>/reward/model.pt + metrics.json;
  3. RL      APPO with MaestroMotif's trainer and network without the skill one-hot (baselines.appo) on
             Motif's reward: 0.1 * clip(0.1 * score delta) + 0.1 * r_int, where r_int thresholds the
             normalised reward at its dataset MEDIAN (Motif's --eps_threshold_quantile 0.5, not the skills'
             85th/95th percentile) and divides by the episodic message count ** 3 with an unbounded count
             dict (Motif), not MaestroMotif's 20-message LRU (docs/method.md §4.4, §10.2).
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf

from baselines.appo import TrainedBaseline
from benchmark.config import ConfigError, root, section
from benchmark.io import write_json
from benchmark.seeding import derive_seed

log = logging.getLogger(__name__)

REWARD_DIR = "reward"


def message_only(model_cfg):
    """The reward section's model sizes without the depth-change branch: Motif's r_phi(message)."""
    return dataclasses.replace(model_cfg, use_diffstats=False)


class Motif(TrainedBaseline):
    name = "motif"
    per_task = True

    # values: conf/method/motif.yaml (the one place for them; benchmark.evaluate.build_method passes them)
    def __init__(self, *, threshold_quantile: float, llm_coef: float, extrinsic_coef: float,
                 count_exponent: float, message_lru_size: int, annotate_missing: bool, trainer: dict):
        super().__init__(trainer=trainer)
        self.intrinsic = {"threshold_quantile": {}, "default_threshold_quantile": float(threshold_quantile),
                          "llm_coef": float(llm_coef), "extrinsic_coef": float(extrinsic_coef),
                          "count_exponent": float(count_exponent), "message_lru_size": int(message_lru_size)}
        self.annotate_missing = bool(annotate_missing)

    def labels(self, params: Any, task: str):
        """The task's Motif labels; annotates them first when missing and `annotate_missing`."""
        from maestromotif.annotate import annotate
        from maestromotif.labels import labelled_pairs, motif_label_dir

        folder = motif_label_dir(root(params).data_dir, task)
        if not folder.exists() or not any(folder.iterdir()):
            if not self.annotate_missing:
                raise ConfigError(f"no Motif labels for {task!r} at {folder}: run "
                                  f"`python -m maestromotif.annotate --variant motif --task {task}`")
            log.info("motif: no labels for %s yet; annotating (maestromotif.annotate --variant motif)", task)
            annotate(params, variant="motif", task=task)
        return labelled_pairs(folder), folder

    def fit_reward(self, params: Any, out_dir: Path, task: str) -> Path:
        from maestromotif.reward.model import save_checkpoint
        from maestromotif.reward.train import RewardConfig, annotator_id, train_reward_model

        top = root(params)
        cfg: RewardConfig = OmegaConf.to_object(section(params, "reward", RewardConfig))
        cfg.model = message_only(cfg.model)
        pairs, folder = self.labels(params, task)
        name = f"motif/{task}"
        metadata = {"profile": top.profile, "root_seed": top.root_seed, "task": task, "labels": str(folder),
                    "annotator": annotator_id(pairs, params, folder),
                    "model_config": dataclasses.asdict(cfg.model), "lr": cfg.lr, "batch_size": cfg.batch_size,
                    "epochs": cfg.epochs}
        # the reward model is per task, not per RL seed (as MaestroMotif's per skill)
        ckpt, metrics = train_reward_model(pairs, name, cfg,
                                           derive_seed(top.root_seed, "reward", "motif", task),
                                           metadata=metadata)
        path = Path(out_dir) / REWARD_DIR / "model.pt"
        save_checkpoint(path, ckpt)
        write_json(path.parent / "metrics.json", metrics)
        log.info("motif (%s): reward model on %d pairs, held-out accuracy %s", task, len(pairs),
                 metrics.get("heldout_accuracy"))
        return path

    def env_kwargs(self, params: Any, out_dir: Path, seed: int, task: Optional[str]) -> dict:
        path = self.fit_reward(params, out_dir, task)
        return {"reward": "intrinsic", "intrinsic": {"kind": "checkpoint", "path": str(path.resolve()),
                                                     "config": self.intrinsic}}
