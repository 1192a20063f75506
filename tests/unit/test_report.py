"""Paper-layout tables from a small synthetic set of scores (FAKE numbers, not results)."""
import math

import pandas as pd
import pytest

from benchmark import aggregate, report
from benchmark.aggregate import ReportConfig
from benchmark.config import defaults


def report_config(**overrides) -> ReportConfig:
    return defaults("report", ReportConfig, **overrides)


def fake_summary(profile="ci"):
    """FAKE per-(method, task) summary as the aggregate stage writes it."""
    rows = [("gnomish", "navigation", "success", 0.25, 0.05),
            ("transactions", "interaction", "count", 0.5, 0.1),
            ("goldenexit", "composite", "success", 0.0, 0.0)]
    return pd.DataFrame([{"method": "random", "method_label": "Random", "task": t, "category": c, "metric": m,
                          "mean": mean, "stderr": se, "n_seeds": 2, "episodes_per_seed": 4,
                          "profile": profile}
                         for t, c, m, mean, se in rows])


@pytest.fixture(scope="module")
def paper():
    return aggregate.load_paper_results(report_config().paper_results)


def test_cells_use_the_papers_style():
    assert report.format_value(0.46, 0.017, "success") == "46.0% ± 1.70%"
    assert report.format_value(0.66, 0.01, "count") == "0.66 ± 0.01"
    assert report.format_value(0.5, math.nan, "count") == "0.50"  # one seed: no standard error
    assert report.format_value(math.nan, math.nan, "count") == "–"


def test_table1_puts_our_numbers_beside_the_papers(paper):
    long = report.build_table(fake_summary(), paper, 1, ["random"], report_config(), "ci")
    assert list(dict.fromkeys(long["title"])) == ["Gnomish Mines", "Transactions"]
    ours = long[long["source"] == "ours"]
    assert set(ours["column"]) == {"Random (ours, ci)"} and set(ours["profile"]) == {"ci"}
    mm = long[(long["column"] == "MaestroMotif (paper)") & (long["task"] == "gnomish")].iloc[0]
    assert mm["mean"] == pytest.approx(0.46) and mm["cell"] == "46.0% ± 1.70%"
    md = report.table_markdown(long, 1, "FAKE note")
    assert md.splitlines()[2].startswith("| Task | Random (ours, ci) | MaestroMotif (paper) | LLM Policy "
                                         "(paper)")
    assert "| Gnomish Mines | 25.0% ± 5.00% | 46.0% ± 1.70% |" in md
    assert "| Transactions | 0.50 ± 0.10 | 0.66 ± 0.01 |" in md


def test_table2_holds_only_composite_tasks(paper):
    long = report.build_table(fake_summary(), paper, 2, ["random"], report_config(), "ci")
    assert set(long["task"]) == {"goldenexit"}
    assert "24.8% ± 1.18%" in set(long["cell"])


def test_normalised_scores_divide_by_the_papers_maestromotif(paper):
    scores = pd.DataFrame({"method": ["random"] * 2, "task": ["gnomish", "buc"], "score": [0.23, 0.8]})
    out = aggregate.normalised(scores, report_config(), paper)
    assert out["normalised"].tolist() == pytest.approx([0.5, 0.5])
    raw = aggregate.normalised(scores, report_config(normalise="none"), paper)
    assert raw["normalised"].tolist() == [0.23, 0.8]


def test_report_refuses_results_of_another_profile(tmp_path):
    from benchmark import config

    params = config.compose("ci", ["methods=[random]", f"results_dir={tmp_path}"])
    fake_summary(profile="small").to_csv(tmp_path / "summary.csv", index=False)
    pd.DataFrame({"profile": ["small"]}).to_csv(tmp_path / "scores_per_seed.csv", index=False)
    (tmp_path / "aggregate.json").write_text('{"profile": "small"}')
    (tmp_path / "provenance.json").write_text("{}")
    with pytest.raises(config.ConfigError, match="never mix profiles"):
        report.report(params)


def fake_maestromotif_scores():
    """FAKE per-run scores of a 3 skill seeds x 3 code seeds MaestroMotif on one task (not results)."""
    values = [0.1, 0.2, 0.3, 0.5, 0.4, 0.6, 0.2, 0.9, 0.7]
    return pd.DataFrame([{"method": "maestromotif", "task": "gnomish", "seed": s, "code_seed": c,
                          "run": f"seed{s}_code{c}", "fallback": "program" if (s, c) == (2, 1) else "",
                          "category": "navigation", "metric": "success", "score": values[3 * s + c],
                          "normalised": values[3 * s + c], "episodes": 4, "profile": "ci"}
                         for s in range(3) for c in range(3)])


