"""Atomic, resumable file writing: an interrupted stage never leaves a half file that looks whole."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes files 0600; give them the mode a plain open() would
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_csv(path: str | os.PathLike, table: Any) -> None:
    """A results table (a pandas DataFrame) as CSV, the one format of every committed table: no index,
    floats to 6 significant digits (enough for every statistic reported, and stable across reruns)."""
    write_text(path, table.to_csv(index=False, float_format="%.6g"))


def write_table(path: str | os.PathLike, table: Any, markdown: str) -> None:
    """A results table as CSV at `path` (write_csv) and its markdown rendering beside it (.md)."""
    write_csv(path, table)
    write_text(Path(path).with_suffix(".md"), markdown)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def append_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Append whole lines and fsync, so a kill loses at most the line being written (see read_jsonl)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in records)
    if not payload:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSON-lines file, dropping a torn last line left by a killed writer."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # torn final write: the record was never completed
            records.append(json.loads(line))
    return records


def truncate_torn_tail(path: str | os.PathLike) -> None:
    """Cut a partial last line so that later appends start on a clean line."""
    path = Path(path)
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as f:
            f.truncate(cut)
