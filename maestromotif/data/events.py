"""Stage `collect_events`: how often each collect source's observations show what the skills are about.

    python -m maestromotif.data.events            # reads params.yaml (MM_PARAMS overrides the path)

Reads the collect stage's records (<data_dir>/observations) and writes, per source label and for all
records together, the counts and the counts per 1,000 steps (records) of the events below, to
`report.collect_events` (default results/<profile>/collect_events.csv) and a markdown table beside it
(.md), which the report stage includes. A reward model can only learn what its pairs show: a skill whose
event is (nearly) absent here gets a constant reward model (docs/investigations/skills.md).

Events (the message ones on the top-line message after each step, one per record at most):
  descents, ascents  the depth (blstats) goes up / down between two consecutive records of an episode
                     (stairs, but also trap doors, holes, level teleports)
  new_levels         first arrivals on a (dungeon, depth) per episode, the start level not counted
  shop_entries       a shopkeeper's greeting "Welcome [again] to <name>'s <shop>!"
  sales              a sale as the Transactions task counts it (benchmark.trackers.is_sale)
  altar_messages     a message naming an altar (BUCIdentified's word, benchmark.trackers.mentions_altar)
  altar_drops        an object dropped on an altar: "... lands on the altar." / "... flash as ... hits the
                     altar." (NetHack's messages for a drop on an altar)
  kills              a kill as GoldenExit counts it (benchmark.trackers.is_kill; a pet's kill included)
  prayers            a god's answer to a prayer ("You feel that <god> is [well-]pleased / satisfied /
                     displeased.", "You feel a hopeful feeling.", "Then die, mortal!", "Thou must relearn
                     thy lessons!", "Thou hast angered me."): about one per prayer, as the env dismisses
                     "You begin praying" itself
  deaths             played episodes that ended before their step cap: the env declines the exit prompt,
                     so the game only ends by death (but a checkpoint source that plays a task also ends
                     at the task's success; an nld source has no known cap: empty)
New squares are not counted: the records keep no hero position and no map (schema.OBSERVATION_SCHEMA),
so a first visit of a square cannot be told apart; new_levels is the coarser count that they allow.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from benchmark.config import load_params, root
from benchmark.io import read_json, write_table
from benchmark.logs import setup_logging
from benchmark.trackers import is_kill, is_sale, mentions_altar
from maestromotif.data.collect import META_FILE, OUT_NAME, load_observations
from maestromotif.data.schema import UNKNOWN, file_metadata

log = logging.getLogger(__name__)

ALL = "all"  # the row (and column) of every record together
PER_STEPS = 1000
# "Hello, Agent!  Welcome to Asidonhopo's general store!"; not "Welcome to experience level 2.  It's a wall."
SHOP_WELCOME = re.compile(r"Welcome(?: again)? to [^!.]+'s? [^!.]+!")
ALTAR_DROP = re.compile(r"\b(?:lands? on|hits?) the altar")
PRAYER_ANSWER = re.compile(
    r"You feel that .+ is (?:well-pleased|pleased|satisfied|displeased)\.|You feel a hopeful feeling"
    r"|Then die, mortal!|Thou must relearn thy lessons!|Thou hast angered me\.")

# name -> whether a message shows it (one count per record)
MESSAGE_EVENTS: dict[str, Callable[[str], bool]] = {
    "shop_entries": lambda m: SHOP_WELCOME.search(m) is not None,
    "sales": is_sale,
    "altar_messages": mentions_altar,
    "altar_drops": lambda m: ALTAR_DROP.search(m) is not None,
    "kills": is_kill,
    "prayers": lambda m: PRAYER_ANSWER.search(m) is not None,
}
EVENTS = ("descents", "ascents", "new_levels", *MESSAGE_EVENTS, "deaths")


def _message_hits(messages: pd.Series, match: Callable[[str], bool]) -> np.ndarray:
    """match() of every message, each distinct message tested once (messages repeat a lot)."""
    hits = {m: bool(match(m)) for m in messages.unique()}
    return messages.map(hits).to_numpy(dtype=bool)


def count_events(obs: pd.DataFrame, caps: Mapping[str, int | None] | None = None) -> pd.DataFrame:
    """One row per source (in order of appearance) and one for all records (ALL): episodes, steps, each of
    EVENTS, and each event per PER_STEPS steps (`<event>_per_1k`).

    caps: per source label, the step cap its episodes were played with (deaths are the episodes that ended
    before it); a source without one (NLD) gets no death count (NaN)."""
    caps = dict(caps or {})
    order = list(dict.fromkeys(obs["source"]))  # the collect config's order (load_observations keeps it)
    obs = obs.sort_values(["source", "episode_id", "step"], kind="stable").reset_index(drop=True)
    episode = ["source", "episode_id"]
    same = (obs[episode] == obs[episode].shift()).all(axis=1).to_numpy()  # record continues an episode
    known = (obs["dlvl"] > 0) & (obs["dlvl"] != UNKNOWN)
    depth_step = obs["dlvl"].diff().to_numpy()
    moved = same & known.to_numpy() & known.shift(fill_value=False).to_numpy()
    per_record = pd.DataFrame({"source": obs["source"],
                               "descents": moved & (depth_step > 0), "ascents": moved & (depth_step < 0)})
    for name, match in MESSAGE_EVENTS.items():
        per_record[name] = _message_hits(obs["message"], match)
    counts = per_record.groupby("source", sort=False).sum()

    levels = obs[known][[*episode, "dungeon", "dlvl"]].drop_duplicates()
    counts["new_levels"] = (levels.groupby(episode).size() - 1).groupby(level="source").sum()
    lengths = obs.groupby(episode, sort=False)["step"].agg(["size", "max"])
    counts["episodes"] = lengths.groupby(level="source").size()
    counts["steps"] = lengths["size"].groupby(level="source").sum()
    last = lengths["max"].reset_index()
    cap = last["source"].map(lambda s: caps.get(s)).astype(float)  # NaN: no cap known
    ended = (last["max"] < cap).astype(float).where(cap.notna())
    counts["deaths"] = ended.groupby(last["source"]).sum(min_count=1)  # NaN: no cap known
    out = counts.reindex(order).fillna({"new_levels": 0})
    total = out.sum(numeric_only=True, min_count=1)
    if out["deaths"].isna().any():
        total["deaths"] = np.nan  # a total over the sources that have a count would look like all of them
    out.loc[ALL] = total
    out = out[["episodes", "steps", *EVENTS]]
    for e in EVENTS:
        out[f"{e}_per_1k"] = PER_STEPS * out[e] / out["steps"]
    out.index.name = "source"
    ints = ["episodes", "steps", *[e for e in EVENTS if e != "deaths"]]
    return out.astype({c: "int64" for c in ints}).reset_index()


def episode_caps(obs_dir: Path) -> dict[str, int]:
    """Per played source, the step cap of its episodes, from its chunk files' settings (collect.chunk_plan):
    collect.max_steps_per_episode when set, and never more than the env's own cap."""
    caps: dict[str, int] = {}
    for name in read_json(obs_dir / META_FILE)["files"]:
        plan = file_metadata(obs_dir / name)
        if "max_steps_per_episode" not in plan:  # an nld chunk
            continue
        env_cap = int(plan["env"]["max_episode_steps"])
        caps[plan["source"]] = min(int(plan["max_steps_per_episode"]) or env_cap, env_cap)
    return caps


