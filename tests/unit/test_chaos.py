"""benchmark.chaos' comparison and kill planning, on small real files (no pipeline run)."""
from __future__ import annotations

import json
import random
import subprocess
import sys
import time

import pandas as pd
import psutil
import torch

from benchmark import chaos


def _jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _episodes(n, **extra):
    return [{"episode": k, "score": 10 * k, "success": k % 2 == 0, **extra} for k in range(n)]


def test_records_differing_only_in_wall_clock_fields_compare_equal(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    _jsonl(a / "data/evaluate/x/episodes.jsonl", _episodes(3, seconds=1.5))
    _jsonl(b / "data/evaluate/x/episodes.jsonl", list(reversed(_episodes(3, seconds=9.0))))  # order: resume
    for top, t in ((a, "2026-01-01T00:00:00"), (b, "2026-06-01T12:00:00")):
        (top / "results").mkdir(parents=True)
        (top / "results/provenance.json").write_text(json.dumps(
            {"timestamp": t, "host": str(top), "profile": "ci", "paths": {"fit": f"{top}/data/fit"}}))
        pd.DataFrame({"method": ["random"], "iqm": [0.5], "seconds": [len(t)]}).to_csv(top / "results/s.csv")
        pd.DataFrame({"episode_id": [0, 0], "step": [0, 1], "source": ["random"] * 2}).to_parquet(
            top / "data/c.parquet")
    out = chaos.compare_trees(a, b)
    assert out["mismatches"] == [] and out["files_compared"] == 4


def test_a_duplicated_a_lost_and_a_changed_record_are_reported(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    _jsonl(a / "data/e/episodes.jsonl", _episodes(3))
    dup = _episodes(3) + [_episodes(3)[1]]  # episode 1 appended twice (a resume that replayed it)
    _jsonl(b / "data/e/episodes.jsonl", dup)
    _jsonl(a / "data/lost.jsonl", _episodes(3))
    _jsonl(b / "data/lost.jsonl", _episodes(2))
    _jsonl(a / "data/changed.jsonl", _episodes(2))
    _jsonl(b / "data/changed.jsonl", [_episodes(2)[0], {**_episodes(2)[1], "score": 99}])
    kinds = {(m["file"], m["kind"]) for m in chaos.compare_trees(a, b)["mismatches"]}
    assert kinds == {("data/e/episodes.jsonl", "duplicated_records"), ("data/lost.jsonl", "missing_records"),
                     ("data/changed.jsonl", "missing_records"), ("data/changed.jsonl", "extra_records")}


def test_same_episode_with_other_values_twice_is_a_duplicate(tmp_path):
    recs = _episodes(2) + [{**_episodes(2)[1], "score": -1}]
    assert chaos.natural_duplicates(recs) == [{"episode": 1}]


def test_a_torn_line_a_missing_file_and_a_changed_binary_are_reported(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    _jsonl(a / "data/t.jsonl", _episodes(2))
    (b / "data").mkdir(parents=True)
    (b / "data/t.jsonl").write_text(json.dumps(_episodes(2)[0]) + "\n" + '{"episode": 1, "sc')
    _jsonl(a / "data/only_a.jsonl", _episodes(1))
    torch.save({"w": torch.tensor([1.0, 2.0]), "metadata": {"pairs_per_s": 10.0}}, a / "data/w.pt")
    torch.save({"w": torch.tensor([1.0, 2.5]), "metadata": {"pairs_per_s": 99.0}}, b / "data/w.pt")
    torch.save({"w": torch.tensor(3.0)}, a / "data/torn.pt")
    (b / "data/torn.pt").write_bytes((a / "data/torn.pt").read_bytes()[:40])  # killed mid-write
    kinds = {(m["file"], m["kind"]) for m in chaos.compare_trees(a, b)["mismatches"]}
    assert ("data/t.jsonl", "torn") in kinds and ("data/only_a.jsonl", "missing_file") in kinds
    assert ("data/w.pt", "differs") in kinds and ("data/torn.pt", "torn") in kinds
    # the same tensors with another throughput in the metadata: equal
    torch.save({"w": torch.tensor([1.0, 2.0]), "metadata": {"pairs_per_s": 99.0}}, b / "data/w.pt")
    assert "data/w.pt" not in {m["file"] for m in chaos.compare_trees(a, b)["mismatches"]}


def test_only_the_latest_checkpoint_counts_and_timer_snapshots_are_ignored(tmp_path):
    """sample-factory keeps older checkpoints and best_* snapshots saved on a wall-clock timer: two equal runs
    keep different ones. The latest checkpoint (the one evaluate loads) must match."""
    a, b = tmp_path / "A" / "data/fit/sf/checkpoint_p0", tmp_path / "B" / "data/fit/sf/checkpoint_p0"
    for d, older, best in ((a, "checkpoint_000000001_256.pth", "best_000000001_256_reward_1.0.pth"),
                           (b, "checkpoint_000000002_512.pth", "best_000000003_768_reward_2.0.pth")):
        d.mkdir(parents=True)
        torch.save({"model": torch.tensor([0.0])}, d / older)
        torch.save({"model": torch.tensor([0.5])}, d / best)
        torch.save({"model": torch.tensor([1.0])}, d / "checkpoint_000000010_2560.pth")
        (d.parent / "sf_log.txt").write_text(f"log of {d}")
    out = chaos.compare_trees(tmp_path / "A", tmp_path / "B")
    assert out["mismatches"] == [] and out["files_compared"] == 1
    torch.save({"model": torch.tensor([2.0])}, b / "checkpoint_000000010_2560.pth")
    mismatches = chaos.compare_trees(tmp_path / "A", tmp_path / "B")["mismatches"]
    assert [m["kind"] for m in mismatches] == ["differs"]


def test_tainted_paths_keep_duplicates_as_mismatches_and_value_changes_as_expected(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    run = "data/evaluate/maestromotif/gnomish/seed0_code0/episodes.jsonl"
    _jsonl(a / run, _episodes(2))
    _jsonl(b / run, [{**r, "score": r["score"] + 1} for r in _episodes(2)])
    _jsonl(a / "data/evaluate/random/gnomish/seed0/episodes.jsonl", _episodes(2))
    _jsonl(b / "data/evaluate/random/gnomish/seed0/episodes.jsonl", _episodes(2) + _episodes(2)[:1])
    # a resumed oracle-label network taints its own runs only, never maestromotif's
    oracle = "data/evaluate/maestromotif_oracle/gnomish/seed0_code0/episodes.jsonl"
    _jsonl(a / oracle, _episodes(2))
    _jsonl(b / oracle, [{**r, "score": r["score"] + 1} for r in _episodes(2)])
    out = chaos.compare_trees(a, b, chaos.tainted_patterns({"maestromotif/seed0": 512}))
    assert {m["file"] for m in out["expected_divergence"]} == {run}
    assert {m["file"] for m in out["mismatches"] if m["kind"] != "duplicated_records"} == {oracle}
    out = chaos.compare_trees(a, b, chaos.tainted_patterns({"maestromotif/seed0": 512,
                                                            "maestromotif_oracle/seed0": 64}))
    assert {m["file"] for m in out["expected_divergence"]} == {run, oracle}
    assert [m["kind"] for m in out["mismatches"]] == ["duplicated_records"]


def test_resumed_training_is_found_for_both_maestromotif_methods(tmp_path):
    for method, seed, steps in (("maestromotif", 0, 512), ("maestromotif", 1, 0),
                                ("maestromotif_oracle", 0, 256)):
        summary = tmp_path / "data" / "fit" / method / f"seed{seed}" / "summary.json"
        summary.parent.mkdir(parents=True)
        summary.write_text(json.dumps({"resumed_from_env_steps": steps}))
    assert chaos.resumed_training(tmp_path) == {"maestromotif/seed0": 512, "maestromotif_oracle/seed0": 256}


def test_kills_cover_every_stage_family_in_run_order():
    order = ["collect", "pairs", "annotate", "reward@discoverer", "reward@merchant", "codegen",
             "train_skills", "fit@random-0", "fit@motif-0", "evaluate@random-gnomish-0",
             "evaluate_maestromotif@gnomish-0-0", "aggregate"]
    plan = chaos.plan_kills(random.Random(0), order, 8)
    assert {k.target for k in plan} == set(chaos.TARGETS)
    assert [order.index(k.stage) for k in plan] == sorted(order.index(k.stage) for k in plan)
    assert all(0.1 <= k.fraction <= 0.75 for k in plan)
    # the delay is that fraction of the reference's duration, or of the family's default before it is known
    assert chaos.delay_for("fit@motif-0", 0.5, {"fit@motif-0": 40.0}) == 20.0
    assert chaos.delay_for("fit@motif-0", 0.5, {}) == 0.5 * chaos.DEFAULT_DURATION_S["fit"]


def test_durations_from_a_plain_dvc_log():
    log = ("Running stage 'collect':\n> python -m x\n2026-12-02 00:07:45,807 m INFO a\n"
           "2026-12-02 00:07:46,685 m INFO b\nRunning stage 'pairs':\n2026-12-02 00:07:52,194 m INFO c\n")
    d = chaos.durations_from_log(log)
    assert list(d) == ["collect", "pairs"] and abs(d["collect"] - 2.878) < 1e-6 and d["pairs"] == 2.0


def test_kill_tree_kills_the_group_and_a_child_that_left_it():
    """A child in its own session (like the trainer under the watchdog) survives a process-group kill: it is
    reported as an orphan and killed."""
    code = ("import subprocess, time; subprocess.Popen(['sleep', '60'], start_new_session=True); "
            "subprocess.Popen(['sleep', '60']); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    deadline = time.time() + 10
    while len(chaos._descendants(proc.pid)) < 2 and time.time() < deadline:
        time.sleep(0.1)
    children = chaos._descendants(proc.pid)
    assert len(children) == 2
    orphans = chaos.kill_tree(proc, [], grace_s=1.0)
    proc.wait(timeout=5)
    assert len(orphans) == 1 and "sleep 60" in orphans[0]["cmdline"]
    time.sleep(0.3)
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)


def test_a_kill_after_the_command_finished_is_told_apart():
    log = ("===== chaos cycle 1: dvc repro =====\nRunning stage 'reward@a':\n"
           "===== chaos cycle 1: rc -9 =====\n"
           "===== chaos cycle 2: dvc repro =====\n"
           "Stage 'reward@a' is cached - skipping run, checking out outputs\n"
           "Running stage 'fit@x-0':\n===== chaos cycle 2: rc -9 =====\n"
           "===== chaos cycle 3: dvc repro =====\n"
           "Running stage 'fit@x-0':\n")
    kills = [{"stage": "reward@a", "landed": True, "cycle": 1},
             {"stage": "fit@x-0", "landed": True, "cycle": 2},
             {"stage": "evaluate@x-0", "landed": False, "cycle": None}]
    chaos.kill_phases(log, kills)
    assert kills[0]["phase"].startswith("dvc bookkeeping") and kills[1]["phase"] == "command"
    assert "phase" not in kills[2]


def test_a_lock_torn_by_a_kill_is_recognised_from_dvcs_own_error(tmp_path):
    from benchmark.chaos import _lock_is_torn

    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages:\n  collect:\n    cmd: python -m")
    (tmp_path / "chaos_repro.log").write_text("===== chaos cycle 3: dvc repro =====\n'./dvc.lock' validation "
                                              "failed.\n\nrequired key not provided, in schema\n")
    assert _lock_is_torn(tmp_path)
    (tmp_path / "chaos_repro.log").write_text("ERROR: failed to reproduce 'collect'\n")
    assert not _lock_is_torn(tmp_path)  # any other failure stays a failure
