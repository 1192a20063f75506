"""The on-disk schemas of observation records and pair sets, checked every time a file is loaded.

An observation record is one step of one episode: the top-line message (and the one shown the step
before), the six statistics the annotator sees, the dungeon branch, the game turn, and where the
step came from (the label of its collect source, e.g. "random" or "nld:<db>"). Stages exchange these
as parquet files; a file written by an older or foreign version fails loudly here instead of deep
inside a later stage.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmark.io import atomic_path

# blstats indices (nle.nethack.NLE_BL_*): the stats of one record, in the paper's caption order.
BL_HP, BL_HPMAX, BL_DEPTH, BL_GOLD, BL_XP, BL_TIME, BL_HUNGER, BL_DNUM = 10, 11, 12, 13, 18, 20, 21, 23
STATS = ("dlvl", "gold", "hp", "hpmax", "xp", "hunger")
STAT_BLSTATS_INDEX = {"dlvl": BL_DEPTH, "gold": BL_GOLD, "hp": BL_HP, "hpmax": BL_HPMAX, "xp": BL_XP,
                      "hunger": BL_HUNGER}
UNKNOWN = -1  # a field the source cannot provide (e.g. the dungeon branch in human ttyrecs)

OBSERVATION_SCHEMA = pa.schema([
    ("episode_id", pa.int64()),   # unique within a source (played: global episode index; nld: gameid)
    ("step", pa.int32()),         # step (frame for NLD) within the episode, from 0
    ("source", pa.string()),      # the collect source's label: "random", "scripted_eps0.2", "nld:<db>"...
    ("message", pa.string()),     # top-line message after this step
    ("prev_message", pa.string()),  # the message of the step before ("" at step 0)
    ("dlvl", pa.int32()),         # absolute depth (blstats 12)
    ("gold", pa.int32()),         # blstats 13
    ("hp", pa.int32()),           # blstats 10
    ("hpmax", pa.int32()),        # blstats 11
    ("xp", pa.int32()),           # experience level (blstats 18)
    ("hunger", pa.int32()),       # 0 Satiated .. 6 Starved (blstats 21)
    ("dungeon", pa.int32()),      # dungeon number (blstats 23); -1 when unknown
    ("turn", pa.int32()),         # game turn (blstats 20); -1 when unknown
])

# One row per pair; side k in {1, 2} is a sample (an observation and the one `gap` steps earlier).
_SIDE_FIELDS = [
    ("episode_id", pa.int64()), ("step", pa.int32()), ("prev_step", pa.int32()), ("source", pa.string()),
    ("message", pa.string()), ("prev_message", pa.string()),
    *[(f"{s}{suffix}", pa.int32()) for s in STATS for suffix in ("_prev", "")],
    ("dungeon", pa.int32()),
]
PAIR_SCHEMA = pa.schema(
    [("pair_id", pa.int64()), ("skill", pa.string())]
    + [(f"{name}_{k}", typ) for k in (1, 2) for name, typ in _SIDE_FIELDS]
)
SIDE_FIELDS = tuple(name for name, _ in _SIDE_FIELDS)


class SchemaError(ValueError):
    """A data file does not have the expected columns or types; the message says how to fix it."""


def check_schema(table: pa.Table, schema: pa.Schema, what: str) -> pa.Table:
    """Return `table` cast to `schema`, or raise SchemaError naming the missing/extra/mistyped columns."""
    have, want = set(table.schema.names), set(schema.names)
    missing, extra = sorted(want - have), sorted(have - want)
    mistyped = [
        f"{f.name} ({table.schema.field(f.name).type}, expected {f.type})"
        for f in schema if f.name in have and not _castable(table.schema.field(f.name).type, f.type)
    ]
    if missing or extra or mistyped:
        raise SchemaError(
            f"{what} does not match the expected schema: missing {missing}, unexpected {extra}, "
            f"wrong types {mistyped}. It was probably written by another version of this code: "
            "delete it and rerun the stage that produces it."
        )
    return table.select(schema.names).cast(schema)


def _castable(have: pa.DataType, want: pa.DataType) -> bool:
    if have == want:
        return True
    if pa.types.is_integer(have) and pa.types.is_integer(want):
        return True
    return pa.types.is_string(want) and (pa.types.is_large_string(have) or pa.types.is_string(have))


def write_table(df: pd.DataFrame, path: str | Path, schema: pa.Schema, metadata: dict | None = None) -> None:
    """Write `df` as parquet with `schema`, atomically (temp file + rename)."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = check_schema(table, schema, f"data for {path}")
    if metadata:
        import json

        table = table.replace_schema_metadata({"maestromotif": json.dumps(metadata, sort_keys=True)})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_table(paths: str | Path | Iterable[str | Path], schema: pa.Schema, what: str,
               rerun: str = "the stage that writes it") -> pd.DataFrame:
    """Read one parquet file, or concatenate several, each checked against `schema`; `rerun` (the command that
    rewrites a file) goes into the error for a missing or unreadable file."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    tables = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise SchemaError(f"{what}: {p} does not exist; run {rerun} first")
        try:
            t = pq.read_table(p)
        except (pa.ArrowException, OSError) as e:  # truncated or overwritten file
            raise SchemaError(f"{what}: {p} is not a readable parquet file ({type(e).__name__}: {e}); delete "
                              f"this file and rerun {rerun}") from e
        tables.append(check_schema(t, schema, f"{what} ({p})"))
    if not tables:
        return schema.empty_table().to_pandas()
    return pa.concat_tables(tables).to_pandas()


def file_metadata(path: str | Path) -> dict:
    """The provenance dict stored in a parquet file by write_table (empty if none)."""
    import json

    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(b"maestromotif")
    return json.loads(raw) if raw else {}
