"""A tiny real collect (random play, the scripted agent on the shop variant's levels) and its event table."""
import pandas as pd
import pytest

from benchmark.io import read_json
from maestromotif.data.collect import collect, load_observations
from maestromotif.data.events import ALL, EVENTS, write_events
from tests.fixtures.data import ci_params

MIX = ("collect.sources=[{kind: random, episodes: 3}, "
       "{kind: scripted, label: shop, task: transactions_small, levels: variant, epsilon: 0.0, episodes: 2}]")


@pytest.mark.timeout(300)
def test_the_events_of_a_real_mix_are_counted_per_source(tmp_path):
    params = ci_params(tmp_path / "data", tmp_path / "params.yaml", MIX, "collect.workers=1",
                       f"results_dir={tmp_path / 'results'}")
    out = collect(params)
    obs = load_observations(out)
    meta = read_json(out / "meta.json")
    assert meta["sources"][1]["levels"] == "variant"
    csv = write_events(params)
    assert csv == tmp_path / "results" / "collect_events.csv"
    t = pd.read_csv(csv).set_index("source")
    assert list(t.index) == ["random", "shop", ALL]
    for src in ("random", "shop"):
        mine = obs[obs.source == src]
        assert t.loc[src, "episodes"] == mine.episode_id.nunique() and t.loc[src, "steps"] == len(mine)
        assert t.loc[src, "sales"] == mine.message.str.contains("sold").sum()
        assert 0 <= t.loc[src, "deaths"] <= t.loc[src, "episodes"]
    # the shop variant's levels were played: the shopkeeper greets, the agent sells (random play does not)
    assert t.loc["shop", "shop_entries"] >= 1 and t.loc["shop", "sales"] >= 1
    assert t.loc["random", "sales"] == 0
    # an episode that stopped before the ci cap (400 steps) ended by death
    lengths = obs.groupby(["source", "episode_id"]).step.max()
    assert t.loc["random", "deaths"] == (lengths.loc["random"] < 400).sum()
    for e in EVENTS:
        assert t.loc[ALL, e] == t.loc["random", e] + t.loc["shop", e]
    md = csv.with_suffix(".md").read_text()
    assert "| uniform random actions | scripted transactions_small, epsilon 0, its small levels |" in md
    assert f"| sales | 0 (0.00) | {t.loc['shop', 'sales']:,} (" in md


def test_levels_is_checked_and_read_by_the_scripted_kind_only(tmp_path):
    from benchmark.config import ConfigError

    params = ci_params(tmp_path / "data", tmp_path / "params.yaml",
                       "collect.sources=[{kind: scripted, task: buc_small, levels: maze, episodes: 1}]")
    with pytest.raises(ConfigError, match=r"collect\.sources\[0\]\.levels='maze': choose full .* or variant"):
        collect(params)
    params = ci_params(tmp_path / "data", tmp_path / "params.yaml",
                       "collect.sources=[{kind: random, levels: variant, episodes: 1}]")
    with pytest.raises(ConfigError, match=r"collect\.sources\[0\] \(kind random\) sets \['levels'\]"):
        collect(params)
