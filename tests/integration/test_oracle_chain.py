"""maestromotif_oracle's own chain on real ci pairs: the stage command labels every skill with the rule
oracle into labels_oracle/ (the LLM chain's labels/ untouched, no LLM started), the reward stage trains on
those labels into reward_oracle/, the folders the method's conf file names; and (slow) its network trains
into the method's artefact path, which evaluate plays."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from benchmark.config import REPO_ROOT
from benchmark.evaluate import method_spec
from maestromotif import chain
from maestromotif.labels import labelled_pairs
from maestromotif.reward.model import load_checkpoint
from maestromotif.reward.train import run_skill
from tests.fixtures.data import ci_params

ORACLE = chain.ORACLE
SKILLS = ("discoverer", "descender", "ascender", "worshipper", "merchant")


@pytest.fixture(scope="module")
def oracle_chain(ci_data, tmp_path_factory):
    """The ci pairs in a fresh data dir, annotated by the stage command and one reward model per skill."""
    tmp = tmp_path_factory.mktemp("oracle_chain")
    shutil.copytree(ci_data.data_dir / "pairs", tmp / "data" / "pairs")
    # annotate.annotator stays llm: the oracle method must not depend on it
    params = ci_params(tmp / "data", tmp / "params.yaml")
    run = subprocess.run([sys.executable, "-m", "maestromotif.annotate", "--method", ORACLE, "--skill", "all",
                          "--params", str(tmp / "params.yaml")],
                         cwd=REPO_ROOT, timeout=300, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "starting the annotator LLM" not in run.stderr
    models = {s: run_skill(params, s, method=ORACLE) for s in SKILLS}
    return params, tmp / "data", models


@pytest.mark.timeout(300)
def test_oracle_labels_land_in_the_oracle_folders_only(oracle_chain):
    params, data, _ = oracle_chain
    assert not (data / "labels").exists()  # the LLM chain's folder: not written
    for skill in SKILLS:
        folder = chain.label_dir(params, ORACLE, skill)
        assert folder == data / "labels_oracle" / skill
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["annotator"] == "oracle" and metrics["method"] == ORACLE and metrics["mode"] == "rule"
        assert metrics["oracle_agreement"]["accuracy"] in (None, 1.0)  # the oracle agrees with itself
        assert len(labelled_pairs(folder)) == params.pairs.sizes[skill]


@pytest.mark.timeout(300)
def test_reward_models_land_where_the_method_file_says(oracle_chain):
    params, data, models = oracle_chain
    spec = method_spec(ORACLE)
    root = data / "reward_oracle"
    assert spec.reward_models.format(data_dir=params.data_dir) == str(root)
    assert chain.training_reward_root(params, ORACLE) == root  # what train_skills_oracle reads
    assert not (data / "reward").exists()
    for skill, path in models.items():
        assert path == root / skill / "model.pt" and (root / skill / "metrics.json").exists()
        ckpt = load_checkpoint(path, skill=skill)
        assert ckpt.metadata["annotator"] == "rule-oracle" and ckpt.metadata["method"] == ORACLE


def test_the_oracle_method_refuses_motif_labels(tmp_path):
    run = subprocess.run([sys.executable, "-m", "maestromotif.annotate", "--method", ORACLE, "--skill", "all",
                          "--motif-tasks", "all"], cwd=REPO_ROOT, timeout=120, capture_output=True, text=True)
    assert run.returncode != 0 and "labels the skills only" in run.stderr


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_its_network_trains_into_the_artefact_path_and_evaluates(oracle_chain):
    """train_skills_oracle (a few thousand steps) writes the artefact conf/method/maestromotif_oracle.yaml
    names, on the oracle's reward models, and evaluate_maestromotif_oracle plays it."""
    import os

    from omegaconf import OmegaConf

    from benchmark.config import write_params
    from benchmark.evaluate import evaluate, finished_records
    from benchmark.appo.trainer import checkpoints
    from maestromotif.rl.train import train

    params, data, _ = oracle_chain
    params = OmegaConf.merge(params, {"rl": {"train_for_env_steps": 1024},
                                      "evaluate": {"episodes": 1, "max_episode_steps": 30}})
    path = data.parent / "params_train.yaml"
    write_params(params, path)
    os.environ["MM_PARAMS"] = str(path)
    try:
        run = train(params, 0, method=ORACLE)
    finally:
        os.environ.pop("MM_PARAMS", None)
    artefact = method_spec(ORACLE).artefact.format(data_dir=params.data_dir, seed=0)
    assert str(run) == artefact and checkpoints(run)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["method"] == ORACLE and summary["reward_dir"] == str(data / "reward_oracle")
    assert not (data / "fit" / "maestromotif").exists()
    out = evaluate(ORACLE, "gnomish", 0, params, progress=False, code_seed=0)
    assert out == data / "evaluate" / ORACLE / "gnomish" / "seed0_code0"
    records = finished_records(out)
    assert len(records) == 1 and records[0]["method"] == ORACLE


