"""The ci-profile regression check (benchmark.regression) against the committed reference, and planted
regressions that it must catch. Real NLE, real reward-model training, real options wrapper; the ci data
(collect + pairs) comes from the session fixture `ci_data`.

When one of these fails after an intended change, rerun `python -m benchmark.regression --update` and
commit results/regression/reference.json (README, "Regression check").
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from omegaconf import OmegaConf

from benchmark import provenance
from benchmark import regression as R
from benchmark.config import REPO_ROOT, defaults, section

# Every section the committed reference holds (the configured probes' and the harness's policy rows).
SECTIONS = ("data", "oracle", "reward", "intrinsic", "stats", "tracker", "options")


# ----- fixtures ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def reference():
    cfg = defaults("regression", R.RegressionConfig)
    return R.load_reference(R.reference_path(cfg), cfg)


@pytest.fixture(scope="session")
def regression_data(tmp_path_factory):
    """The check's data dir: its fit() artefacts, among them the trained rows' training run, made once per
    session (by whichever test needs it first) and reused by the others."""
    return tmp_path_factory.mktemp("regression") / "data"


@pytest.fixture(scope="session")
def regression_inputs(ci_data, regression_data):
    params = OmegaConf.merge(ci_data.params, {"data_dir": str(regression_data)})
    cfg = OmegaConf.to_object(section(params, "regression", R.RegressionConfig))
    return R.Inputs(params, cfg, given={"obs_dir": ci_data.obs_dir, "pairs_dir": ci_data.pairs_dir})


@pytest.fixture(scope="session")
def full_run(regression_inputs, reference):
    """The replayable sections, measured once per session in this process on the unmodified code."""
    metrics = R.run(regression_inputs, reference, ["policy", "stats", "options", "tracker"])
    return {m.name: m for m in metrics}, R.compare(metrics, reference, regression_inputs.cfg)


def narrowed(inp: R.Inputs, **changes) -> R.Inputs:
    """The same params and data with a smaller regression config (e.g. one method, one task)."""
    return R.Inputs(inp.params, dataclasses.replace(inp.cfg, **changes), given=inp.given)


def failed(rows, prefix: str = "") -> set[str]:
    return {r.metric for r in rows if not r.passed and r.metric.startswith(prefix)}


# ----- the unmodified code passes ------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_unmodified_code_passes(regression_data):
    """The whole check, run as a user runs it: `python -m benchmark.regression` in a fresh process, as the
    reference was made. (Trained reward models differ in the last float bits after a long test session
    in one process, and those bits compound over training steps, so this row set is not run in-process.)
    It trains the trained rows' method (a few minutes), into the session's regression data dir."""
    proc = subprocess.run([sys.executable, "-m", "benchmark.regression", "--data-dir", str(regression_data)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=1700)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]
    table = proc.stdout
    assert " 0 failed" in table and "FAIL" not in table
    for kind in ("exact", "float", "stochastic", "machine"):
        assert f" {kind} " in table
    for name in (*SECTIONS, R.POLICY):
        assert any(line.startswith(f"{name}/") for line in table.splitlines()), name


def test_the_configured_probes_are_the_reference_sections(regression_inputs, reference):
    """conf/regression/default.yaml names a probe for every section the committed reference holds."""
    names = R.section_names(regression_inputs.cfg)
    assert names == [*SECTIONS, R.POLICY]
    assert {m.split("/")[0] for m in reference["metrics"]} == {*SECTIONS, R.POLICY, "weights"}


@pytest.mark.timeout(1800)
def test_same_ci_run_gives_same_seeds_and_numbers(full_run, regression_inputs, reference):
    """Block 0 (the check's episodes) replays the seeds and values recorded when the reference was made,
    and a second run in this session gives the same numbers again."""
    metrics, _ = full_run
    trained = R.trained_metric_names(regression_inputs.cfg)
    for name, entry in reference["metrics"].items():
        if entry["kind"] == "stochastic":
            assert metrics[name].extra["seeds"] == entry["check_block"]["seeds"], name
            if name not in trained:  # played in this process: the trained policy's floats may differ
                assert metrics[name].extra["values"] == entry["check_block"]["values"], name
        elif name.startswith("weights/") and entry["machine"] == provenance.machine():
            # reproducible training (a subprocess, one torch thread): the same network as the reference's
            assert metrics[name].value == entry["value"], name
    again = R.check_policy(narrowed(regression_inputs, tasks=["goldenexit_small", "transactions_small"],
                                    trained_methods=[]))
    assert again, "nothing was replayed"
    for m in again:
        assert m.extra["seeds"] == metrics[m.name].extra["seeds"]
        assert m.extra["values"] == metrics[m.name].extra["values"]
    for name in ("stats", "options", "tracker"):
        for m in R.run(regression_inputs, reference, [name]):
            assert m.value == metrics[m.name].value, m.name


# ----- planted regressions ---------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_halved_learning_signal_fails_the_trained_row(tmp_path, regression_inputs, reference):
    """A planted bug that halves the trained method's reward (its score term, reward_scale 0.1 -> 0.05) trains
    another network: the weights row catches it exactly on the reference's machine kind. (Only the training
    is run: the weights row needs no episodes.)"""
    name = "weights/task_ppo/delphi_small"
    if reference["metrics"][name]["machine"] != provenance.machine():
        pytest.skip(f"reference measured on {reference['metrics'][name]['machine']}, this is "
                    f"{provenance.machine()}: the weights row is not compared here")
    params = OmegaConf.merge(regression_inputs.params, {"data_dir": str(tmp_path / "data"),
                                                        "task_ppo": {"trainer": {"reward_scale": 0.05}}})
    inp = R.Inputs(params, regression_inputs.cfg)
    artefact = R.fitted(inp, "task_ppo", "delphi_small")  # the check's training run (seed 0), planted bug
    metrics = [R.Metric(name, "machine", R.weights_fingerprint(artefact), {"machine": provenance.machine()})]
    assert name in failed(R.compare(metrics, reference, regression_inputs.cfg))


@pytest.mark.timeout(600)
def test_tracker_that_never_fires_fails_the_check(monkeypatch, regression_inputs, reference):
    from benchmark.tasks import TASKS
    from benchmark.variants import GnomishMinesSmall

    class NeverFires(GnomishMinesSmall):  # planted bug: the success check never triggers
        def _step(self, obs, action, next_obs, info, env) -> None:
            pass

    monkeypatch.setitem(TASKS, "gnomish_small", NeverFires)
    inp = narrowed(regression_inputs, methods=["scripted"], tasks=["gnomish_small"], trained_methods=[])
    metrics = R.run(inp, reference, ["tracker", "policy"])
    rows = R.compare(metrics, reference, regression_inputs.cfg)
    score = next(m for m in metrics if m.name == "policy/scripted/gnomish_small")
    assert score.value == 0.0  # the scripted score collapses ...
    assert "policy/scripted/gnomish_small" in failed(rows)  # ... and the bound catches it
    assert "tracker/gnomish_small/value" in failed(rows)


@pytest.mark.timeout(1800)
def test_tracker_that_never_fires_fails_the_trained_row(monkeypatch, regression_inputs, reference, full_run):
    """The trained row (a policy trained by the check) collapses too when its task's check never fires."""
    from benchmark.tasks import TASKS
    from benchmark.variants import DelphiSmall

    class NeverFires(DelphiSmall):  # planted bug: the success check never triggers
        def _step(self, obs, action, next_obs, info, env) -> None:
            pass

    monkeypatch.setitem(TASKS, "delphi_small", NeverFires)
    inp = narrowed(regression_inputs, methods=[], tasks=[])  # the trained rows only (trained in full_run)
    metrics = [m for m in R.check_policy(inp) if m.kind == "stochastic"]
    name = "policy/task_ppo/delphi_small"
    assert [m.name for m in metrics] == [name]
    healthy = full_run[0][name].value
    assert healthy > 0 and metrics[0].value == 0.0
    assert name in failed(R.compare(metrics, reference, regression_inputs.cfg))


