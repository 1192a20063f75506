"""Compare two pipeline outputs record by record: what `benchmark.chaos` checks after its kills.

Two copies of data/ and results/ agree when every file holds the same records: JSON lines, Parquet and CSV
as multisets of records (a resumed run appends in another order), JSON, markdown and text canonicalised,
torch files by tensor content (for sample-factory's run folders, the latest checkpoint only). Fields that
hold wall-clock times, throughput, host details or fit-folder fingerprints are left out (VOLATILE_KEYS),
the copies' own paths are written as "<root>", and a record whose natural key (NATURAL_KEYS) appears twice
in one file is a duplicate whatever its values.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Keys whose values are wall-clock times, throughput, or where/who ran: they differ between any two runs.
VOLATILE_KEYS = frozenset({
    "time", "timestamp", "created", "created_at", "started", "started_at", "finished_at", "date", "datetime",
    "host", "hostname", "node", "user", "pid", "cpu", "cpu_model", "cpus", "gpu", "git", "git_describe",
    "seconds", "elapsed", "elapsed_s", "wall_s", "wall_time", "duration_s", "fps", "fps_last_segment",
    "steps_per_s", "episodes_per_s", "seconds_per_episode", "pairs_per_s", "tokens_per_s", "throughput",
    "load_seconds", "train_seconds", "stage_seconds_this_run", "created_utc", "provenance",
    "this_run",  # what this process did (pairs asked, env steps played, seconds): less after a resume
    # Fingerprints of a fit folder (benchmark.provenance.tree_digest) hash its logs too (sample-factory's
    # sf_log.txt, tensorboard files, train.log): a refit with identical weights gets new ones. The weights
    # themselves (latest checkpoint) and every record's values are compared instead.
    "run_key", "artefact_digest",
})
# Files that are logs, progress reports or wall-clock snapshots, not records: never compared.
# sample-factory: sf_log.txt and .summary/ (tensorboard) are logs; git.diff names the checkout;
# best_*.pth are snapshots taken on a timer (save_best_every_sec), which evaluate never loads.
IGNORED_NAMES = frozenset({"progress.jsonl", "errors.jsonl", "sf_log.txt", "git.diff"})
IGNORED_SUFFIXES = (".log", ".tmp", ".lock")
IGNORED_DIRS = frozenset({"__pycache__", ".summary"})
CHECKPOINT_RE = re.compile(r"^checkpoint_(\d+)_(\d+)\.pth$")  # sample-factory's numbered checkpoints
# Per-record natural keys: a key seen twice in one file is a duplicated record, whatever its values.
NATURAL_KEYS = (("episode_id", "step", "source"), ("episode",), ("pair_id",), ("env_steps", "skill"))

def canonical(value: Any, roots: Iterable[str] = ()) -> Any:
    """`value` without volatile keys, with the copies' paths as "<root>" and NaN as a string (NaN != NaN)."""
    roots = tuple(r for r in roots if r)
    if isinstance(value, dict):
        return {str(k): canonical(v, roots) for k, v in value.items() if str(k) not in VOLATILE_KEYS}
    if isinstance(value, (list, tuple)):
        return [canonical(v, roots) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            return hashlib.sha256(value).hexdigest()
    if isinstance(value, str):
        for r in roots:
            value = value.replace(r, "<root>")
        if value[:1] in "{[":  # parquet metadata and similar: JSON inside a string
            try:
                return canonical(json.loads(value), roots)
            except ValueError:
                pass
    return value


def _key(record: Any) -> str:
    return json.dumps(record, sort_keys=True, default=str)


def load_records(path: Path, roots: Iterable[str] = ()) -> tuple[list[Any] | None, Any, list[str]]:
    """(records or None, header/metadata, problems) of a data file; records None for an opaque file."""
    problems: list[str] = []
    suffix = path.suffix
    if suffix == ".jsonl":
        raw = path.read_bytes()
        if raw and not raw.endswith(b"\n"):
            problems.append("torn last line (no newline): a killed writer's partial record")
        records = []
        for i, line in enumerate(raw.decode("utf-8", "replace").splitlines()):
            try:
                records.append(canonical(json.loads(line), roots))
            except ValueError:
                problems.append(f"line {i + 1} is not JSON")
        return records, None, problems
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as e:  # noqa: BLE001 - a torn parquet file, whatever pyarrow raises
            return [], None, [f"unreadable parquet ({type(e).__name__}: {e})"]
        meta = {k.decode(): canonical(v, roots) for k, v in (table.schema.metadata or {}).items()
                if not k.startswith(b"pandas")}
        header = {"columns": table.schema.names, "metadata": meta}
        return [canonical(r, roots) for r in table.to_pylist()], header, problems
    if suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(path.read_text())))
        header = [c for c in (rows[0].keys() if rows else []) if c not in VOLATILE_KEYS]
        return [canonical(r, roots) for r in rows], header, problems
    if suffix == ".json":
        try:
            return None, canonical(json.loads(path.read_text()), roots), problems
        except ValueError as e:
            return None, None, [f"not JSON ({e})"]
    if suffix in (".md", ".txt", ".py", ".yaml"):
        return None, canonical(path.read_text(), roots), problems
    if suffix in (".pt", ".pth"):  # torch files: tensors by content, other entries like any record
        try:
            return None, canonical(_torch_plain(_torch_load(path)), roots), problems
        except Exception as e:  # noqa: BLE001 - a torn file, whatever torch raises
            return None, None, [f"unreadable torch file ({type(e).__name__}: {e})"]
    return None, hashlib.sha256(path.read_bytes()).hexdigest(), problems


