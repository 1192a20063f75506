"""Every figure is written as PNG and PDF with labelled axes and the profile and seeds in its title
(FAKE data: these are not results)."""
import numpy as np
import pandas as pd
import pytest

from benchmark import aggregate, plots
from benchmark.aggregate import ReportConfig
from benchmark.config import defaults

SEEDS = [0, 1, 2]


@pytest.fixture
def captured(monkeypatch):
    """The figures handed to plots.save, with their text read before they are closed."""
    seen = []
    original = plots.save

    def spy(fig, stem, formats=("png", "pdf")):
        seen.append({"title": fig._suptitle.get_text() if fig._suptitle else fig.axes[0].get_title(),
                     "xlabels": [a.get_xlabel() for a in fig.axes],
                     "ylabels": [a.get_ylabel() for a in fig.axes]})
        return original(fig, stem, formats)

    monkeypatch.setattr(plots, "save", spy)
    return seen


def fake_scores():
    rng = np.random.default_rng(0)
    rows = []
    for label in ("Random", "FakeMethod"):
        for task, cat in (("gnomish", "navigation"), ("buc", "interaction"), ("goldenexit", "composite")):
            for seed in SEEDS:
                rows.append({"method_label": label, "task": task, "category": cat, "seed": seed,
                             "normalised": float(rng.uniform(0, 1 if label == "FakeMethod" else 0.1))})
    return pd.DataFrame(rows)


def check(paths, stem, captured):
    assert sorted(p.suffix for p in paths) == [".pdf", ".png"]
    assert all(p.stat().st_size > 1000 and p.stem == stem for p in paths)
    fig = captured[-1]
    assert "profile ci" in fig["title"] and "seeds 0, 1, 2" in fig["title"]
    assert all(fig["xlabels"]) and all(fig["ylabels"][:1])


def test_category_bars(tmp_path, captured):
    check(plots.category_bars(fake_scores(), tmp_path / "categories", "ci", SEEDS), "categories", captured)
    assert "normalised score" in captured[-1]["ylabels"][0]


def test_task_bars_against_the_paper(tmp_path, captured):
    paper = aggregate.load_paper_results(defaults("report", ReportConfig).paper_results)
    summary = pd.DataFrame([{"method_label": "Random", "title": t, "category": c, "mean": m, "stderr": 0.01}
                            for t, c, m in (("Gnomish Mines", "navigation", 0.1),
                                            ("BUC Identified", "interaction", 0.2))])
    check(plots.task_bars(summary, paper, tmp_path / "tasks", "ci", SEEDS), "tasks", captured)
    assert captured[-1]["ylabels"] == ["success rate (%)", "items per episode"]


def test_score_maximisation_bars_have_no_paper_bars(tmp_path, captured):
    """Fig. 5: the paper gives no per-bar values, so only our methods, and the title says no 'hatched'."""
    paper = aggregate.load_paper_results(defaults("report", ReportConfig).paper_results)
    summary = pd.DataFrame([{"method_label": m, "title": "Gnomish Mines", "category": "navigation", "mean": v,
                             "stderr": 0.01} for m, v in (("FakeMethod", 0.3), ("Score PPO", 0.1))])
    check(plots.task_bars(summary, paper, tmp_path / "score", "ci", SEEDS, (), title="Versus score (Fig. 5)"),
          "score", captured)
    assert captured[-1]["title"].startswith("Versus score (Fig. 5)")
    assert "hatched" not in captured[-1]["title"]
    assert captured[-1]["ylabels"] == ["success rate (%)"]


def test_skill_curves(tmp_path, captured):
    steps = np.arange(0, 1000, 100)
    curves = pd.concat([pd.DataFrame({"env_steps": steps, "skill": skill, "seed": seed,
                                      "normalised_reward": np.linspace(0, 1, len(steps)) * (seed + 1) / 3,
                                      "frequency": 0.2})
                        for skill in ("discoverer", "descender") for seed in SEEDS])
    check(plots.skill_curves(curves, tmp_path / "curves", "ci", SEEDS), "curves", captured)
    assert captured[-1]["xlabels"][0] == "environment steps"
    with pytest.raises(ValueError, match="normalised_reward"):
        plots.skill_curves(curves.drop(columns="normalised_reward"), tmp_path / "x", "ci", SEEDS)


