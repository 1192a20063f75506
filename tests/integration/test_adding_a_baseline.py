"""The README's worked example: a method added from files outside the repo (a .py module and its yaml)
is fitted, evaluated, aggregated and appears in the tables, with no other edit."""
import shutil
from pathlib import Path

import pandas as pd
import pytest

from benchmark import aggregate, config, evaluate, report
from benchmark.fit import fit

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples"


@pytest.mark.timeout(600)
def test_a_new_method_from_a_temporary_folder_reaches_the_tables(tmp_path, monkeypatch):
    code, methods = tmp_path / "code", tmp_path / "methods"
    code.mkdir(), methods.mkdir()
    shutil.copy(EXAMPLE / "stair_diver.py", code / "stair_diver.py")
    yaml = (EXAMPLE / "stair_diver.yaml").read_text()
    assert "_target_: baselines.stair_diver.StairDiver" in yaml  # what the README tells users to write
    (methods / "stair_diver.yaml").write_text(yaml.replace("baselines.stair_diver", "stair_diver"))
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.setenv(evaluate.METHOD_DIRS_ENV, str(methods))

    params = config.compose("ci", ["methods=[random,stair_diver]", "fit_methods=[random,stair_diver]",
                                   "tasks=[gnomish,transactions]", "seeds=[0]", f"data_dir={tmp_path}/data",
                                   f"results_dir={tmp_path}/results", "evaluate.max_episode_steps=60",
                                   "report.bootstrap_reps=50"])
    for method in params.methods:
        fit(method, 0, params)
        for task in params.tasks:
            evaluate.evaluate(method, task, 0, params, progress=False)
    aggregate.aggregate(params)
    report.report(params)

    episodes = pd.read_json(tmp_path / "data/evaluate/stair_diver/gnomish/seed0/episodes.jsonl", lines=True)
    assert len(episodes) == 2 and (episodes["steps"] > 0).all()
    scores = pd.read_csv(tmp_path / "results/scores_per_seed.csv")
    assert set(scores["method"]) == {"random", "stair_diver"}
    assert "Stair diver (ours, ci; no training)" in (tmp_path / "results/table1.md").read_text()