def test_standard_error_treats_each_skill_and_code_seed_pair_as_one_seed():
    scores = fake_maestromotif_scores()
    row = aggregate.summarise(scores).iloc[0]
    assert row["n_seeds"] == 9 and row["n_fallback_runs"] == 1 and row["fallback_parts"] == "program"
    assert row["mean"] == pytest.approx(scores["score"].mean())
    assert row["stderr"] == pytest.approx(scores["score"].std(ddof=1) / 3)  # sqrt(9): not 3 network means
    matrix = aggregate.score_matrix(scores, "maestromotif", ["gnomish"])
    assert matrix[:, 0].tolist() == scores["score"].tolist()  # 9 runs, seed-major, none merged


def test_cells_whose_runs_ran_a_fallback_program_are_marked(paper):
    ours = aggregate.summarise(fake_maestromotif_scores()).assign(method_label="MaestroMotif")
    summary = pd.concat([ours, fake_summary().assign(n_fallback_runs=0, fallback_parts="")])
    long = report.build_table(summary, paper, 1, ["maestromotif", "random"], report_config(), "ci")
    cell = long[(long["column"] == "MaestroMotif (ours, ci)") & (long["task"] == "gnomish")].iloc[0]
    assert cell["cell"].endswith(" †") and cell["n_fallback_runs"] == 1
    assert not long[long["column"] == "Random (ours, ci)"]["cell"].str.contains("†").any()
    md = report.table_markdown(long, 1, "FAKE note")
    assert "† Ran our reference code in place of LLM-written code" in md
    assert "MaestroMotif (ours, ci), Gnomish Mines: 1 of 9 runs (program)" in md
    table = report.build_table(fake_summary(), paper, 1, ["random"], report_config(), "ci")
    clean = report.table_markdown(table, 1, "FAKE note")
    assert "†" not in clean


def test_progression_table_gives_each_methods_mean_and_standard_error_in_percent():
    scores = fake_maestromotif_scores().assign(progression=[0.0, 0.0154, 0.0185] * 3)
    summary = aggregate.summarise(scores)
    row = summary.iloc[0]
    assert row["progression_mean"] == pytest.approx((0.0154 + 0.0185) / 3)
    assert row["progression_stderr"] == pytest.approx(scores["progression"].std(ddof=1) / 3)
    md = report.progression_markdown(summary, ["maestromotif"], report_config())
    assert md.splitlines()[:2] == ["| Task | MaestroMotif |", "|---|---|"]
    cell = report.format_value(row.progression_mean, row.progression_stderr, 'success')
    assert md.splitlines()[2] == f"| Gnomish Mines | {cell} |"


def test_runs_recorded_before_max_xlvl_give_a_note_not_a_number():
    scores = fake_maestromotif_scores().assign(progression=float("nan"))
    summary = aggregate.summarise(scores)
    assert summary["progression_mean"].isna().all()
    none = report.progression_markdown(summary, ["maestromotif"], report_config())
    assert none.startswith("No progression")


def test_the_collect_events_table_is_a_section_when_its_file_exists(tmp_path):
    from benchmark import config

    params = config.compose("ci", [f"results_dir={tmp_path}"])
    cfg = aggregate.report_config(params)
    missing = report.collect_events_section(params, cfg)
    assert f"No table at `{tmp_path / 'collect_events.md'}`" in "\n".join(missing)
    table = "## Events\n\n| | `random` |\n|---|---|\n| descents | 2 (0.50) |\n"
    (tmp_path / "collect_events.md").write_text(table)
    assert report.collect_events_section(params, cfg)[0].endswith("| descents | 2 (0.50) |")


def fake_runs():
    """FAKE per-run scores of two methods on two small variants (3 seeds each)."""
    rows = []
    for seed in range(3):
        for task, random_score, good in (("gnomish_small", 0.0, 0.5 + 0.1 * seed), ("buc_small", 0.0, 0.0)):
            for method, score in (("random", random_score), ("scripted", good)):
                rows.append({"method": method, "task": task, "category": "navigation", "metric": "success",
                             "score": score, "seed": seed, "episodes": 32, "profile": "small"})
    return pd.DataFrame(rows)


def test_cells_above_random_with_z_at_least_3_are_marked_and_headers_carry_the_budget(paper):
    summary = aggregate.summarise(fake_runs()).assign(method_label="x")
    z = summary.set_index(["method", "task"])["z_vs_random"]
    assert z["scripted", "gnomish_small"] == pytest.approx(0.6 / 0.0577, rel=1e-2)  # 0.6 / (0.1 / sqrt 3)
    assert z["scripted", "buc_small"] == 0.0 and math.isnan(z["random", "gnomish_small"])
    long = report.build_table(summary, paper, 1, ["random", "scripted"], report_config(), "small",
                              {"random": "no training", "scripted": "300k steps"})
    cells = long.set_index(["task", "column"])["cell"]
    column = "Scripted reference (ours, small; 300k steps)"
    assert cells["gnomish_small", column].endswith(report.ABOVE_RANDOM_MARK)
    assert report.ABOVE_RANDOM_MARK not in cells["buc_small", column]
    assert set(long["source"]) == {"ours"}  # the paper has no numbers on the variants: no paper columns
    assert "z >= 3" in report.table_markdown(long, 1, "")
