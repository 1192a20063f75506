"""Same seed, same numbers, across processes: a stage run twice, each time in a fresh Python process, writes
the same files. Only wall-clock fields are dropped before comparing (named in each test)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmark.config import compose, write_params


def _run(args: list[str], params_path: Path) -> None:
    env = {**os.environ, "MM_PARAMS": str(params_path)}
    proc = subprocess.run([sys.executable, "-m", *args, "--params", str(params_path)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _without_timing(path: Path) -> dict:
    """A JSON file minus `this_run`, the only part that measures this run's wall clock (seconds, rates)."""
    data = json.loads(path.read_text())
    data.pop("this_run", None)
    return data


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_evaluation_repeats_exactly_in_a_new_process(tmp_path, trained_task_ppo):
    """episodes.jsonl holds no timestamps (provenance.json does, and is not compared), so the two files must
    be byte-identical: same games, same sampled actions, same network outputs."""
    t = trained_task_ppo
    shutil.copytree(t.data_dir / "fit", tmp_path / "fit")
    params = compose("ci", [f"data_dir={tmp_path}", f"tasks=[{t.task}]", "evaluate.episodes=3"])
    params_path = tmp_path / "params.yaml"
    write_params(params, params_path)
    out = tmp_path / "evaluate" / t.method / t.task / "seed0"
    runs = []
    for name in ("first", "second"):
        _run(["benchmark.evaluate", "--method", t.method, "--task", t.task, "--seed", "0", "--no-progress"],
             params_path)
        runs.append(out.rename(tmp_path / name))
    first, second = runs
    assert (first / "episodes.jsonl").read_bytes() == (second / "episodes.jsonl").read_bytes()
    assert len((first / "episodes.jsonl").read_text().splitlines()) == 3
    assert _without_timing(first / "summary.json") == _without_timing(second / "summary.json")


@pytest.mark.timeout(600)
def test_collect_repeats_exactly_in_a_new_process(tmp_path):
    """Every chunk file (rows and the settings stored in it) and meta.json, byte for byte; with two spawned
    workers."""
    outs = []
    for name in ("a", "b"):
        params = compose("ci", [f"data_dir={tmp_path / name}", "collect.sources=[{kind:random,episodes:4}]",
                                "collect.episodes_per_chunk=2", "collect.max_steps_per_episode=100",
                                "collect.workers=2"])
        write_params(params, tmp_path / f"{name}.yaml")
        _run(["maestromotif.data.collect"], tmp_path / f"{name}.yaml")
        outs.append(_files(tmp_path / name / "observations"))
    assert sorted(outs[0]) == ["chunk_00000.parquet", "chunk_00001.parquet", "meta.json"]
    assert outs[0] == outs[1]


@pytest.mark.timeout(600)
def test_annotate_repeats_exactly_in_a_new_process(tmp_path, ci_data):
    """The real annotate stage with the rule oracle: chunk files and labels.parquet byte for byte,
    metrics.json without `this_run` (wall-clock seconds and pairs/s)."""
    params = compose("ci", [f"data_dir={ci_data.data_dir}", "annotate.annotator=oracle"])
    write_params(params, tmp_path / "params.yaml")
    for name in ("a", "b"):
        pairs = ci_data.pairs_dir / "descender.parquet"
        _run(["maestromotif.annotate", "--skill", "descender", "--pairs", str(pairs),
              "--out", str(tmp_path / name)], tmp_path / "params.yaml")
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert sorted(a) == sorted(b) and "labels.parquet" in a
    assert len([k for k in a if k.startswith("chunks/")]) == 2
    assert all(a[k] == b[k] for k in a if k != "metrics.json")
    metrics = [_without_timing(tmp_path / name / "metrics.json") for name in ("a", "b")]
    assert metrics[0] == metrics[1]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / "labels.parquet"),
                                  pd.read_parquet(tmp_path / "b" / "labels.parquet"))
