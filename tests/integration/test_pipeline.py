"""fit -> evaluate -> aggregate -> report on the ci profile with the random method, real NLE and tasks."""
import json

import pandas as pd
import pytest

from benchmark import aggregate, config, evaluate, report
from benchmark.fit import fit

TASKS = ["gnomish", "transactions", "goldenexit"]  # one task per category: both tables, every figure panel


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    params = config.compose("ci", ["methods=[random]", f"tasks=[{','.join(TASKS)}]", "seeds=[0,1]",
                                   f"data_dir={tmp}/data", f"results_dir={tmp}/results",
                                   "evaluate.max_episode_steps=100", "report.bootstrap_reps=100"])
    for seed in params.seeds:
        fit("random", seed, params)
        for task in TASKS:
            evaluate.evaluate("random", task, seed, params, progress=False)
    aggregate.aggregate(params)
    report.report(params)
    return tmp / "results"


@pytest.mark.timeout(600)
def test_per_seed_scores_and_summary(results):
    scores = pd.read_csv(results / "scores_per_seed.csv")
    assert len(scores) == len(TASKS) * 2 and set(scores["profile"]) == {"ci"}
    # plain seeds: one run per seed, no code seed, nothing ran in place of LLM-written code
    assert set(scores["run"]) == {"seed0", "seed1"} and scores["code_seed"].isna().all()
    assert scores["fallback"].isna().all()
    summary = pd.read_csv(results / "summary.csv")
    assert set(summary["n_seeds"]) == {2} and set(summary["episodes_per_seed"]) == {2}
    assert set(summary["n_fallback_runs"]) == {0}
    agg = json.loads((results / "aggregate.json").read_text())
    assert agg["runs"] == {"random": ["seed0", "seed1"]}
    assert set(agg["iqm"]) == {"all", "navigation", "interaction", "composite"}
    prov = json.loads((results / "provenance.json").read_text())
    assert len(prov["evaluations"]) == len(TASKS) * 2 and prov["aggregate"]["profile"] == "ci"


@pytest.mark.timeout(600)
def test_tables_and_figures(results):
    t1, t2 = (results / "table1.md").read_text(), (results / "table2.md").read_text()
    assert "Random (ours, ci; no training)" in t1 and "| Gnomish Mines |" in t1 and "| Transactions |" in t1
    assert "| Golden Exit |" in t2 and "24.8% ± 1.18%" in t2 and "Gnomish" not in t2
    assert "profile **ci**" in t1
    for stem in ("categories", "tasks_vs_paper", "iqm_intervals"):
        for ext in ("png", "pdf"):
            assert (results / "figures" / f"{stem}.{ext}").stat().st_size > 1000
    text = (results / "report.md").read_text()
    assert "No per-skill reward curves found" in text  # no train stage ran: a clear note, no figure


@pytest.mark.timeout(600)
def test_aggregate_refuses_an_unfinished_evaluation(results, tmp_path):
    params = config.compose("ci", ["methods=[random]", "tasks=[gnomish]", f"data_dir={results.parent}/data",
                                   f"results_dir={tmp_path}", "evaluate.episodes=5"])
    with pytest.raises(config.ConfigError, match="has 2 of 5 episodes"):
        aggregate.aggregate(params)


@pytest.mark.timeout(600)
def test_every_run_has_a_balrog_progression(results):
    scores = pd.read_csv(results / "scores_per_seed.csv")
    assert scores["progression"].between(0, 1).all() and scores["max_xlvl_mean"].ge(1).all()
    summary = pd.read_csv(results / "summary.csv")
    assert summary["progression_mean"].notna().all() and summary["progression_stderr"].notna().all()
    text = (results / "report.md").read_text()
    assert "## BALROG progression" in text and "| Gnomish Mines |" in text.split("## BALROG progression")[1]


@pytest.mark.timeout(600)
def test_report_html_renders_in_a_real_browser(results, browser):
    page = browser(results / "report.html")
    assert page.title == "MaestroMotif benchmark results (ci)"
    assert page.console_errors == []
    pngs = sorted(p.name for p in (results / "figures").glob("*.png"))
    assert sorted(img["src"].removeprefix("figures/") for img in page.images) == pngs and pngs
    assert all(img["complete"] and img["naturalWidth"] > 0 for img in page.images), page.images
    assert page.tables == 3  # Table 1, Table 2, BALROG progression
    assert "Gnomish Mines" in page.text and "Golden Exit" in page.text and "BALROG progression" in page.text


@pytest.mark.timeout(600)
def test_a_run_without_composite_tasks_still_writes_every_table_file(results, tmp_path):
    # DVC declares table2.* as outputs of the report stage: they must exist whatever the task list
    params = config.compose("ci", ["methods=[random]", "tasks=[gnomish]", "seeds=[0,1]",
                                   f"data_dir={results.parent}/data", f"results_dir={tmp_path}",
                                   "evaluate.max_episode_steps=100", "report.bootstrap_reps=100"])
    aggregate.aggregate(params)
    report.report(params)
    assert "No task of this table was evaluated" in (tmp_path / "table2.md").read_text()
    assert pd.read_csv(tmp_path / "table2.csv").empty
    assert "| Gnomish Mines |" in (tmp_path / "table1.md").read_text()
