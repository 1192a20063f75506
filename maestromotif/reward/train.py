"""The `reward` stage: fit one Bradley-Terry reward model per skill on the annotated pairs.

    python -m maestromotif.reward.train --skill descender      # or --skill all
    python -m maestromotif.reward.train --method maestromotif_oracle --skill all   # on the oracle's labels

reads   the skill's labelled pairs (maestromotif.labels.labelled_pairs; path `reward.labels`)
writes  <data_dir>/reward/<skill>/model.pt       weights, normalisation mean/var, quantile table, provenance
        <data_dir>/reward/<skill>/metrics.json   per-epoch loss and accuracy (train, held-out), pairs/s
(--method maestromotif_oracle: labels_oracle/ and reward_oracle/, maestromotif.chain; same seeds, so the two
methods' reward models differ by their labels only)

The algorithm (docs/method.md §4.2-4.3):
  * each pair (s1, s2, y): rewards r1 = r_phi(s1), r2 = r_phi(s2); P[s1 > s2] = softmax(r1, r2)[0];
  * loss = cross-entropy against soft targets: first (1, 0), second (0, 1), tie (0.5, 0.5);
  * Adam, lr 1e-5, 1000 pairs per batch, 20 epochs (paper); sizes per profile;
  * afterwards, r_phi over the unique (message, depth change) keys of the dataset gives the
    normalisation mean/variance and the table of normalised-reward quantiles (5th..95th) used in RL.
Beyond the paper: a seeded held-out split, with accuracy on its non-tie pairs logged every epoch, so a
bad annotator (or a model that learns nothing) is visible; and resume after a kill at epoch granularity.

Plumbing: every random choice (split, init, shuffling per epoch) derives from root_seed, so a resumed
run ends with the same weights as an uninterrupted one. Identical keys inside a batch are encoded once
(NetHack messages repeat a lot); the gradient is the same as encoding every side separately.

Size (~420 lines): the Bradley-Terry fit, its hold-out metrics and the normalisation the intrinsic
reward reads make up one checkpoint; the network is maestromotif.reward.model.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from tqdm import tqdm

from benchmark.config import ConfigError, did_you_mean, load_params, root, section
from benchmark.io import atomic_path, write_json
from benchmark.logs import setup_logging
from benchmark.provenance import sha256_hex
from maestromotif.prompts import check_skills
from benchmark.seeding import derive_seed
from maestromotif import chain
from maestromotif.labels import labelled_pairs
from maestromotif.reward.intrinsic import IntrinsicConfig
from maestromotif.reward.model import (
    FORMAT_VERSION,
    RewardCheckpoint,
    RewardModel,
    RewardModelConfig,
    diffstats,
    encode_messages,
    reward_statistics,
    save_checkpoint,
    score,
)

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("message_1", "message_2", "dlvl_change_1", "dlvl_change_2", "label")
SOFT_TARGETS = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], dtype=np.float32)  # by label 0/1/2


@dataclass
class RewardConfig:
    """The `reward` section of the params (values: conf/reward/default.yaml, the paper's)."""

    lr: float
    batch_size: int  # pairs
    epochs: int
    holdout_fraction: float  # not in the paper (it had no validation split)
    labels: str  # passed to maestromotif.labels.labelled_pairs
    out_dir: str  # <out_dir>/<skill>/model.pt
    score_batch_size: int
    device: str  # "auto": cuda when available, else cpu
    torch_threads: int  # CPU threads for torch in this stage; 0 keeps torch's default
    model: RewardModelConfig
    intrinsic: IntrinsicConfig


def intrinsic_config(params) -> IntrinsicConfig:
    """The `reward.intrinsic` block of the pipeline params, validated (it lives in the reward section)."""
    return OmegaConf.to_object(section(params, "reward", RewardConfig)).intrinsic


class LabelsError(ValueError):
    """The labelled pairs are missing or malformed; the message says what and how to fix it."""


# --- data ------------------------------------------------------------------------------------------

def load_labels(path: str | Path) -> pd.DataFrame:
    """The labelled pairs of one skill, through the one reader of label files."""
    path = Path(path)
    if not path.exists():
        raise LabelsError(f"no labelled pairs at {path}: run the annotate stage for this skill first")
    return labelled_pairs(path)


def check_pairs(pairs: pd.DataFrame) -> pd.DataFrame:
    """Validate the input contract; return a clean copy (str messages, int changes and labels)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in pairs.columns]
    if missing:
        raise LabelsError(f"labelled pairs lack column(s) {missing}; expected {list(REQUIRED_COLUMNS)}")
    if len(pairs) == 0:
        raise LabelsError("no labelled pairs (all unknown?): check the annotation stage's parse rate")
    out = pairs.copy()
    for c in ("message_1", "message_2"):
        out[c] = out[c].fillna("").astype(str)
    for c in ("dlvl_change_1", "dlvl_change_2", "label"):
        out[c] = pd.to_numeric(out[c], errors="raise").astype(np.int64)
    bad = out[~out["label"].isin([0, 1, 2])]
    if len(bad):
        raise LabelsError(f"{len(bad)} pair(s) have labels outside {{0, 1, 2}}, e.g. {bad['label'].iloc[0]}; "
                          "unknown (3) rows must be dropped by labelled_pairs")
    for c in ("dlvl_change_1", "dlvl_change_2"):
        if not out[c].isin([-1, 0, 1]).all():
            raise LabelsError(f"column {c} must be the sign of the depth change in {{-1, 0, 1}}")
    return out.reset_index(drop=True)


@dataclass
class KeyTable:
    """The distinct (message, depth change) keys of a pair set, encoded once, and each side's key index."""

    messages: list[str]
    changes: np.ndarray
    encoded: torch.Tensor  # [K, 256] uint8
    diffstats: torch.Tensor  # [K, 5]
    side_1: np.ndarray  # [N] key index of the first sample of each pair
    side_2: np.ndarray

    def to(self, device: torch.device) -> "KeyTable":
        self.encoded, self.diffstats = self.encoded.to(device), self.diffstats.to(device)
        return self

    @classmethod
    def build(cls, pairs: pd.DataFrame) -> "KeyTable":
        keys = pd.concat([
            pairs[["message_1", "dlvl_change_1"]].set_axis(["m", "d"], axis=1),
            pairs[["message_2", "dlvl_change_2"]].set_axis(["m", "d"], axis=1),
        ], ignore_index=True)
        codes, uniques = pd.MultiIndex.from_frame(keys).factorize()
        messages = [m for m, _ in uniques]
        changes = np.array([d for _, d in uniques], dtype=np.int64)
        n = len(pairs)
        return cls(messages, changes, torch.from_numpy(encode_messages(messages)),
                   torch.from_numpy(diffstats(changes)), codes[:n], codes[n:])


def pairs_fingerprint(pairs: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(pairs[list(REQUIRED_COLUMNS)], index=False).to_numpy()
    return sha256_hex(hashed.tobytes())


def split_indices(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, held-out) split; at least one pair on each side when n >= 2 and fraction > 0."""
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"reward.holdout_fraction must be in [0, 1), got {fraction}")
    perm = np.random.default_rng(derive_seed(seed, "split")).permutation(n)
    n_held = min(max(int(round(fraction * n)), 1 if fraction > 0 and n >= 2 else 0), n - 1)
    return np.sort(perm[n_held:]), np.sort(perm[:n_held])


# --- training --------------------------------------------------------------------------------------

def pair_rewards(model: RewardModel, keys: KeyTable, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """r_phi of both sides of the pairs `idx`, encoding each distinct key of the batch once."""
    both = np.concatenate([keys.side_1[idx], keys.side_2[idx]])
    uniq, inverse = np.unique(both, return_inverse=True)
    device = keys.encoded.device
    u = torch.from_numpy(uniq).to(device)
    r = model(keys.encoded[u], keys.diffstats[u])[torch.from_numpy(inverse).to(device)]
    return r[: len(idx)], r[len(idx):]


def bradley_terry_loss(r1: torch.Tensor, r2: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logp = F.log_softmax(torch.stack([r1, r2], dim=1), dim=1)
    return -(targets * logp).sum(dim=1).mean()


def accuracy(r1: np.ndarray, r2: np.ndarray, labels: np.ndarray) -> tuple[float | None, int]:
    """Agreement with the labels on non-tie pairs (None when there are none), and how many there were."""
    strict = labels != 2
    if not strict.any():
        return None, 0
    pred = np.where(r1 > r2, 0, 1)
    return float(np.mean(pred[strict] == labels[strict])), int(strict.sum())


@torch.inference_mode()
def evaluate(model: RewardModel, keys: KeyTable, idx: np.ndarray, labels: np.ndarray, batch: int) -> dict:
    if len(idx) == 0:
        return {"loss": None, "accuracy": None, "non_tie": 0}
    model.eval()
    r1s, r2s, losses = [], [], []
    for s in range(0, len(idx), batch):
        b = idx[s:s + batch]
        r1, r2 = pair_rewards(model, keys, b)
        targets = torch.from_numpy(SOFT_TARGETS[labels[b]]).to(r1.device)
        losses.append(float(bradley_terry_loss(r1, r2, targets)) * len(b))
        r1s.append(r1.cpu().numpy())
        r2s.append(r2.cpu().numpy())
    acc, n = accuracy(np.concatenate(r1s), np.concatenate(r2s), labels[idx])
    return {"loss": sum(losses) / len(idx), "accuracy": acc, "non_tie": n}


def normalisation(model: RewardModel, keys: KeyTable, batch: int) -> tuple[float, float, dict[float, float]]:
    """Mean and variance of r_phi over the unique keys, and quantiles of the normalised reward."""
    return reward_statistics(score(model, keys.messages, list(keys.changes), batch_size=batch))


def train_reward_model(
    pairs: pd.DataFrame,
    skill: str,
    cfg: RewardConfig,
    seed: int,
    metadata: dict[str, Any] | None = None,
    resume_path: Path | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
) -> tuple[RewardCheckpoint, dict]:
    """Fit r_phi for `skill`; return the checkpoint (not yet written) and the metrics.

    resume_path: where the epoch state is kept, so a killed run continues after its last whole epoch.
    on_epoch_end: called with the epoch number after its state is saved (tests use it to interrupt).
    """
    pairs = check_pairs(pairs)
    model_cfg = cfg.model if isinstance(cfg.model, RewardModelConfig) else RewardModelConfig(**cfg.model)
    if not model_cfg.use_diffstats:  # a message-only model: one key per message (normalisation, quantiles)
        pairs = pairs.assign(dlvl_change_1=0, dlvl_change_2=0)
    labels = pairs["label"].to_numpy()
    device = resolve_device(cfg.device)
    keys = KeyTable.build(pairs).to(device)
    train_idx, held_idx = split_indices(len(pairs), cfg.holdout_fraction, seed)
    torch.manual_seed(derive_seed(seed, "init"))
    model = RewardModel(model_cfg).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    fingerprint = sha256_hex(json.dumps(  # not sorted: model_cfg's keys in field order, as always
        [pairs_fingerprint(pairs), skill, seed, cfg.lr, cfg.batch_size, cfg.epochs, cfg.holdout_fraction,
         dataclasses.asdict(model_cfg)]))

    history: list[dict] = []
    start_epoch = 0
    if resume_path is not None and resume_path.exists():
        state = torch.load(resume_path, map_location="cpu", weights_only=True)
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])  # optimiser state follows the params' device
            optimiser.load_state_dict(state["optimiser"])
            history = json.loads(state["history"])
            start_epoch = int(state["epoch"])
            log.info("%s: resuming after epoch %d of %d", skill, start_epoch, cfg.epochs)
        else:
            log.info("%s: ignoring a resume file from other inputs or settings", skill)

    hist = np.bincount(labels, minlength=3)
    log.info("%s: %d pairs (first %d, second %d, tie %d), %d distinct keys; %d train / %d held out",
             skill, len(pairs), hist[0], hist[1], hist[2], len(keys.messages), len(train_idx), len(held_idx))
    train_time, train_pairs = sum(h["train_seconds"] for h in history), sum(h["train_pairs"] for h in history)
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        shuffle = np.random.default_rng(derive_seed(seed, "epoch", epoch))  # per epoch: resume-safe
        order = train_idx[shuffle.permutation(len(train_idx))]
        t0, losses, r1s, r2s = time.perf_counter(), [], [], []
        batches = range(0, len(order), cfg.batch_size)
        for s in tqdm(batches, desc=f"{skill} epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=None):
            b = order[s:s + cfg.batch_size]
            r1, r2 = pair_rewards(model, keys, b)
            loss = bradley_terry_loss(r1, r2, torch.from_numpy(SOFT_TARGETS[labels[b]]).to(device))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()) * len(b))
            r1s.append(r1.detach().cpu().numpy())
            r2s.append(r2.detach().cpu().numpy())
        seconds = time.perf_counter() - t0
        train_acc, _ = accuracy(np.concatenate(r1s), np.concatenate(r2s), labels[order])
        held = evaluate(model, keys, held_idx, labels, cfg.score_batch_size)
        record = {
            "epoch": epoch + 1,
            "train_loss": sum(losses) / len(order),
            "train_accuracy": train_acc,
            "heldout_loss": held["loss"],
            "heldout_accuracy": held["accuracy"],
            "heldout_non_tie": held["non_tie"],
            "train_pairs": int(len(order)),
            "train_seconds": seconds,
            "pairs_per_s": len(order) / seconds if seconds > 0 else None,
        }
        history.append(record)
        train_time, train_pairs = train_time + seconds, train_pairs + len(order)
        log.info("%s epoch %d/%d: train loss %.4f acc %s | held-out loss %s acc %s (%d non-tie) | "
                 "%.0f pairs/s",
                 skill, epoch + 1, cfg.epochs, record["train_loss"], _fmt(train_acc), _fmt(held["loss"]),
                 _fmt(held["accuracy"]), held["non_tie"], record["pairs_per_s"] or 0)
        if resume_path is not None:
            with atomic_path(resume_path) as tmp:
                torch.save({"fingerprint": fingerprint, "epoch": epoch + 1, "model": model.state_dict(),
                            "optimiser": optimiser.state_dict(), "history": json.dumps(history)}, tmp)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1)

    mean, var, quantiles = normalisation(model, keys, cfg.score_batch_size)
    final_held = history[-1] if history else {}
    metrics = {
        "skill": skill,
        "seed": seed,
        "pairs": int(len(pairs)),
        "train_pairs": int(len(train_idx)),
        "heldout_pairs": int(len(held_idx)),
        "labels": {"first": int(hist[0]), "second": int(hist[1]), "tie": int(hist[2])},
        "distinct_keys": len(keys.messages),
        "heldout_accuracy": final_held.get("heldout_accuracy"),
        "train_accuracy": final_held.get("train_accuracy"),
        "pairs_per_s": train_pairs / train_time if train_time > 0 else None,
        "reward_mean": mean,
        "reward_var": var,
        "quantiles": {f"{q:.2f}": v for q, v in quantiles.items()},
        "history": history,
        "fingerprint": fingerprint,
        **(metadata or {}),
    }
    ckpt_meta = json.loads(json.dumps({k: v for k, v in metrics.items() if k != "history"}, default=str))
    ckpt_meta["format_version"] = FORMAT_VERSION
    ckpt = RewardCheckpoint(skill, model.cpu().eval(), mean, var, quantiles, ckpt_meta)
    return ckpt, metrics


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


# --- stage -----------------------------------------------------------------------------------------

def annotator_id(pairs: pd.DataFrame, params, labels_path: str | Path | None = None) -> str:
    """Who labelled the pairs: the labels' model id column, else the annotate stage's metrics.json
    beside the labels, else the params."""
    if labels_path is not None:
        labels_dir = Path(labels_path) if Path(labels_path).is_dir() else Path(labels_path).parent
        meta = labels_dir / "metrics.json"
        if meta.exists():
            info = json.loads(meta.read_text())
            if info.get("model_id") or info.get("annotator"):
                return str(info.get("model_id") or info.get("annotator"))
    for col in ("model_id", "annotator"):
        if col in pairs.columns:
            return ",".join(sorted(map(str, pairs[col].dropna().unique()))) or "unknown"
    if pairs.attrs.get("annotator"):
        return str(pairs.attrs["annotator"])
    llm = params.get("annotator_llm", {}) if params is not None else {}
    for key in ("model_id", "model", "name"):
        if key in llm:
            return str(llm[key])
    return "unknown"


def run_skill(params, skill: str, labels_path: str | None = None, pairs: pd.DataFrame | None = None,
              method: str = chain.DEFAULT) -> Path:
    """Train and write one skill's reward model of MaestroMotif method `method` (maestromotif.chain) from
    the params; return the checkpoint path."""
    top = root(params)
    if skill not in top.skills:
        raise ConfigError(f"unknown skill {skill!r}{did_you_mean(skill, list(top.skills))}; the params "
                          f"`skills` are {list(top.skills)} (or pass --skill all)")
    cfg: RewardConfig = OmegaConf.to_object(section(params, "reward", RewardConfig))
    if cfg.torch_threads > 0:  # on a small shared CPU, more threads than free cores is much slower
        torch.set_num_threads(cfg.torch_threads)
    out_dir = chain.reward_root(params, method) / skill
    if pairs is None:
        labels_path = labels_path or str(chain.label_dir(params, method, skill))
        pairs = load_labels(labels_path)
        if len(pairs) == 0:
            raise LabelsError(f"{labels_path} holds no usable labelled pairs for {skill} (none, or every "
                              "label unknown): nothing to train on. Check the annotate stage's parse rate "
                              "in its metrics.json, fix the annotator, delete the labels and rerun "
                              f"`python -m maestromotif.annotate --method {method} --skill {skill}`")
    # the same seed for every method: their reward models differ by the labels alone
    seed = derive_seed(top.root_seed, "reward", skill)
    metadata = {"profile": top.profile, "root_seed": top.root_seed, "method": method,
                "annotator": annotator_id(pairs, params, labels_path),
                "model_config": dataclasses.asdict(cfg.model), "lr": cfg.lr, "batch_size": cfg.batch_size,
                "epochs": cfg.epochs, "holdout_fraction": cfg.holdout_fraction}
    metadata["device"] = str(resolve_device(cfg.device))
    resume = out_dir / "resume.pt"
    ckpt, metrics = train_reward_model(pairs, skill, cfg, seed, metadata=metadata, resume_path=resume)
    save_checkpoint(out_dir / "model.pt", ckpt)
    write_json(out_dir / "metrics.json", metrics)
    resume.unlink(missing_ok=True)
    log.info("%s: wrote %s (held-out accuracy %s, %.0f pairs/s)", skill, out_dir / "model.pt",
             _fmt(metrics["heldout_accuracy"]), metrics["pairs_per_s"] or 0)
    return out_dir / "model.pt"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the per-skill reward models (the `reward` stage)")
    parser.add_argument("--skill", required=True, help="a skill name from params.yaml `skills`, or 'all'")
    parser.add_argument("--method", default=chain.DEFAULT, choices=chain.METHODS,
                        help="whose labels and reward folders (maestromotif.chain): maestromotif (the "
                             "annotate stage's labels) or maestromotif_oracle (the rule oracle's)")
    parser.add_argument("--labels", default=None, help="labelled pairs (default: the params' reward.labels)")
    parser.add_argument("--params", default=None, help="params file (default: params.yaml or $MM_PARAMS)")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params(args.params)
    skills = check_skills(root(params).skills) if args.skill == "all" else [args.skill]
    if args.labels and len(skills) > 1:
        parser.error("--labels names one skill's file; use it with a single --skill")
    for skill in skills:
        run_skill(params, skill, args.labels, method=args.method)


if __name__ == "__main__":
    main()
