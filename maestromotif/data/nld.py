"""Human gameplay (Dungeons & Data, NLD) as observation records.

`nle.dataset` yields terminal frames only (tty_chars, no message or blstats), so the message is read
from the top row and the statistics from the two status rows:

    row 22: "Agent the Candidate   St:15 Dx:11 Co:10 In:13 Wi:17 Ch:9 Neutral S:0"
    row 23: "Dlvl:1 $:0 HP:14(14) Pw:4(4) AC:4 Xp:1/0 T:1 Hungry"

One ttyrec frame becomes one record (step = frame index within the game); a frame is a screen
update, not necessarily one keypress, so "100 steps earlier" means 100 frames for this source. The
dungeon branch is not on screen and is recorded as -1. Fields a status line lacks (e.g. `time` off)
are -1 too.

Setting up the data (once): `import nle.dataset as nld; nld.db.create(DB);
nld.add_altorg_directory(path, "nld-nao", DB)` (or `add_nledata_directory` for NLE-made data), then
add a source `{kind: nld, path: DB, dataset: nld-nao}` to collect.sources in the params.
"""
from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from maestromotif.data.schema import OBSERVATION_SCHEMA, UNKNOWN, file_metadata, write_table

log = logging.getLogger(__name__)

SOURCE = "nld"
MESSAGE_ROW, STATUS_ROWS = 0, (22, 23)
# blstats hunger codes; "Not Hungry" (1) shows no word on the status line.
HUNGER_WORDS = {"Satiated": 0, "Hungry": 2, "Weak": 3, "Fainting": 4, "Fainted": 5, "Starved": 6}
NORMAL_HUNGER = 1

_DLVL = re.compile(r"\bDlvl:(\d+)")
_GOLD = re.compile(r"\$:(\d+)")
_HP = re.compile(r"\bHP:(-?\d+)\((\d+)\)")
_XP = re.compile(r"\b(?:Xp|Exp):(\d+)")
_TURN = re.compile(r"\bT:(\d+)")
_HUNGER = re.compile(r"\b(" + "|".join(HUNGER_WORDS) + r")\b")
_MORE = re.compile(r"\s*--More--\s*$")


def row_text(tty_chars: np.ndarray, row: int) -> str:
    return bytes(np.asarray(tty_chars[row], dtype=np.uint8)).decode("latin-1")


def parse_message(tty_chars: np.ndarray) -> str:
    """The top-line message, without padding and without a trailing --More--."""
    return _MORE.sub("", row_text(tty_chars, MESSAGE_ROW).rstrip("\0 ")).strip()


def parse_status(tty_chars: np.ndarray) -> dict[str, int]:
    """dlvl, gold, hp, hpmax, xp, hunger, turn from the two status rows (-1 where absent)."""
    text = " ".join(row_text(tty_chars, r) for r in STATUS_ROWS)

    def num(pattern: re.Pattern, group: int = 1) -> int:
        m = pattern.search(text)
        return int(m.group(group)) if m else UNKNOWN

    hunger = _HUNGER.search(text)
    return {
        "dlvl": num(_DLVL), "gold": num(_GOLD), "hp": num(_HP, 1), "hpmax": num(_HP, 2), "xp": num(_XP),
        "hunger": HUNGER_WORDS[hunger.group(1)] if hunger else NORMAL_HUNGER, "turn": num(_TURN),
    }


def frame_record(tty_chars: np.ndarray, prev_message: str, episode_id: int, step: int,
                 source: str = SOURCE) -> dict:
    status = parse_status(tty_chars)
    return {"episode_id": episode_id, "step": step, "source": source, "message": parse_message(tty_chars),
            "prev_message": prev_message, **status, "dungeon": UNKNOWN}


