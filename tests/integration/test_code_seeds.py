"""MaestroMotif's runs are skill seeds x code seeds: evaluating code seed k deploys code seed k's program
over skills (the one the env wrapper runs, named in every record), and aggregate/report count every
(skill seed, code seed) pair as one seed and mark the cells that ran a reference fallback program.

Real NLE, the real skill network (at its random initialisation: deployment needs the network, not its
training), real programs in the real options wrapper and sandbox (~1 min: marked slow)."""
from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest

from benchmark import aggregate, config, evaluate, report
from maestromotif.options.program import reference_program
from maestromotif.options.wrapper import OptionsWrapper
from tests.integration.test_train_support import untrained_skill_run

TASK = "gnomish"


def write_program(codegen, seed: int, source: str, kind: str, reason: str = "") -> str:
    """A codegen output as the codegen stage writes it: program.py + summary.json; returns its sha256."""
    folder = codegen / TASK / f"seed{seed}"
    folder.mkdir(parents=True)
    (folder / "program.py").write_text(source)
    sha = hashlib.sha256(source.encode()).hexdigest()
    (folder / "summary.json").write_text(json.dumps({"program": TASK, "seed": seed, "source": kind,
                                                     "reason": reason, "sha256": sha}))
    return sha


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("code_seeds")
    params = config.compose("ci", ["methods=[maestromotif]", f"tasks=[{TASK}]", "skill_seeds=[0]",
                                   "codegen.code_seeds=[0,1]", f"data_dir={tmp}/data",
                                   f"results_dir={tmp}/results", "evaluate.episodes=2",
                                   "evaluate.max_episode_steps=40", "report.bootstrap_reps=50"])
    untrained_skill_run(params, 0)
    codegen = tmp / "data" / "codegen"
    reference = reference_program(TASK).source
    # code seed 0: a program "the LLM wrote" (the reference plus a line, so not byte-identical: sandboxed);
    # code seed 1: codegen's fallback, the reference program marked as such
    shas = {0: write_program(codegen, 0, reference + "\n# written for code seed 0\n", "llm"),
            1: write_program(codegen, 1, reference.replace("(reference)", "(reference-fallback)", 1),
                             "reference-fallback", reason="select_skill: no python block")}
    outs = {k: evaluate.evaluate("maestromotif", TASK, 0, params, progress=False, code_seed=k)
            for k in (0, 1)}
    return params, codegen, shas, outs


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_code_seed_k_runs_and_records_code_seed_ks_program(setup):
    _, codegen, shas, outs = setup
    for k, out in outs.items():
        assert out.name == f"seed0_code{k}"
        records = evaluate.finished_records(out)
        assert len(records) == 2
        for r in records:
            assert (r["seed"], r["skill_seed"], r["code_seed"]) == (0, 0, k)
            program = r["policy_provenance"]["program"]
            assert program["path"] == str(codegen / TASK / f"seed{k}" / "program.py")
            assert program["sha256"] == shas[k] and program["code_seed"] == k
            init_term = r["policy_provenance"]["init_term"]  # no init_term output here: our functions ran
            assert init_term["path"].endswith("programs/init_term.py") and init_term["source"] == "reference"
            assert not init_term["fallback"] and len(init_term["sha256"]) == 64
        prov = json.loads((out / "provenance.json").read_text())
        assert prov["code_seed"] == k and prov["policy_provenance"]["program"]["sha256"] == shas[k]
    llm, fallback = (evaluate.finished_records(outs[k])[0]["policy_provenance"]["program"] for k in (0, 1))
    assert (llm["source"], llm["fallback"]) == ("llm", False)
    assert (fallback["source"], fallback["fallback"]) == ("reference", True)
    assert fallback["reason"] == "select_skill: no python block"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_env_wrapper_runs_the_code_seeds_program(setup):
    """Not only the records: the options wrapper of an evaluation env holds code seed k's program."""
    from benchmark.env import make

    params, _, shas, _ = setup
    for k in (0, 1):
        method = evaluate.build_method("maestromotif", code_seed=k)
        policy = method.policy(params.data_dir + "/fit/maestromotif/seed0", TASK, params)
        env = policy.wrap_env(make(task=TASK))
        try:
            wrapper = env
            while not isinstance(wrapper, OptionsWrapper):
                wrapper = wrapper.env
            assert wrapper.program.sha256 == shas[k] and not wrapper.program.trusted
        finally:
            env.close()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_aggregate_counts_each_pair_as_a_seed_and_the_table_marks_fallbacks(setup):
    params, _, _, _ = setup
    aggregate.aggregate(params)
    report.report(params)
    results = config.REPO_ROOT / params.results_dir
    scores = pd.read_csv(results / "scores_per_seed.csv")
    assert scores["run"].tolist() == ["seed0_code0", "seed0_code1"]
    assert scores["code_seed"].tolist() == [0, 1] and scores["seed"].tolist() == [0, 0]
    assert scores["fallback"].fillna("").tolist() == ["", "program"]
    summary = pd.read_csv(results / "summary.csv").iloc[0]
    assert summary["n_seeds"] == 2 and summary["n_fallback_runs"] == 1
    expected = scores["score"].std(ddof=1) / 2 ** 0.5
    assert summary["stderr"] == pytest.approx(expected, abs=1e-6)
    agg = json.loads((results / "aggregate.json").read_text())
    assert agg["runs"]["maestromotif"] == ["seed0_code0", "seed0_code1"] and agg["code_seeds"] == [0, 1]
    table = (results / "table1.md").read_text()
    assert "| Gnomish Mines |" in table and " †" in table
    assert "MaestroMotif (ours, ci; 10k steps), Gnomish Mines: 1 of 2 runs (program)" in table
    assert "skill seeds [0] x code seeds [0, 1] (n=2 runs)" in table


def test_a_code_seeded_method_needs_a_listed_code_seed(tmp_path):
    params = config.compose("ci", ["codegen.code_seeds=[0,1]", f"data_dir={tmp_path}/data"])
    with pytest.raises(config.ConfigError, match="pass --code-seed"):
        evaluate.evaluate("maestromotif", TASK, 0, params)
    with pytest.raises(config.ConfigError, match="code seed 2 is not one of the params code_seeds"):
        evaluate.evaluate("maestromotif", TASK, 0, params, code_seed=2)
