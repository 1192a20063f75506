"""Stage `metrics`: the flat files `dvc metrics` and `dvc plots` read, gathered from what the stages wrote
(real NLE evaluation of the random method; the training logs are written in the trainer's format)."""
import json

import pandas as pd
import pytest

from benchmark import aggregate, config, evaluate
from benchmark.fit import fit
from benchmark.io import append_jsonl, write_json
from benchmark.metrics import metrics, training_seconds

TASKS = ["gnomish", "goldenexit"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("metrics")
    params = config.compose("ci", ["methods=[random]", f"tasks=[{','.join(TASKS)}]", "seeds=[0,1]",
                                   f"data_dir={tmp}/data", f"results_dir={tmp}/results",
                                   "evaluate.max_episode_steps=50", "report.bootstrap_reps=50"])
    for seed in params.seeds:
        fit("random", seed, params)
    evaluate.evaluate_method("random", params, progress=False)  # both tasks x both seeds in one call
    aggregate.aggregate(params)
    # a MaestroMotif training run's logs (benchmark.appo.runner's progress.jsonl and curve.jsonl), two seeds
    # logged at different env steps, and one skill reward model's metrics.json (maestromotif.reward.train)
    for seed, steps in ((0, [100, 300]), (1, [200, 400])):
        run_dir = tmp / "data" / "fit" / "maestromotif" / f"seed{seed}"
        append_jsonl(run_dir / "progress.jsonl", [{"env_steps": s, "fps": 50.0 + seed,
                                                   "seconds_since_first_iteration": s / 50} for s in steps])
        append_jsonl(run_dir / "curve.jsonl", [{"env_steps": s, "skill": "merchant", "seed": seed,
                                                "mean_normalised_reward": float(seed), "frequency": 0.5}
                                               for s in steps])
    write_json(tmp / "data" / "reward" / "merchant" / "metrics.json",
               {"heldout_accuracy": 0.75, "train_accuracy": 0.9, "history": [{"train_seconds": 1.5}] * 2})
    # the oracle-label variant's reward model of the same skill, in its own folder (maestromotif.chain)
    write_json(tmp / "data" / "reward_oracle" / "merchant" / "metrics.json",
               {"heldout_accuracy": 1.0, "train_accuracy": 1.0, "history": [{"train_seconds": 2.0}]})
    metrics(config.compose("ci", ["methods=[random,maestromotif,maestromotif_oracle]",
                                  f"tasks=[{','.join(TASKS)}]", "seeds=[0,1]", f"data_dir={tmp}/data",
                                  f"results_dir={tmp}/results"]))
    return tmp / "results"


@pytest.mark.timeout(600)
def test_per_method_metrics_are_the_summary_and_the_logs(run):
    random = json.loads((run / "metrics" / "random.json").read_text())
    summary = pd.read_csv(run / "summary.csv").set_index("task")
    assert set(random["tasks"]) == set(TASKS)
    for task in TASKS:
        assert random["tasks"][task] == pytest.approx({"mean": summary.loc[task, "mean"],
                                                       "stderr": summary.loc[task, "stderr"], "n": 2})
    assert random["evaluate"]["wall_s"] > 0 and random["fit"] == {}  # random trains no network
    mm = json.loads((run / "metrics" / "maestromotif.json").read_text())
    assert mm["tasks"] == {}  # not in this summary: no numbers made up
    assert mm["fit"] == {"runs": 2, "frames_per_s": 50.5, "env_steps": 700, "wall_s": 14.0}
    reward = json.loads((run / "metrics" / "reward_models.json").read_text())
    assert reward == {"maestromotif": {"merchant": {"heldout_accuracy": 0.75, "train_accuracy": 0.9},
                                       "wall_s": 3.0},
                      "maestromotif_oracle": {"merchant": {"heldout_accuracy": 1.0, "train_accuracy": 1.0},
                                              "wall_s": 2.0}}  # random has no reward models: no entry
    oracle = json.loads((run / "metrics" / "maestromotif_oracle.json").read_text())
    assert oracle["label"] == "MaestroMotif (oracle labels)" and oracle["fit"] == {}  # never trained here


@pytest.mark.timeout(600)
def test_plot_files_are_flat_tables(run):
    # the oracle-label variant logged no curves: its files exist with the header only (dvc.yaml names them)
    for name in ("skill_reward", "skill_frequency"):
        empty = pd.read_csv(run / "plots" / f"{name}_maestromotif_oracle.csv")
        assert empty.empty and list(empty.columns)[0] == "env_steps"
    reward = pd.read_csv(run / "plots" / "skill_reward_maestromotif.csv")
    assert list(reward.columns) == ["env_steps", "discoverer", "descender", "ascender", "worshipper",
                                    "merchant"]
    assert reward["discoverer"].isna().all()  # no curve for it: an empty column, which dvc plots still draws
    assert reward["env_steps"].min() == 200 and reward["env_steps"].max() == 300  # both seeds' overlap
    assert reward["merchant"].tolist() == pytest.approx([0.5] * len(reward))  # seeds at 0 and 1: mean 0.5
    scores = pd.read_csv(run / "plots" / "task_scores.csv")
    assert scores["task_method"].tolist() == [f"{t} | random" for t in TASKS] and set(scores["n"]) == {2}


def test_training_seconds_sum_the_segments_of_a_resumed_run():
    # two segments: 0..30 s, then resumed and counted again from 0..20 s
    records = [{"seconds_since_first_iteration": s} for s in (10, 30, 5, 20)]
    assert training_seconds(records) == 50