def iter_game_frames(db: str, dataset: str, gameids: list[int] | None = None, seq_length: int = 256,
                     subselect_sql: str | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(gameid, tty_chars) for every frame of the chosen games, game by game, in gameid order."""
    import nle.dataset as nld

    ds = nld.TtyrecDataset(dataset, batch_size=1, seq_length=seq_length, dbfilename=db, gameids=gameids,
                           shuffle=False, loop_forever=False, subselect_sql=subselect_sql)
    for mb in ds:
        ids, chars = mb["gameids"][0], mb["tty_chars"][0]
        for i in np.flatnonzero(ids):  # gameid 0 is padding after the last game
            yield int(ids[i]), chars[i].copy()


def game_ids(db: str, dataset: str, subselect_sql: str | None = None) -> list[int]:
    import nle.dataset as nld

    return sorted(nld.TtyrecDataset(dataset, batch_size=1, dbfilename=db, shuffle=False,
                                    subselect_sql=subselect_sql)._games)


def records_from_ttyrecs(db: str, dataset: str, gameids: list[int] | None = None,
                         subselect_sql: str | None = None, source: str = SOURCE) -> pd.DataFrame:
    """Observation records for the frames of `gameids` (all games of `dataset` when None)."""
    rows: list[dict] = []
    step, last_game, prev = 0, None, ""
    for gameid, chars in iter_game_frames(db, dataset, gameids, subselect_sql=subselect_sql):
        if gameid != last_game:
            step, last_game, prev = 0, gameid, ""
        rec = frame_record(chars, prev, gameid, step, source)
        rows.append(rec)
        prev, step = rec["message"], step + 1
    return pd.DataFrame(rows, columns=OBSERVATION_SCHEMA.names)


def import_nld_chunks(src, out_dir: Path, label: str = SOURCE, prefix: str = "nld", games_per_chunk: int = 20,
                      key: str = "collect.sources[i]") -> list[str]:
    """Write the games of the nld source `src` (path, dataset, max_games, subselect_sql: a
    collect.SourceConfig) as `<prefix>_<k>.parquet` chunks in out_dir, records labelled `label`
    (resumable: a chunk with the same settings is kept); return their names."""
    if not (src.path and src.dataset):
        raise ValueError(f"{key}: an nld source needs both `path` (the nle.dataset sqlite file) and "
                         "`dataset`")
    if not Path(src.path).exists():
        raise FileNotFoundError(f"{key}.path={src.path} does not exist; create it with nle.dataset "
                                "(see maestromotif/data/nld.py)")
    ids = game_ids(src.path, src.dataset, src.subselect_sql)
    if src.max_games:
        ids = ids[: src.max_games]
    if not ids:
        raise ValueError(f"NLD dataset {src.dataset!r} in {src.path} has no games ({key}: check dataset and "
                         "subselect_sql)")
    files = []
    t0, frames = time.perf_counter(), 0
    for k, first in enumerate(range(0, len(ids), games_per_chunk)):
        chunk_ids = ids[first: first + games_per_chunk]
        name = f"{prefix}_{k:05d}.parquet"
        meta = {"db": str(src.path), "dataset": src.dataset, "gameids": chunk_ids, "source": label}
        path = out_dir / name
        if not (path.exists() and file_metadata(path) == meta):
            df = records_from_ttyrecs(src.path, src.dataset, chunk_ids, source=label)
            write_table(df, path, OBSERVATION_SCHEMA, metadata=meta)
            frames += len(df)
        files.append(name)
    log.info("nld: %d games in %d chunks; %d new frames parsed (%.0f frames/s)", len(ids), len(files), frames,
             frames / max(time.perf_counter() - t0, 1e-9))
    return files


def parse_accuracy(frames: list[np.ndarray], truths: list[dict]) -> dict[str, float]:
    """Per-field fraction of frames whose parsed value equals the truth (truth: record-like dicts)."""
    fields = ["message", "dlvl", "gold", "hp", "hpmax", "xp", "hunger", "turn"]
    hits = {f: 0 for f in fields}
    for chars, truth in zip(frames, truths):
        parsed = {"message": parse_message(chars), **parse_status(chars)}
        for f in fields:
            want = truth[f].strip() if f == "message" else truth[f]  # NLE keeps a prompt's trailing space
            hits[f] += parsed[f] == want
    n = max(len(frames), 1)
    return {f: hits[f] / n for f in fields}
