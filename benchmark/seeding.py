"""One root seed per run; every component derives its own seed from it by name."""
from __future__ import annotations

import hashlib
import random

import numpy as np

SEED_BITS = 31


def derive_seed(root: int, *names: object) -> int:
    """A stable seed for the component `names` under `root` (same inputs, same seed, on every machine)."""
    if not isinstance(root, (int, np.integer)) or isinstance(root, bool) or root < 0:
        raise ValueError(f"root seed must be a non-negative integer, got {root!r}")
    key = "/".join([str(int(root))] + [str(n) for n in names]).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") % (2**SEED_BITS)


def episode_seed(root: int, stage: str, task: str, *run: object, episode: int) -> int:
    """The NetHack game of episode `episode` of one run of `stage` on `task`: derive_seed(root, stage, task,
    *run, episode). It names no method, so every method of a run faces the same games. `run` is what else
    tells the stage's runs apart: evaluate's fit seed, the regression check's block; calibrate has none."""
    return derive_seed(root, stage, task, *run, int(episode))


def nethack_seeds(root: int, *names: object) -> tuple[int, int]:
    """The (core, disp) seed pair that fixes a NetHack game."""
    return derive_seed(root, *names, "core"), derive_seed(root, *names, "disp")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (if imported) for one process."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is part of the stack
        return
    torch.manual_seed(seed)
