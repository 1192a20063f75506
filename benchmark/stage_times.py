"""Run `dvc repro` and record how long each stage took: results/<profile>/stage_times.csv.

    python -m benchmark.stage_times                  # what `make repro` runs
    python -m benchmark.stage_times -- --force collect    # arguments after -- go to `dvc repro`

DVC prints "Running stage 'NAME':" when a stage starts; a stage ends when the next one starts or the run
ends. Each stage that ran gets a row (stage, seconds, finished_at, commit, load average at its end); the
rows of stages that did not run this time are kept from earlier runs, so the file always holds the last
measured time of every stage (README "Results" quotes it). Output lines pass through unchanged.
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

RUNNING = re.compile(r"^Running stage '([^']+)'")
FIELDS = ["stage", "seconds", "finished_at", "commit", "load_1min"]


def stage_spans(lines: Iterable[str], clock: Callable[[], float] = time.time,
                load: Callable[[], float] = lambda: os.getloadavg()[0],
                echo: Callable[[str], None] = lambda line: None) -> list[dict]:
    """One dict (stage, started, ended, load at its end) per stage DVC started, from its output lines as
    they arrive; a stage ends when the next one starts or the output ends."""
    spans: list[dict] = []

    def close(now: float) -> None:
        if spans and spans[-1]["ended"] is None:
            spans[-1].update(ended=now, load=load())

    for line in lines:
        echo(line)
        m = RUNNING.match(line)
        if m:
            now = clock()
            close(now)
            spans.append({"stage": m.group(1), "started": now, "ended": None, "load": None})
    close(clock())
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", default=None)
    parser.add_argument("--out", default=None, help="default: <results_dir of the params>/stage_times.csv")
    parser.add_argument("dvc_args", nargs="*", help="passed to `dvc repro` (put them after --)")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else Path(root(load_params(args.params)).results_dir) / "stage_times.csv"
    old = read_rows(out)  # a malformed file fails here, before anything runs
    # dvc from PATH (the Makefile puts the venv's first)
    proc = subprocess.Popen(["dvc", "repro", *args.dvc_args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert proc.stdout is not None
    try:
        spans = stage_spans(proc.stdout, echo=lambda line: (sys.stdout.write(line), sys.stdout.flush()))
    finally:
        rc = proc.wait()
    # the last stage of a failed run did not finish: it gets no time
    finished = spans if rc == 0 else spans[:-1]
    ref = git_describe()
    new = [{"stage": sp["stage"], "seconds": f"{sp['ended'] - sp['started']:.1f}",
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sp["ended"])), "commit": ref,
            "load_1min": f"{sp['load']:.2f}"} for sp in finished]
    if new:
        write_rows(out, merge_rows(old, new))
        total = sum(float(r["seconds"]) for r in new)
        print(f"stage_times: {len(new)} stage(s), {total / 60:.1f} min -> {out}", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
