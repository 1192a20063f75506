"""The skill-behaviour stage on the real game: its metrics count what happens, and the stage writes the
table for a (randomly initialised) skill network beside random play."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.scripted import ScriptedPolicy
from benchmark.config import defaults
from benchmark.env import EnvConfig
from maestromotif.skill_behaviour import METRICS, SkillBehaviourConfig, make_start_env, play_start, run
from tests.integration.test_train_support import ci_params, untrained_skill_run


@pytest.mark.timeout(300)
@pytest.mark.parametrize("start, variant, expect", [
    ("dl2", "delphi_small", {"depth_change": 1.0, "descents_per_1k": 1.0}),
    ("shop", "transactions_small", {"items_sold": 1.0, "steps_near_shopkeeper": 1.0}),
    ("altar", "buc_small", {"altar_drops": 1.0, "steps_near_altar": 1.0}),
])
def test_metrics_count_what_the_scripted_agent_does(start, variant, expect):
    """The scripted reference walks down / sells / drops on the altar from each start: the tracker sees it."""
    cfg = defaults("skill_behaviour", SkillBehaviourConfig, episodes=2, max_steps=400, num_envs=2)
    envs = [make_start_env(start, cfg, defaults("env", EnvConfig), "embed") for _ in range(2)]
    try:
        done = play_start(envs, [11, 12], 0, ScriptedPolicy(variant))
    finally:
        for env in envs:
            env.close()
    for record in done:
        assert record["start_reached"] == 1.0
        assert 0 < record["steps"] <= 400 and record["squares_seen"] > 0
    for metric, least in expect.items():
        assert max(r[metric] for r in done) >= least, (metric, done)
    for record in done:  # the rates are the counts per 1,000 steps played
        per_1k = 1000 / record["steps"]
        assert record["near_altar_per_1k"] == pytest.approx(record["steps_near_altar"] * per_1k)
        assert record["sales_per_1k"] == pytest.approx(record["items_sold"] * per_1k)
    if start == "dl2":  # counted from the start on level 2: the walk down from level 1 is not a descent
        assert min(r["depth_change"] for r in done) <= 1.0


@pytest.mark.timeout(600)
def test_stage_writes_every_skill_of_both_methods_and_random(tmp_path):
    params, _ = ci_params(tmp_path, "rl.crop_mode=embed", f"results_dir={tmp_path / 'results'}")
    for method in ("maestromotif", "maestromotif_oracle"):  # where the stage finds them (maestromotif.chain)
        untrained_skill_run(params, 0, method)
    cfg = defaults("skill_behaviour", SkillBehaviourConfig, episodes=2, max_steps=20, num_envs=2, cross=False,
                               skills=["descender", "merchant"])
    out = run(params, cfg)
    assert out == tmp_path / "results" / "skills.csv"
    table = pd.read_csv(out)
    assert {"skill", "method", "annotator", "metric", "mean", "se", "n"} <= set(table.columns)
    players = {("dl2", "descender"), ("shop", "merchant")}
    assert set(zip(table.start, table.skill, table.method, table.annotator)) == (
        {(*p, "maestromotif", "llm") for p in players}
        | {(*p, "maestromotif_oracle", "oracle") for p in players}
        | {("dl2", "random", "random", "none"), ("shop", "random", "random", "none")})
    # random play once per start and skill seed, shared by both methods: n = 2 episodes everywhere
    assert set(table.metric) == set(METRICS) and (table.n == 2).all()
    steps = table[table.metric == "steps"]["mean"]
    assert (steps > 0).all() and (steps <= 20).all()
    reached = table[table.metric == "start_reached"]["mean"]
    assert np.allclose(reached, 1.0)
    assert "## start `dl2`" in out.with_suffix(".md").read_text()
