"""benchmark.stage_times: per-stage wall times of `dvc repro`, from DVC's own output."""
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark import stage_times

HAS_DVC = shutil.which("dvc") is not None or (Path(sys.executable).parent / "dvc").exists()
needs_dvc = pytest.mark.skipif(not HAS_DVC, reason="needs dvc")


def test_stage_spans_end_each_stage_at_the_next_start():
    ticks = iter([10.0, 25.0, 26.5])
    lines = ["Verifying data sources\n", "Running stage 'collect':\n", "> python -m x\n",
             "Stage 'pairs' didn't change, skipping\n", "Running stage 'reward@merchant':\n", "done\n"]
    echoed, ended = [], []
    spans = stage_times.stage_spans(lines, clock=lambda: next(ticks), load=lambda: 1.5, echo=echoed.append,
                                    on_end=lambda span: ended.append(span["stage"]))
    assert echoed == lines  # every line passes through
    assert ended == ["collect"]  # the last stage's success is the exit status's to say
    assert [(s["stage"], s["started"], s["ended"], s["load"]) for s in spans] == [
        ("collect", 10.0, 25.0, 1.5), ("reward@merchant", 25.0, 26.5, 1.5)]


def test_stage_spans_nothing_ran():
    assert stage_times.stage_spans(["Data and pipelines are up to date.\n"], clock=lambda: 0.0) == []


def test_merge_rows_keeps_stages_that_did_not_run():
    old = [{"stage": "collect", "seconds": "60.0"}, {"stage": "pairs", "seconds": "5.0"}]
    new = [{"stage": "pairs", "seconds": "7.0"}, {"stage": "report", "seconds": "3.0"}]
    assert stage_times.merge_rows(old, new) == [
        {"stage": "collect", "seconds": "60.0"}, {"stage": "pairs", "seconds": "7.0"},
        {"stage": "report", "seconds": "3.0"}]


def test_a_file_with_other_columns_is_refused_before_anything_runs(tmp_path):
    bad = tmp_path / "stage_times.csv"
    bad.write_text("name,time\ncollect,3\n")
    with pytest.raises(ValueError, match="stage_times.csv.*delete the file"):
        stage_times.main(["--out", str(bad), "--", "--dry"])
    assert bad.read_text() == "name,time\ncollect,3\n"


def _two_stage_repo(tmp_path):
    """A real DVC project with two stages, and how to run stage_times in it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=repo, check=True, env=env)
    (repo / "dvc.yaml").write_text(
        "stages:\n"
        "  first:\n    cmd: sleep 1 && echo a > a.txt\n    outs: [a.txt]\n"
        "  second:\n    cmd: cat a.txt > b.txt\n    deps: [a.txt]\n    outs: [b.txt]\n")
    out = tmp_path / "times.csv"
    cmd = [sys.executable, "-m", "benchmark.stage_times", "--out", str(out)]
    return repo, out, lambda: subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)


@needs_dvc
def test_real_dvc_repro_records_each_stage(tmp_path):
    """A real two-stage DVC pipeline: both stages timed; a no-op rerun keeps their rows."""
    repo, out, run_it = _two_stage_repo(tmp_path)
    run = run_it()
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Running stage 'first'" in run.stdout  # DVC's output passes through
    rows = list(csv.DictReader(out.open()))
    assert [r["stage"] for r in rows] == ["first", "second"]
    assert float(rows[0]["seconds"]) >= 1.0  # the sleep
    assert all(r["commit"] and r["finished_at"].endswith("Z") for r in rows)
    again = run_it()
    assert again.returncode == 0
    assert list(csv.DictReader(out.open())) == rows  # nothing ran: the measured rows stay


@needs_dvc
def test_a_torn_dvc_lock_is_set_aside_and_the_run_repeated(tmp_path):
    repo, out, run_it = _two_stage_repo(tmp_path)
    assert run_it().returncode == 0
    lock = (repo / "dvc.lock").read_text()
    torn = lock[: len(lock) // 2] + "\n  bogus_key: [\n"  # what a kill mid-write can leave
    (repo / "dvc.lock").write_text(torn)
    (repo / "b.txt").unlink()
    run = run_it()
    assert run.returncode == 0, run.stdout + run.stderr
    assert "running `dvc repro` once more without it" in run.stdout
    kept = list(repo.glob("dvc.lock.torn-*"))
    assert len(kept) == 1 and kept[0].read_text() == torn  # set aside, not deleted
    assert (repo / "b.txt").read_text() == "a\n" and "second" in (repo / "dvc.lock").read_text()
