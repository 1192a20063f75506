"""Label files: the chunks `annotate` writes, the labels.parquet it assembles, and `labelled_pairs`, the one
reader the reward models and the Motif baseline train from.

Layout of a label set (docs/design.md §2.1): <set>/chunks/chunk_<k>.jsonl, one JSON record per pair, each
file written whole and atomically; <set>/labels.parquet, every record, nested values as JSON text. A damaged
file is a LabelFileError that names it and the command that redoes it; `chunk_done` treats one as missing,
so the stage asks that chunk again and keeps the others.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.io import atomic_path
from maestromotif import prompts as P
from maestromotif.data.pairs import MOTIF_SET

log = logging.getLogger(__name__)
OUT_NAME = "labels"
# Nested values (lists, dicts) of a record, kept as JSON text in labels.parquet.
NESTED_COLUMNS = ("label_logprobs", "top_logprobs", "label_logprobs_swapped", "top_logprobs_swapped",
                  "none_wins", "floored")


class LabelFileError(ValueError):
    """A label file is truncated or corrupt; the message names it and says how to redo it."""


RERUN = "`python -m maestromotif.annotate` (it redoes only the missing chunks and keeps the finished ones)"


def read_chunk(path: Path) -> list[dict]:
    """The records of one finished chunk file. Chunks are written whole (atomically), so a torn or unparsable
    line means the file was damaged afterwards: LabelFileError, never a silently shorter chunk."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    if text and not text.endswith("\n"):
        raise LabelFileError(f"label chunk {path} is truncated (its last line is incomplete); delete this "
                             f"file and rerun {RERUN}")
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise LabelFileError(f"label chunk {path} is corrupt (line {number}: {e.msg}); delete this file "
                                 f"and rerun {RERUN}") from e
    return records


def chunk_done(path: Path, pair_ids: list[int], fingerprint: str) -> bool:
    if not path.exists():
        return False
    try:
        records = read_chunk(path)
    except LabelFileError as e:  # the stage itself repairs it: this chunk is asked again, the others kept
        log.warning("%s; redoing that chunk", e)
        return False
    return [r.get("pair_id") for r in records] == pair_ids and all(r.get("run") == fingerprint
                                                                     for r in records)


def motif_label_dir(data_dir: str | Path, task: str) -> Path:
    """Motif's labels of `task` (a skill's labels: maestromotif.chain.label_dir)."""
    return Path(data_dir) / OUT_NAME / MOTIF_SET / task


def write_chunk(path: Path, records: list[dict]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r, sort_keys=True, default=_json_default) + "\n" for r in records))


def _json_default(x):
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    return str(x)


def write_labels(path: Path, labels: pd.DataFrame) -> None:
    df = labels.copy()
    for col in NESTED_COLUMNS:
        if col in df:
            df[col] = [None if v is None or (isinstance(v, float) and math.isnan(v)) else json.dumps(v)
                       for v in df[col]]
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def labelled_pairs(labels: str | Path) -> pd.DataFrame:
    """The reward model's training data from a labels directory (or its labels.parquet / a chunk .jsonl).

    Columns: pair_id, message_1, message_2 (current message of each side), dlvl_change_1, dlvl_change_2
    (sign of the depth change within the sample, +1 = deeper), label (0 first, 1 second, 2 tie).
    Unknown labels are dropped.
    """
    path = Path(labels)
    if path.is_dir():
        if (path / "labels.parquet").exists():
            df = read_labels_parquet(path / "labels.parquet")
        else:
            chunk_files = sorted((path / "chunks").glob("chunk_*.jsonl"))
            if not chunk_files:
                raise FileNotFoundError(f"{path} holds no labels: run `python -m maestromotif.annotate` "
                                        "first")
            df = pd.DataFrame([r for p in chunk_files for r in read_chunk(p)])
    elif path.suffix == ".parquet":
        df = read_labels_parquet(path)
    elif path.suffix == ".jsonl":
        df = pd.DataFrame(read_chunk(path))
    else:
        raise FileNotFoundError(f"{path}: expected a labels directory, labels.parquet or a chunk .jsonl")
    cols = ["pair_id", "message_1", "message_2", "dlvl_change_1", "dlvl_change_2", "label"]
    missing = [c for c in cols if c not in df]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}: it was not written by maestromotif.annotate")
    df = df[df["label"] != P.UNKNOWN][cols].drop_duplicates("pair_id").sort_values("pair_id")
    df = df.astype({"pair_id": "int64", "dlvl_change_1": "int64", "dlvl_change_2": "int64", "label": "int64",
                    "message_1": str, "message_2": str})
    return df.reset_index(drop=True)


def read_labels_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises ArrowInvalid / OSError for a truncated or overwritten file
        raise LabelFileError(f"{path} is not a readable parquet file ({type(e).__name__}: {e}); delete this "
                             f"file and rerun {RERUN}: it rebuilds labels.parquet from the finished "
                             "chunks") from e
