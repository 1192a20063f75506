"""The per-skill reward model r_phi(message, depth change) and its checkpoint file.

Architecture (docs/method.md §4.1; the E3B / "Elliptical bonus" message encoder that Motif and
MaestroMotif use, `nle_torchbeast_encoder` with `encoder_msg_model=lt_cnn`):

    message (256 char codes) -> Embedding(256, 32, padding 0)
        -> Conv1d(32->64, k7) ReLU MaxPool(3,3) -> Conv1d(64->64, k7) ReLU MaxPool(3,3)
        -> 4 x [Conv1d(64->64, k3) ReLU] -> MaxPool(3,3) -> Flatten(5*64) -> Linear(320->128) ReLU
    diffstats (5: dlvl, gold, hp, xp, hunger; entries 1: zeroed) -> Linear(5->128) ReLU Linear(128->128) ReLU
    concat(256) -> Linear(256->256) ReLU Linear(256->512) -> ReLU Linear(512->1)

With `use_diffstats=False` (Motif's reward model: the message only) there is no diffstats branch and the
message features go straight to Linear(128->256); the depth change is ignored.

Initialisation follows sample-factory 1's `initialize_weights` with `policy_initialization=orthogonal`:
orthogonal weights (gain `init_gain`, 1.0 there) and zero biases on Linear layers; Conv1d and the
embedding keep PyTorch's defaults, because SF1 only re-initialises Linear and Conv2d.

Only the sign of the depth change reaches the model: the official code zeroes the other diffstats
(`diffstats[1:] = 0`), so the reward depends on (message, dlvl change in {-1, 0, 1}) and nothing else.
That is what makes memoising it per key (maestromotif.reward.intrinsic) exact.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from benchmark.config import ConfigError, defaults
from benchmark.io import atomic_path

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MESSAGE_LEN = 256  # NLE's message buffer
NUM_CHARS = 256
PAD_CHAR = 0
DIFFSTATS_DIM = 5  # dlvl, gold, hp, xp, hunger (official order); only dlvl is kept
QUANTILE_LEVELS = tuple(round(q / 100, 2) for q in range(5, 96, 5))  # 0.05 .. 0.95, as the official csv


class CheckpointError(ValueError):
    """A reward-model checkpoint is missing, corrupt, of another format version, or for another skill."""


@dataclass
class RewardModelConfig:
    """Sizes of the reward network (values: conf/reward/default.yaml `model`, the official
    `nle_torchbeast_encoder` settings)."""

    char_embedding_dim: int
    conv_channels: int
    message_dim: int  # Linear(5 * conv_channels -> message_dim)
    diffstats_dim: int
    hidden_dim: int  # encoder_hidden_dim: fc = Linear(256 -> hidden/2) ReLU Linear(-> hidden)
    use_diffstats: bool  # MaestroMotif: message + depth-change sign; False: message only (Motif)
    init_gain: float  # SF1 policy_init_gain


class MessageEncoder(nn.Module):
    """Char-CNN over the 256-byte NetHack message (E3B / Henaff et al. 2022)."""

    def __init__(self, cfg: RewardModelConfig):
        super().__init__()
        c = cfg.conv_channels
        self.char_embedding = nn.Embedding(NUM_CHARS, cfg.char_embedding_dim, padding_idx=PAD_CHAR)
        self.convs = nn.Sequential(
            nn.Conv1d(cfg.char_embedding_dim, c, kernel_size=7), nn.ReLU(), nn.MaxPool1d(3, 3),
            nn.Conv1d(c, c, kernel_size=7), nn.ReLU(), nn.MaxPool1d(3, 3),
            nn.Conv1d(c, c, kernel_size=3), nn.ReLU(),
            nn.Conv1d(c, c, kernel_size=3), nn.ReLU(),
            nn.Conv1d(c, c, kernel_size=3), nn.ReLU(),
            nn.Conv1d(c, c, kernel_size=3), nn.ReLU(), nn.MaxPool1d(3, 3),
            nn.Flatten(),
        )
        # 256 -> 250 -> 83 -> 77 -> 25 -> 23 -> 21 -> 19 -> 17 -> 5 positions
        self.fc = nn.Sequential(nn.Linear(5 * c, cfg.message_dim), nn.ReLU())
        self.out_dim = cfg.message_dim

    def forward(self, messages: torch.Tensor) -> torch.Tensor:
        """messages: int tensor [B, 256] of char codes -> [B, message_dim]."""
        x = self.char_embedding(messages.long()).transpose(1, 2)  # [B, emb, 256]
        return self.fc(self.convs(x))


class RewardModel(nn.Module):
    """r_phi(message, diffstats) -> scalar reward (unnormalised)."""

    def __init__(self, cfg: RewardModelConfig | None = None):
        super().__init__()
        self.cfg = cfg or defaults("reward.model", RewardModelConfig)
        self.message_encoder = MessageEncoder(self.cfg)
        joint = self.message_encoder.out_dim
        self.diffstats_encoder = None
        if self.cfg.use_diffstats:
            self.diffstats_encoder = nn.Sequential(
                nn.Linear(DIFFSTATS_DIM, self.cfg.diffstats_dim), nn.ReLU(),
                nn.Linear(self.cfg.diffstats_dim, self.cfg.diffstats_dim), nn.ReLU(),
            )
            joint += self.cfg.diffstats_dim
        self.fc = nn.Sequential(
            nn.Linear(joint, self.cfg.hidden_dim // 2), nn.ReLU(),
            nn.Linear(self.cfg.hidden_dim // 2, self.cfg.hidden_dim),
        )
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(self.cfg.hidden_dim, 1))
        self.apply(self._orthogonal_init)

    @property
    def uses_depth(self) -> bool:
        """Whether the score depends on the depth change (False: Motif's message-only model)."""
        return self.cfg.use_diffstats

    def _orthogonal_init(self, layer: nn.Module) -> None:
        if type(layer) is nn.Linear:  # as SF1: Linear (and Conv2d, absent here) only
            nn.init.orthogonal_(layer.weight.data, gain=self.cfg.init_gain)
            layer.bias.data.fill_(0)

    def forward(self, messages: torch.Tensor, diffstats: torch.Tensor) -> torch.Tensor:
        """messages [B, 256] int, diffstats [B, 5] float (unused by a message-only model) -> rewards [B]."""
        x = self.message_encoder(messages)
        if self.diffstats_encoder is not None:
            x = torch.cat([x, self.diffstats_encoder(diffstats.float())], dim=1)
        return self.head(self.fc(x)).squeeze(1)


# --- inputs ----------------------------------------------------------------------------------------

def encode_message(text: str) -> np.ndarray:
    """A message string as NLE's 256-byte buffer (latin-1, as benchmark.env.decode_message reads it)."""
    raw = text.encode("latin-1", errors="replace")[:MESSAGE_LEN]
    out = np.zeros(MESSAGE_LEN, dtype=np.uint8)
    out[: len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    return out


def encode_messages(texts: Sequence[str]) -> np.ndarray:
    out = np.zeros((len(texts), MESSAGE_LEN), dtype=np.uint8)
    for i, text in enumerate(texts):
        out[i] = encode_message(text)
    return out


def diffstats(dlvl_changes: Iterable[int]) -> np.ndarray:
    """The 5-dim diffstats input with only the depth-change sign set (entries 1: are zero, as official)."""
    changes = np.sign(np.asarray(list(dlvl_changes), dtype=np.float32))
    out = np.zeros((len(changes), DIFFSTATS_DIM), dtype=np.float32)
    out[:, 0] = changes
    return out


@torch.inference_mode()
def score(model: RewardModel, messages: Sequence[str], dlvl_changes: Sequence[int],
          batch_size: int = 1024) -> np.ndarray:
    """Unnormalised rewards of (message, dlvl change) keys, in batches, without gradients."""
    model.eval()
    device = next(model.parameters()).device
    out = np.empty(len(messages), dtype=np.float32)
    for start in range(0, len(messages), batch_size):
        stop = start + batch_size
        m = torch.from_numpy(encode_messages(messages[start:stop])).to(device)
        d = torch.from_numpy(diffstats(dlvl_changes[start:stop])).to(device)
        out[start:stop] = model(m, d).cpu().numpy()
    return out


def reward_statistics(raw: np.ndarray) -> tuple[float, float, dict[float, float]]:
    """Mean and variance of raw rewards over unique keys, and the quantile table (QUANTILE_LEVELS) of the
    normalised reward: what a checkpoint carries for RL. The variance is floored, so a constant model
    does not divide by zero in RL."""
    raw = np.asarray(raw, dtype=np.float64)
    mean, var = float(raw.mean()), max(float(raw.var()), 1e-8)
    norm = (raw - mean) / math.sqrt(var)
    return mean, var, {q: float(np.quantile(norm, q)) for q in QUANTILE_LEVELS}


# --- checkpoint ------------------------------------------------------------------------------------

@dataclass
class RewardCheckpoint:
    """A trained reward model with what RL needs to use it: normalisation and the quantile table."""

    skill: str
    model: RewardModel
    reward_mean: float
    reward_var: float
    quantiles: dict[float, float]  # quantile level -> normalised reward at that level (over unique keys)
    metadata: dict[str, Any] = field(default_factory=dict)  # profile, annotator, seed, accuracies, ...
    path: str | None = None  # the file it was loaded from (for error messages)

    @property
    def reward_std(self) -> float:
        return math.sqrt(self.reward_var)

    def threshold(self, quantile: float) -> float:
        """The normalised-reward threshold at `quantile` (0 means no threshold, as MaestroMotif's fix)."""
        if quantile == 0.0:
            return -math.inf
        for level, value in self.quantiles.items():
            if abs(level - quantile) < 1e-9:
                return value
        raise CheckpointError(
            f"quantile {quantile} is not in the {self.skill} reward model's table "
            f"(levels {sorted(self.quantiles)}); use one of those levels, or 0.0 for no threshold"
        )


def save_checkpoint(path: str | Path, ckpt: RewardCheckpoint) -> None:
    """Write one skill's checkpoint atomically (temp file + rename)."""
    payload = {
        "format_version": FORMAT_VERSION,
        "skill": ckpt.skill,
        "model_config": dataclasses.asdict(ckpt.model.cfg),
        "state_dict": {k: v.detach().cpu() for k, v in ckpt.model.state_dict().items()},
        "reward_mean": float(ckpt.reward_mean),
        "reward_var": float(ckpt.reward_var),
        "quantile_levels": [float(q) for q in ckpt.quantiles],
        "quantile_values": [float(v) for v in ckpt.quantiles.values()],
        "metadata": ckpt.metadata,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def load_checkpoint(path: str | Path, skill: str | None = None) -> RewardCheckpoint:
    """Read a checkpoint; with `skill`, also check that it belongs to that skill. Errors say how to fix."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"no reward model at {path}: train it with `python -m maestromotif.reward.train --skill "
            f"{skill or '<skill>'}`"
        )
    try:
        # weights_only: our own format is plain tensors and builtins, so nothing is unpickled as code
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, random bytes, ... torch raises several types
        raise CheckpointError(
            f"reward model {path} is corrupt or not a checkpoint ({type(e).__name__}: {e}); delete this file "
            "and rerun the reward stage (`python -m maestromotif.reward.train --skill "
            f"{skill or '<skill>'}`), which retrains this model only"
        ) from e
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise CheckpointError(f"{path} is not a reward-model checkpoint of this suite (no format_version)")
    if payload["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {payload['format_version']}, "
            f"this code reads version {FORMAT_VERSION}; "
            "retrain it with `python -m maestromotif.reward.train`"
        )
    if skill is not None and payload.get("skill") != skill:
        raise CheckpointError(
            f"{path} is the reward model of skill {payload.get('skill')!r}, not {skill!r}; check the path"
        )
    try:
        # a checkpoint written before a field existed gets conf/'s value, as the dataclass default gave it
        model = RewardModel(defaults("reward.model", RewardModelConfig, **payload["model_config"]))
        model.load_state_dict(payload["state_dict"])
        levels, values = payload["quantile_levels"], payload["quantile_values"]
        ckpt = RewardCheckpoint(
            skill=payload["skill"],
            model=model.eval(),
            reward_mean=float(payload["reward_mean"]),
            reward_var=float(payload["reward_var"]),
            quantiles=dict(zip((float(q) for q in levels), (float(v) for v in values))),
            metadata=dict(payload.get("metadata", {})),
            path=str(path),
        )
    except (KeyError, TypeError, RuntimeError, ConfigError) as e:
        raise CheckpointError(
            f"{path} does not match the reward-model format ({type(e).__name__}: {e})"
        ) from e
    for p in ckpt.model.parameters():
        p.requires_grad_(False)  # frozen during RL
    retrain = f"delete it and retrain it (`python -m maestromotif.reward.train --skill {ckpt.skill}`)"
    if not (math.isfinite(ckpt.reward_var) and ckpt.reward_var > 0) or not math.isfinite(ckpt.reward_mean):
        raise CheckpointError(f"{path} has reward mean {ckpt.reward_mean} and variance {ckpt.reward_var}; "
                              f"{retrain}")
    bad = [name for name, t in payload["state_dict"].items() if not torch.isfinite(t).all()]
    if bad:  # a diverged training run: every reward would be NaN and RL would train on it
        more = " ..." if len(bad) > 3 else ""
        raise CheckpointError(f"{path} has NaN/inf weights in {bad[:3]}{more}; {retrain}")
    return ckpt
