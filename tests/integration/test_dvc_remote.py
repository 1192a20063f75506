"""A DVC remote round trip: run a tiny ci pipeline (a navigation and a composite task, for both tables;
MaestroMotif, its oracle-label variant and the random baseline) in a copy of the project, `dvc push` its
data (observations, pairs, labels, reward models, checkpoints, evaluations) to a local remote, clone it,
`dvc pull`, and check the clone is up to date and re-evaluates without retraining.

The two LLM stages would take most of the budget on a small CPU, so their outputs are made without an LLM and
recorded with `dvc commit` (what a user does after running a stage by hand): the skill labels by the rule
oracle (`annotate.annotator=oracle`), no Motif labels (no Motif in this pipeline) and no codegen programs
(every program is then the reference one). Every other stage runs under `dvc repro`."""
import json
import re
import sys

import pytest

from tests.fixtures.dvc_project import copy_project, dvc, run

TINY = ("tasks=[gnomish,goldenexit]", "methods=[maestromotif,maestromotif_oracle,random]",
        "fit_methods=[random]",
        "annotate.annotator=oracle", "rl.train_for_env_steps=2048", "report.bootstrap_reps=20")


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_push_clone_pull_is_up_to_date_and_evaluates_without_retraining(tmp_path):
    origin = copy_project(tmp_path / "origin", "ci", TINY)
    dvc(origin, "repro", "pairs")  # collect + pairs
    run(origin, sys.executable, "-m", "maestromotif.annotate", "--skill", "all")  # the rule oracle
    for folder in ("data/labels/motif", "data/codegen"):
        (origin / folder).mkdir(parents=True)
        (origin / folder / "README").write_text("empty in this test: no Motif, reference programs\n")
    dvc(origin, "commit", "--force", "annotate", "codegen")
    repro = dvc(origin, "repro")
    assert {"reward@merchant", "train_skills", "fit@random-0", "evaluate_maestromotif", "evaluate@random",
            "annotate_oracle", "reward_oracle@merchant", "train_skills_oracle",
            "evaluate_maestromotif_oracle", "aggregate", "metrics"} <= ran_stages(repro.stdout)
    remote = tmp_path / "remote"
    dvc(origin, "remote", "add", "--default", "local", str(remote))
    run(origin, "git", "add", "-A")
    run(origin, "git", "commit", "-q", "-m", "tiny ci run")
    # what DVC users compare runs with: metrics per method, experiments, plots as an HTML page
    metrics = dvc(origin, "metrics", "show").stdout
    assert "maestromotif.json" in metrics and "random.json" in metrics, metrics
    assert "tasks.gnomish.mean" in metrics, metrics
    exp = dvc(origin, "exp", "show", "--no-pager", "--csv").stdout
    assert "tasks.gnomish.mean" in exp, exp
    dvc(origin, "plots", "show", "-o", str(tmp_path / "plots"))
    page = (tmp_path / "plots" / "index.html").read_text()
    assert "skill_reward" in page and "task_scores" in page
    dvc(origin, "push")

    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(origin), str(clone))
    assert not (clone / "data").exists()
    dvc(clone, "pull")
    for out in ("data/labels/merchant/labels.parquet", "data/reward/merchant/model.pt",
                "data/fit/maestromotif/seed0/summary.json",
                "data/evaluate/maestromotif/gnomish/seed0_code0/episodes.jsonl",
                "data/labels_oracle/merchant/labels.parquet", "data/reward_oracle/merchant/model.pt",
                "data/fit/maestromotif_oracle/seed0/summary.json",
                "data/evaluate/maestromotif_oracle/gnomish/seed0_code0/episodes.jsonl"):
        assert (clone / out).exists(), out
    assert json.loads(dvc(clone, "status", "--json").stdout or "{}") == {}
    assert (clone / "results" / "ci" / "metrics" / "maestromotif.json").exists()  # in git: cache: false

    policy = clone / "maestromotif" / "rl" / "policy.py"  # deployment only: re-evaluates, never retrains
    policy.write_text(policy.read_text() + "\n# edited after the pull\n")
    again = ran_stages(dvc(clone, "repro").stdout)
    assert {"evaluate_maestromotif", "evaluate_maestromotif_oracle"} <= again
    assert not {s for s in again
                if s.startswith(("train_skills", "reward", "annotate", "collect", "fit@"))}, again
