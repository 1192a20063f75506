"""Kill anywhere, lose nothing: `benchmark.chaos` on the real pipeline (collect, SIGKILLed and rerun), and
the resume bugs the kills exposed, reproduced directly on the stage code."""
from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

from benchmark import chaos, evaluate
from benchmark.config import compose


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_killed_collect_reruns_to_the_same_records(tmp_path):
    """Two kills inside collect (12 episodes in 4 chunks, so it runs long enough to be hit), rerun, and every
    record of data/ equal to an uninterrupted copy's; the comparison itself catches a duplicated row."""
    report = chaos.chaos(tmp_path, kills=2, seed=3, targets=["collect"], dvc_targets=["pairs"],
                         overrides=["collect.sources.0.episodes=12"])
    assert report["failure"] is None, report["failure"]
    assert report["kills_landed"] >= 1, report["kills"]
    assert report["mismatches"] == [] and report["ok"]
    assert report["files_compared"] >= 10 and report["orphans"] == []
    assert json.loads((tmp_path / "chaos_report.json").read_text())["ok"]
    # the checker is not blind: a chunk with one row written twice is reported as a duplicated record
    chunk = tmp_path / "B" / "data" / "observations" / "chunk_00000.parquet"
    table = pq.read_table(chunk)
    pq.write_table(_with_first_row_twice(table), chunk)
    found = chaos.compare_trees(tmp_path / "A", tmp_path / "B")["mismatches"]
    assert [m["kind"] for m in found] == ["duplicated_records"]
    assert found[0]["file"] == "data/observations/chunk_00000.parquet"


def _with_first_row_twice(table):
    import pyarrow as pa

    return pa.concat_tables([table, table.slice(0, 1)])


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_trained_policy_resumed_mid_evaluation_plays_the_same_episodes(tmp_path, trained_task_ppo):
    """A kill inside evaluate of a trained (sampling) policy: the rerun plays the episodes still missing.
    They must be the episodes an uninterrupted run plays. Before, the network sampled its actions from the
    process-wide torch RNG, so a resumed episode (and any episode under another num_envs) drew other actions
    and ended differently."""
    t = trained_task_ppo
    shutil.copytree(t.data_dir / "fit", tmp_path / "data" / "fit")
    params = compose("ci", [f"data_dir={tmp_path / 'data'}", f"tasks=[{t.task}]", "evaluate.episodes=4",
                            "evaluate.num_envs=2", "evaluate.max_episode_steps=120"])
    full = evaluate.finished_records(evaluate.evaluate(t.method, t.task, 0, params, progress=False))
    assert [r["episode"] for r in full] == [0, 1, 2, 3]
    out = evaluate.output_dir(params, evaluate.EvaluateConfig(**params.evaluate), t.method, t.task, 0)
    # the kill came after episode 1 finished: only its record survived
    lines = (out / evaluate.EPISODES_FILE).read_text().splitlines(keepends=True)
    (out / evaluate.EPISODES_FILE).write_text("".join(x for x in lines if json.loads(x)["episode"] == 1))
    resumed = evaluate.finished_records(evaluate.evaluate(t.method, t.task, 0, params, progress=False))
    assert resumed == full
    single = compose("ci", [f"data_dir={tmp_path / 'one'}", f"tasks=[{t.task}]", "evaluate.episodes=4",
                            "evaluate.num_envs=1", "evaluate.max_episode_steps=120"])
    shutil.copytree(t.data_dir / "fit", tmp_path / "one" / "fit")
    assert evaluate.finished_records(evaluate.evaluate(t.method, t.task, 0, single, progress=False)) == full


@pytest.mark.timeout(300)
def test_a_killed_fit_leaves_nothing_behind_and_fits_repeat_in_the_same_folder(tmp_path, monkeypatch):
    """fit() stages the artefact in a folder beside it. That folder had a random name: sample-factory records
    its run folder in config.json, so two identical task_ppo fits had different artefacts (digest, and so
    every evaluation record's run_key), and a killed fit of a method fitted once for all tasks left its
    staging folder outside DVC's output, forever."""
    from baselines.random import RandomMethod
    from benchmark.fit import fit

    params = compose("ci", [f"data_dir={tmp_path / 'data'}", "methods=[random]"])
    out = tmp_path / "data" / "fit" / "random" / "seed0"
    stale = out.parent / ".seed0.partial"
    (stale / "policy").mkdir(parents=True)
    (stale / "policy" / "half_written.bin").write_bytes(b"\0" * 10)  # a fit SIGKILLed mid-way
    used = []
    real_fit = RandomMethod.fit
    monkeypatch.setattr(RandomMethod, "fit",
                        lambda self, p, d, s, t=None: (used.append(d), real_fit(self, p, d, s, t))[1])
    fit("random", 0, params)
    assert (out / "provenance.json").exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["seed0"]  # the leftover is gone
    shutil.rmtree(out)
    fit("random", 0, params)
    assert len(used) == 2 and used[0] == used[1]
