"""Start-up of the per-task baseline fits: from `benchmark.fit` starting a task to that task's first APPO
training iteration, for three tasks fitted one after another in one process (the small profile's
reproducible runs), against the bare interpreter start-up that each training child pays (importing torch,
sample-factory and NLE in a fresh `python`), measured in the same run.

Target (issue "Throughput", point 3): under 10 s per trained baseline. Nothing here asserts on time; the
figures go to results/bench.json (entry `baseline_startup`) and pytest-benchmark's extra_info:
    .venv/bin/python -m pytest tests/benchmarks/test_baseline_startup.py --benchmark-only -s
"""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from benchmark.config import compose
from benchmark.fit import fit
from benchmark.io import read_jsonl

TASKS = ["gnomish_small", "delphi_small", "buc_small"]
TARGET_S = 10.0


def bare_child_imports() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, sample_factory.train, nle"], check=True)
    return time.perf_counter() - start


@pytest.mark.slow
def test_per_task_baseline_startup(benchmark, tmp_path, bench_summary):
    params = compose("small", [f"data_dir={tmp_path / 'data'}", f"tasks=[{','.join(TASKS)}]", "fit_jobs=1",
                               "task_ppo.trainer.train_for_env_steps=1024"])
    startup: dict[str, float] = {}
    total: dict[str, float] = {}

    def measure():
        for task in TASKS:
            start = time.time()
            out = fit("task_ppo", 0, params, task=task, jobs=1)
            total[task] = time.time() - start
            first = read_jsonl(out / "policy" / "progress.jsonl")[0]  # written at the first iteration
            startup[task] = first["time"] - start
        return bare_child_imports()

    bare = benchmark.pedantic(measure, rounds=1, iterations=1)
    assert set(startup) == set(TASKS) and all(s > 0 for s in startup.values())
    later = [startup[t] for t in TASKS[1:]]  # the first task also pays this process's own imports
    figures = {
        "tasks": TASKS, "train_for_env_steps": 1024,
        "reproducible": bool(params.task_ppo.trainer.rl.reproducible),
        "startup_s_per_task": {t: round(s, 2) for t, s in startup.items()},
        "fit_s_per_task": {t: round(s, 2) for t, s in total.items()},
        "startup_s_mean_after_first": round(sum(later) / len(later), 2),
        "bare_child_imports_s": round(bare, 2),
        "startup_to_bare_imports_ratio": round(sum(later) / len(later) / bare, 2),
        "target_s": TARGET_S,
    }
    benchmark.extra_info.update(figures)
    bench_summary.record("baseline_startup", figures)
    print(f"\nper-task baseline start-up (fit call -> first training iteration): "
          f"{figures['startup_s_per_task']} s; a bare child's imports {bare:.2f} s; target {TARGET_S} s")