@pytest.mark.timeout(600)
def test_intrinsic_reward_sign_flip_fails_the_check(monkeypatch, regression_inputs, reference):
    from maestromotif.reward.intrinsic import IntrinsicReward

    original = IntrinsicReward.intrinsic

    def flipped(self, skill, message, dlvl_change, count):  # planted bug: the reward's sign
        r_int, r_hat = original(self, skill, message, dlvl_change, count)
        return -r_int, -r_hat

    # the intrinsic rows are compared on the reference's machine kind only (trained reward models), so the
    # planted bug is judged against the unmodified code measured here, in this process (and on the
    # reference's machine kind, against the committed reference too)
    unmodified = R.run(regression_inputs, reference, ["intrinsic"])
    here = {"metrics": {m.name: m.reference_entry() for m in unmodified}}
    again = R.run(regression_inputs, reference, ["intrinsic"])  # the baseline replays in this process
    assert not failed(R.compare(again, here, regression_inputs.cfg))
    monkeypatch.setattr(IntrinsicReward, "intrinsic", flipped)
    planted = R.run(regression_inputs, reference, ["intrinsic"])
    sums = {f"intrinsic/{s}/sum" for s in regression_inputs.top.skills}
    rows = R.compare(planted, here, regression_inputs.cfg)
    assert sums <= failed(rows, "intrinsic/"), R.format_table(rows)
    if reference["metrics"]["intrinsic/discoverer/sum"]["machine"] == provenance.machine():
        rows = R.compare(planted, reference, regression_inputs.cfg)
        assert sums <= failed(rows, "intrinsic/"), R.format_table(rows)