def behaviours(obs_dir: Path) -> dict[str, str]:
    """Per source label, what played it, in words (from the collect stage's meta.json)."""
    out = {}
    for s in read_json(obs_dir / META_FILE).get("sources", []):
        kind = s["kind"]
        parts = {"random": ["uniform random actions"],
                 "scripted": [f"scripted {s.get('task')}", f"epsilon {s.get('epsilon', 0):g}",
                              "its small levels" if s.get("levels") == "variant" else "full game"],
                 "checkpoint": [f"checkpoint {s.get('method')}", f"epsilon {s.get('epsilon', 0):g}",
                                f"task {s['task']}" if s.get("task") else "full game"],
                 "nld": [f"human games ({s.get('dataset')})"]}.get(kind, [kind])
        out[s["label"]] = ", ".join(parts)
    return out


def events_markdown(table: pd.DataFrame, what: Mapping[str, str], note: str) -> str:
    """Events as rows, sources as columns: "count (per 1,000 steps)"."""
    sources = list(table["source"])
    rows = table.set_index("source")
    head = "| | " + " | ".join(f"`{s}`" for s in sources) + " |"
    lines = [head, "|---" * (len(sources) + 1) + "|",
             "| behaviour | " + " | ".join(what.get(s, "every source" if s == ALL else "") for s in sources)
             + " |"]
    for col in ("episodes", "steps"):
        lines.append(f"| {col} | " + " | ".join(f"{int(rows.at[s, col]):,}" for s in sources) + " |")
    for e in EVENTS:
        cells = [f"{int(rows.at[s, e]):,} ({rows.at[s, f'{e}_per_1k']:.2f})" if pd.notna(rows.at[s, e])
                 else "n/a" for s in sources]
        lines.append(f"| {e} | " + " | ".join(cells) + " |")
    return "\n".join(["## Events in the collected observations, per source", "", note, "", *lines, "",
                      "Definitions: `maestromotif/data/events.py` (new squares cannot be counted: the "
                      "records keep no hero position).", ""])


def events_path(params) -> Path:
    """The CSV the stage writes (report.collect_events, with {results_dir} filled in)."""
    from benchmark.aggregate import report_config

    return Path(report_config(params).collect_events.format(results_dir=params.results_dir))


def write_events(params, obs_dir: Path | None = None, out: Path | None = None) -> Path:
    """Count the events of the records in `obs_dir` (default <data_dir>/observations); write the CSV and
    the markdown beside it; return the CSV path."""
    top = root(params)
    obs_dir = Path(obs_dir or Path(top.data_dir) / OUT_NAME)
    out = Path(out or events_path(params))
    table = count_events(load_observations(obs_dir), episode_caps(obs_dir))
    total = table.iloc[-1]
    note = (f"Profile `{top.profile}`: the {int(total['steps']):,} records of the collect stage "
            f"({int(total['episodes']):,} episodes); each cell is a count and, in brackets, the count per "
            f"{PER_STEPS:,} steps.")
    write_table(out, table, events_markdown(table, behaviours(obs_dir), note))
    for _, r in table.iterrows():
        log.info("events[%s]: %d steps; %s", r["source"], r["steps"],
                 ", ".join(f"{e} {r[e]:g}" for e in EVENTS))
    return out


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", default=None, help="params file (default: params.yaml or $MM_PARAMS)")
    parser.add_argument("--observations", default=None, help="default: <data_dir>/observations")
    parser.add_argument("--out", default=None, help="CSV to write (default: report.collect_events)")
    args = parser.parse_args(argv)
    setup_logging()
    write_events(load_params(args.params), args.observations, args.out)


if __name__ == "__main__":
    main()
