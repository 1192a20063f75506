"""The benchmarks' committed summary, results/bench.json: each benchmark that calls `bench_summary.record`
gets an entry with its figures, the machine (CPU model, cores, load average while it ran) and the code's git
describe. Entries of benchmarks that did not run this session are kept, so running one file updates only
its own entry. Benchmarks report ratios against references measured in the same run; nothing asserts on
wall-clock time."""
from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest

from benchmark import provenance
from benchmark.io import read_json, write_json

BENCH_JSON = Path(__file__).resolve().parents[2] / "results" / "bench.json"


def machine_now() -> dict:
    """provenance.machine() (CPU model, arch, torch build) plus the cores and the load while measuring: on
    2 shared cores the load is what the absolute numbers mostly say."""
    return {**provenance.machine(), "cores": os.cpu_count(),
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]}


class BenchSummary:
    def __init__(self):
        self.entries: dict[str, dict] = {}

    def record(self, name: str, figures: dict) -> None:
        self.entries[name] = {**figures, "machine": machine_now(),
                              "measured": datetime.datetime.now().isoformat(timespec="seconds"),
                              "git_describe": provenance.git_describe()}


def write_summary(path: Path, entries: dict[str, dict]) -> None:
    old = read_json(path).get("benchmarks", {}) if path.exists() else {}
    write_json(path, {"written_by": "make bench (tests/benchmarks/conftest.py)",
                      "benchmarks": dict(sorted({**old, **entries}.items()))})


@pytest.fixture(scope="session")
def bench_summary():
    summary = BenchSummary()
    yield summary
    if summary.entries:
        write_summary(BENCH_JSON, summary.entries)