@pytest.mark.timeout(600)
def test_zeroed_skill_onehot_fails_the_check(monkeypatch, regression_inputs, reference):
    from maestromotif.options.wrapper import OptionsWrapper

    original = OptionsWrapper._observe

    def zeroed(self, obs):  # planted bug: the network never learns which skill is running
        obs = original(self, obs)
        obs["skill_onehot"] = np.zeros_like(obs["skill_onehot"])
        return obs

    monkeypatch.setattr(OptionsWrapper, "_observe", zeroed)
    rows = R.compare(R.run(regression_inputs, reference, ["options"]), reference, regression_inputs.cfg)
    bad = failed(rows, "options/")
    assert {"options/onehot_sha", "options/onehot_valid_steps", "options/network_input_sha",
            "options/encoder_sum"} <= bad, R.format_table(rows)
    assert "options/skills" not in bad  # the wrapper still switches skills; only what the network sees broke


# ----- the command line ---------------------------------------------------------------------------------
@pytest.mark.timeout(300)
def test_cli_prints_the_table_and_exits_nonzero_on_failure(tmp_path, reference, capsys):
    from benchmark.io import read_json, write_json

    path = tmp_path / "reference.json"
    write_json(path, reference)
    assert R.main(["--sections", "stats", "--reference", str(path)]) == 0
    out = capsys.readouterr().out
    assert "metric" in out and "bound" in out and "stats/iqm" in out and "0 failed" in out

    tampered = read_json(path)
    tampered["metrics"]["stats/iqm"]["value"][0] += 0.01
    write_json(path, tampered)
    assert R.main(["--sections", "stats", "--reference", str(path)]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_reference_records_how_it_was_measured(reference):
    measured = reference["measured"]
    assert measured["profile"] == "ci"
    assert measured["command"] == "python -m benchmark.regression --update"
    assert measured["stochastic"]["blocks"] >= 10
    assert measured["git_describe"] and measured["nle_version"]
    cfg = measured["config"]
    trained = R.trained_metric_names(cfg)
    assert trained, "no trained method in the check"
    for name, entry in reference["metrics"].items():
        if entry["kind"] == "stochastic":
            blocks = cfg["train_repeats"] if name in trained else measured["stochastic"]["blocks"]
            assert len(entry["block_means"]) == blocks, name
            assert entry["se_run"] > 0 and entry["se_ref"] > 0, name
    for name in trained:  # every trained row has its network's hash, with the machine it was measured on
        weights = reference["metrics"][name.replace("policy/", "weights/", 1)]
        assert weights["kind"] == "machine" and len(weights["value"]) == 16
        assert set(weights["machine"]) == {"cpu", "arch", "torch"}