def _torch_load(path: Path) -> Any:
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)


def _torch_plain(obj: Any) -> Any:
    """A torch object as JSON-able data: each tensor as its dtype, shape and the sha256 of its bytes."""
    import torch

    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        return {"tensor": str(t.dtype), "shape": list(t.shape),
                "sha256": hashlib.sha256(t.reshape(-1).view(torch.uint8).numpy().tobytes()).hexdigest()}
    if isinstance(obj, dict):
        return {str(k): _torch_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_torch_plain(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return repr(obj)


def natural_duplicates(records: list[Any]) -> list[Any]:
    """Natural keys (NATURAL_KEYS: episode, pair, step ...) that occur more than once."""
    if not records or not all(isinstance(r, dict) for r in records):
        return []
    for fields in NATURAL_KEYS:
        if all(all(f in r for f in fields) for r in records):
            counts = Counter(tuple(r[f] for f in fields) for r in records)
            return [dict(zip(fields, k)) for k, n in counts.items() if n > 1]
    return []


def compare_file(rel: str, a: Path, b: Path, roots: Iterable[str] = (), limit: int = 3) -> list[dict]:
    """Mismatches between file `a` (reference) and `b` (killed run); [] when they hold the same records."""
    roots = tuple(roots)
    recs_a, head_a, _ = load_records(a, roots)
    recs_b, head_b, problems = load_records(b, roots)
    out = [{"file": rel, "kind": "torn", "detail": p} for p in problems]
    dup = natural_duplicates(recs_b or [])
    if dup:
        out.append({"file": rel, "kind": "duplicated_records", "count": len(dup), "examples": dup[:limit]})
    if head_a != head_b:
        out.append({"file": rel, "kind": "differs", "detail": _first_difference(head_a, head_b)})
    if recs_a is None or recs_b is None:
        return out
    ca, cb = Counter(map(_key, recs_a)), Counter(map(_key, recs_b))
    missing = list((ca - cb).elements())
    extra = list((cb - ca).elements())
    duplicated = [k for k in extra if k in ca]
    extra = [k for k in extra if k not in ca]
    found = (("missing_records", missing), ("extra_records", extra), ("duplicated_records", duplicated))
    for kind, keys in found:
        if keys and not (kind == "duplicated_records" and dup):
            out.append({"file": rel, "kind": kind, "count": len(keys),
                        "examples": [json.loads(k) for k in keys[:limit]]})
    return out


def _first_difference(a: Any, b: Any, where: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{where}.{k}: only in {'B (killed run)' if k in b else 'A (reference)'}"
            if a[k] != b[k]:
                return _first_difference(a[k], b[k], f"{where}.{k}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first_difference(x, y, f"{where}[{i}]")
    text = f"{where or 'content'}: A={a!r} B={b!r}"
    return text if len(text) < 300 else text[:300] + "..."


def data_files(top: Path, dirs: Iterable[str] = ("data", "results")) -> set[str]:
    """The record files under `dirs` of a copy. Of sample-factory's numbered checkpoints only the latest per
    folder counts (the one evaluate loads): the older ones kept beside it were saved on a wall-clock timer."""
    out = set()
    latest: dict[Path, Path] = {}
    for d in dirs:
        for p in (top / d).rglob("*"):
            if not p.is_file() or p.name in IGNORED_NAMES or p.name.endswith(IGNORED_SUFFIXES) \
                    or IGNORED_DIRS & set(p.parts) or p.name.startswith("best_") and p.suffix == ".pth":
                continue
            m = CHECKPOINT_RE.match(p.name)
            if m:
                steps = (int(m.group(1)), int(m.group(2)))
                old = latest.get(p.parent)
                if old is None or steps > tuple(map(int, CHECKPOINT_RE.match(old.name).groups())):  # type: ignore[union-attr]
                    latest[p.parent] = p
                continue
            out.add(p.relative_to(top).as_posix())
    return out | {p.relative_to(top).as_posix() for p in latest.values()}


def compare_trees(a: Path, b: Path, tainted: Iterable[str] = ()) -> dict:
    """Compare every record file of copy `b` with copy `a`. `tainted`: regexes of paths whose values may
    differ for a known reason (resumed training); there only duplicates and torn files count."""
    tainted_re = [re.compile(t) for t in tainted]
    fa, fb = data_files(a), data_files(b)
    roots = (str(a.resolve()), str(b.resolve()), str(a), str(b))
    mismatches, expected = [], []
    for rel in sorted(fa - fb):
        mismatches.append({"file": rel, "kind": "missing_file"})
    for rel in sorted(fb - fa):
        mismatches.append({"file": rel, "kind": "extra_file"})
    for rel in sorted(fa & fb):
        for m in compare_file(rel, a / rel, b / rel, roots):
            benign = (any(t.search(rel) for t in tainted_re)
                      and m["kind"] in ("differs", "missing_records", "extra_records"))
            (expected if benign else mismatches).append(m)
    return {"files_compared": len(fa & fb), "mismatches": mismatches, "expected_divergence": expected}
