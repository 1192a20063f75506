"""The comparison rules of benchmark.regression on hand-computed inputs (pure functions, no env)."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

from benchmark import regression as R
from benchmark.config import ConfigError, defaults
from benchmark.probes import Metric, Probe


def regression_config(**overrides) -> R.RegressionConfig:
    """conf/regression/default.yaml's settings without trained rows (these tests count the rows they give)."""
    untrained = {"trained_methods": [], "trained_tasks": []}
    return defaults("regression", R.RegressionConfig, **{**untrained, **overrides})


def test_spread_of_identical_blocks_is_floored_by_the_laplace_pseudo_episodes():
    blocks = [[1.0] * 4] * 5  # never failed in 20 episodes
    s = R.spread(blocks, episodes=4)
    pooled_sd = np.std([1.0] * 20 + [0.0, 1.0], ddof=1)
    assert s["value"] == 1.0 and s["block_sd"] == 0.0
    assert s["se_run"] == pytest.approx(pooled_sd / 2)
    assert s["se_ref"] == pytest.approx(pooled_sd / math.sqrt(20))


def test_spread_uses_the_measured_block_spread_when_larger():
    blocks = [[0, 0], [4, 4], [0, 0], [4, 4]]  # block means 0, 4, 0, 4: sd 2.309
    s = R.spread(blocks, episodes=2)
    assert s["value"] == 2.0
    assert s["se_run"] == pytest.approx(np.std([0, 4, 0, 4], ddof=1))
    assert s["se_ref"] == pytest.approx(np.std([0, 4, 0, 4], ddof=1) / 2)


def test_z_is_bonferroni_over_the_stochastic_rows():
    cfg = regression_config(methods=["a", "b"], tasks=["t"] * 5, false_alarm_rate=0.01)
    assert R.z_value(cfg) == pytest.approx(3.2905, abs=1e-3)  # Phi^-1(1 - 0.01 / 20)


def test_compare_rows():
    cfg = regression_config(methods=["m"], tasks=["t"], rtol=0.0, atol=0.1, false_alarm_rate=0.05)
    ref = {"metrics": {
        "e": {"kind": "exact", "value": "abc"},
        "f": {"kind": "float", "value": [1.0, 2.0]},
        "s": {"kind": "stochastic", "value": 1.0, "se_ref": 0.3, "se_run": 0.4},
        "missing": {"kind": "exact", "value": 1},
    }}
    z = R.z_value(cfg)  # 1.96 for one row at 5 %
    metrics = [R.Metric("e", "exact", "abc"), R.Metric("f", "float", [1.05, 2.2]),
               R.Metric("s", "stochastic", 1.0 + 0.99 * z * 0.5), R.Metric("new", "exact", 3)]
    rows = {r.metric: r for r in R.compare(metrics, ref, cfg, require_all=True)}
    assert rows["e"].passed and not rows["f"].passed and rows["s"].passed
    assert not rows["new"].passed and not rows["missing"].passed
    assert rows["s"].bound == f"±{z * 0.5:.3f}"
    beyond = R.compare([R.Metric("s", "stochastic", 1.0 - 1.01 * z * 0.5)], ref, cfg)
    assert not beyond[0].passed
    table = R.format_table(list(rows.values()))
    assert table.splitlines()[0].split() == ["metric", "kind", "reference", "now", "bound", "result"]
    assert table.endswith("2 passed, 3 failed")


def test_actions_round_trip_and_run_length():
    from benchmark.probes import run_length
    from benchmark.regression_probes import decode_actions, encode_actions

    actions = list(range(28)) + [0, 0, 5]
    assert decode_actions(encode_actions(actions)) == actions
    assert run_length([0, 0, 1, 1, 1, 0]) == "0x2,1x3,0x1"


class ConstantProbe(Probe):
    """A probe a new method could bring: named only in the config, never in benchmark.regression."""

    def __init__(self, value: int = 7):
        self.value = value

    def record(self, inp):
        return {"constant_probe": {"recorded": self.value}}

    def measure(self, inp, reference):
        return [Metric("constant/value", "exact", reference["constant_probe"]["recorded"])]


def test_a_probe_named_by_target_runs_without_editing_the_harness():
    target = f"{__name__}.ConstantProbe"
    cfg = regression_config(methods=[], tasks=[], probes={"constant": {"_target_": target, "value": 3}})
    assert R.section_names(cfg) == ["constant", "policy"]
    inp = R.Inputs.__new__(R.Inputs)  # no params needed by this probe
    inp.cfg = cfg
    probe = R.build_probes(cfg)["constant"]
    reference = {"metrics": {"constant/value": {"kind": "exact", "value": 3}}, **probe.record(inp)}
    rows = R.compare(R.run(inp, reference, ["constant"]), reference, cfg)
    assert [(r.metric, r.passed) for r in rows] == [("constant/value", True)]


@pytest.mark.parametrize("entry, message", [
    ({"value": 3}, "regression.probes.bad (conf/regression/default.yaml) has no `_target_`"),
    ({"_target_": "no_such_module.Probe"}, "cannot build `_target_: no_such_module.Probe`"),
    ({"_target_": "collections.OrderedDict"}, "built OrderedDict, not a benchmark.probes.Probe"),
])
def test_a_bad_probe_entry_is_a_clear_error(entry, message):
    cfg = regression_config(probes={"bad": entry})
    with pytest.raises(ConfigError, match=re.escape(message)):
        R.build_probes(cfg)