def test_skill_curves_put_seeds_on_one_env_step_grid(tmp_path, monkeypatch):
    """Two seeds of one flat curve each (0 and 1) logged at interleaved env steps: the mean over seeds is 0.5
    at every step. Averaging rows by exact env_steps instead drew 0, 1, 0, 1, ... (each x held one seed)."""
    curves = pd.concat([
        pd.DataFrame({"env_steps": [0, 100, 200, 300], "skill": "discoverer", "seed": 0,
                      "normalised_reward": 0.0}),
        pd.DataFrame({"env_steps": [50, 150, 250, 350], "skill": "discoverer", "seed": 1,
                      "normalised_reward": 1.0}),
    ])
    grid = plots.curves_on_grid(curves, "normalised_reward")
    assert grid["env_steps"].min() == 50 and grid["env_steps"].max() == 300  # where both seeds have data
    assert np.allclose(grid["mean"], 0.5) and np.allclose(grid["se"], 0.5) and set(grid["n"]) == {2}
    drawn = []
    original = plots.save
    monkeypatch.setattr(plots, "save", lambda fig, stem, formats: drawn.append(
        [line.get_ydata() for line in fig.axes[0].lines]) or original(fig, stem, formats))
    plots.skill_curves(curves, tmp_path / "curves", "ci", [0, 1], ["png"])
    assert len(drawn[0]) == 1 and np.allclose(drawn[0][0], 0.5)  # one line per skill, flat at the mean


def test_skill_curves_of_two_methods_get_one_row_each(tmp_path, monkeypatch):
    """MaestroMotif beside its oracle-label variant: one row of panels per method, each drawn from that
    method's curves only (flat at 0 for one, 1 for the other)."""
    curves = pd.concat([pd.DataFrame({"env_steps": [0, 100, 200], "skill": "descender", "seed": 0,
                                      "normalised_reward": value, "frequency": 0.5, "method_label": label})
                        for label, value in (("FakeA", 0.0), ("FakeB", 1.0))])
    drawn = []
    original = plots.save
    monkeypatch.setattr(plots, "save", lambda fig, stem, formats: drawn.append(
        [(ax.get_title(), [line.get_ydata() for line in ax.lines]) for ax in fig.axes])
        or original(fig, stem, formats))
    plots.skill_curves(curves, tmp_path / "curves", "ci", [0], ["png"])
    (title_a, lines_a), _, (title_b, lines_b), _ = drawn[0]  # rows: reward and frequency panels per method
    assert (title_a, title_b) == ("FakeA", "FakeB")
    assert np.allclose(lines_a[0], 0.0) and np.allclose(lines_b[0], 1.0)


def test_skill_curves_grid_interpolates_between_logged_steps():
    curves = pd.DataFrame({"env_steps": [0, 100, 0, 200], "skill": "merchant", "seed": [0, 0, 1, 1],
                           "frequency": [0.0, 1.0, 0.0, 1.0]})
    grid = plots.curves_on_grid(curves, "frequency", points=3)  # grid 0, 50, 100
    # seed 0 at 50: 0.5, at 100: 1.0; seed 1 (slope 1/200) at 50: 0.25, at 100: 0.5
    assert grid["mean"].tolist() == pytest.approx([0.0, 0.375, 0.75])


def test_interval_plot(tmp_path, captured):
    intervals = {g: {"Random": {"point": 0.05, "low": 0.0, "high": 0.1},
                     "FakeMethod": {"point": 0.5, "low": 0.3, "high": 0.7}} for g in ("all", "navigation")}
    check(plots.interval_plot(intervals, tmp_path / "iqm", "ci", SEEDS), "iqm", captured)
    assert captured[-1]["xlabels"][0] == "IQM of normalised score"


def test_same_data_gives_the_same_png_bytes(tmp_path):
    a = plots.category_bars(fake_scores(), tmp_path / "a", "ci", SEEDS, ["png"])[0]
    b = plots.category_bars(fake_scores(), tmp_path / "b", "ci", SEEDS, ["png"])[0]
    assert a.read_bytes() == b.read_bytes()
