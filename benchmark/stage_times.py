"""Run `dvc repro` and record how long each stage took: results/<profile>/stage_times.csv.

    python -m benchmark.stage_times                  # what `make repro` runs
    python -m benchmark.stage_times -- --force collect    # arguments after -- go to `dvc repro`

DVC prints "Running stage 'NAME':" when a stage starts; a stage ends when the next one starts or the run
ends. Each stage that ran gets a row (stage, seconds, finished_at, commit, load average at its end); the
rows of stages that did not run this time are kept from earlier runs, so the file always holds the last
measured time of every stage (README "Results" quotes it); each row is written when its stage ends.
Output lines pass through unchanged. A dvc.lock torn by a kill (DVC refuses it) is set aside as
dvc.lock.torn-<time> and the run repeated once.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

from benchmark.config import load_params, root
from benchmark.io import write_text
from benchmark.provenance import git_describe

# DVC's line when a stage starts (also read by benchmark.chaos); stage_spans anchors it with .match
RUNNING = re.compile(r"Running stage '([^']+)'")
# DVC's words for a dvc.lock it cannot read: not YAML any more, or YAML that fails its schema
TORN_LOCK = ("dvc.lock' is invalid", "dvc.lock' validation failed")
FIELDS = ["stage", "seconds", "finished_at", "commit", "load_1min"]


def stage_spans(lines: Iterable[str], clock: Callable[[], float] = time.time,
                load: Callable[[], float] = lambda: os.getloadavg()[0],
                echo: Callable[[str], None] = lambda line: None,
                on_end: Callable[[dict], None] = lambda span: None) -> list[dict]:
    """One dict (stage, started, ended, load at its end) per stage DVC started, from its output lines as
    they arrive. A stage ends when the next one starts (DVC starts the next only after one succeeded:
    `on_end` is called then) or when the output ends (the last span: whether it succeeded is the exit
    status's to say, so `on_end` is not called for it)."""
    spans: list[dict] = []
    for line in lines:
        echo(line)
        m = RUNNING.match(line)
        if m:
            now = clock()
            if spans:
                spans[-1].update(ended=now, load=load())
                on_end(spans[-1])
            spans.append({"stage": m.group(1), "started": now, "ended": None, "load": None})
    if spans:
        spans[-1].update(ended=clock(), load=load())
    return spans


def merge_rows(old: list[dict], new: list[dict]) -> list[dict]:
    """Earlier rows, with each stage that ran again replaced; stages in first-seen order."""
    by_stage = {r["stage"]: r for r in old}
    by_stage.update({r["stage"]: r for r in new})
    return list(by_stage.values())


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and set(rows[0]) != set(FIELDS):
        raise ValueError(f"{path}: columns {sorted(rows[0])}, expected {FIELDS}; "
                         "delete the file to start anew")
    return rows


def write_rows(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text(path, buf.getvalue())


def row(span: dict, commit: str) -> dict:
    return {"stage": span["stage"], "seconds": f"{span['ended'] - span['started']:.1f}",
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(span["ended"])), "commit": commit,
            "load_1min": f"{span['load']:.2f}"}


def set_torn_lock_aside(lock: Path = Path("dvc.lock")) -> Path:
    """A kill while DVC rewrote dvc.lock leaves a file that fails DVC's schema, and every later `dvc repro`
    stops on it. Keep it beside (nothing deleted) and let DVC start without it: the persistent outputs
    resume from their finished chunks, the other stages rerun to the same outputs."""
    aside = lock.with_name(f"{lock.name}.torn-{time.strftime('%Y%m%dT%H%M%S')}")
    os.replace(lock, aside)
    return aside


def repro_once(dvc_args: list[str], out: Path, commit: str) -> tuple[int, bool]:
    """One `dvc repro` with its output passed through, each finished stage's row written as it ends.
    Returns (exit status, whether DVC refused an invalid dvc.lock)."""
    seen_torn = False

    def echo(line: str) -> None:
        nonlocal seen_torn
        seen_torn = seen_torn or any(words in line for words in TORN_LOCK)
        sys.stdout.write(line)
        sys.stdout.flush()

    def record(span: dict) -> None:  # atomic, after every stage: a killed run keeps what it measured
        write_rows(out, merge_rows(read_rows(out), [row(span, commit)]))

    # dvc from PATH (the Makefile puts the venv's first)
    proc = subprocess.Popen(["dvc", "repro", *dvc_args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    assert proc.stdout is not None
    try:
        spans = stage_spans(proc.stdout, echo=echo, on_end=record)
    finally:
        rc = proc.wait()
    if spans and rc == 0:
        record(spans[-1])
    done = spans if rc == 0 else spans[:-1]
    if done:
        print(f"stage_times: {len(done)} stage(s), "
              f"{sum(sp['ended'] - sp['started'] for sp in done) / 60:.1f} min -> {out}", flush=True)
    return rc, seen_torn


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", default=None)
    parser.add_argument("--out", default=None, help="default: <results_dir of the params>/stage_times.csv")
    parser.add_argument("dvc_args", nargs="*", help="passed to `dvc repro` (put them after --)")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else Path(root(load_params(args.params)).results_dir) / "stage_times.csv"
    read_rows(out)  # a malformed file fails here, before anything runs
    commit = git_describe()
    rc, torn = repro_once(args.dvc_args, out, commit)
    if rc != 0 and torn and Path("dvc.lock").exists():
        aside = set_torn_lock_aside()
        print(f"stage_times: DVC cannot read dvc.lock (a kill while DVC wrote it?); kept as {aside}, "
              "running `dvc repro` once more without it", flush=True)
        rc, _ = repro_once(args.dvc_args, out, commit)
    return rc


if __name__ == "__main__":
    sys.exit(main())