@pytest.mark.timeout(600)
def test_reward_audit_plays_each_behaviour_and_sums_every_skills_return(oracle_chain, tmp_path):
    """The audit's behaviours do what they are named in the real game (from dl2 the climb climbs on its
    first step, the scripted walk descends), every skill gets a return row, and the CLI writes both files."""
    from maestromotif.reward_audit import RewardAuditConfig, audit, behaviours_for

    params, data, _ = oracle_chain
    cfg = RewardAuditConfig(episodes=2, max_steps=150, starts=["dl2", "shop"], methods=[ORACLE], csv="")
    table = audit(params, cfg)
    assert behaviours_for("shop") == ["random", "scripted", "scripted_then_random"]  # no climb off level 1
    assert set(table.behaviour[table.start == "dl2"]) == {"random", "scripted", "scripted_then_random",
                                                          "climb_then_random"}
    assert (table.n == 2).all() and table["mean"].notna().all()
    assert set(table.method) == {ORACLE, "-"} and set(table.annotator) == {"oracle", "-"}

    def stat(start, behaviour, metric, skill="-"):
        row = table[(table.start == start) & (table.behaviour == behaviour) & (table.skill == skill)
                    & (table.metric == metric)]
        assert len(row) == 1, (start, behaviour, metric, skill)
        return float(row["mean"].iloc[0])

    assert stat("dl2", "climb_then_random", "ascents") >= 1
    assert stat("dl2", "scripted", "descents") >= 1 and stat("dl2", "scripted", "ascents") == 0
    assert stat("dl2", "scripted_then_random", "descents") >= 1
    assert stat("shop", "scripted", "descents") == stat("shop", "scripted", "ascents") == 0
    for skill in SKILLS:  # one return row per skill and behaviour (stat asserts it)
        stat("shop", "scripted", "return", skill)
    # the oracle's Ascender model pays the climb: its r_hat after an ascent is its highest kind of step
    climb, walk_down = (stat("dl2", b, "return", "ascender") for b in ("climb_then_random", "scripted"))
    assert climb > walk_down

    out = tmp_path / "audit.csv"
    params_file = str(data.parent / "params.yaml")
    run = subprocess.run([sys.executable, "-m", "maestromotif.reward_audit", "--params", params_file,
                          "--method", ORACLE, "--start", "altar", "--out", str(out)], cwd=REPO_ROOT,
                         timeout=300, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| altar | scripted |" in out.with_suffix(".md").read_text()
    bad = subprocess.run([sys.executable, "-m", "maestromotif.reward_audit", "--params", params_file,
                          "--method", "maestromotif"], cwd=REPO_ROOT, timeout=120, capture_output=True,
                         text=True)
    # that chain's reward models were never trained here: a clear error naming the checkpoint, no traceback
    assert bad.returncode == 2 and "model.pt" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
