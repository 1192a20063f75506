"""Where trained policies evaluate: `evaluate.device` ("auto": the GPU when torch sees one, else the CPU).

Real NLE and the real skill network (at its random initialisation: deployment needs the network, not its
training), through benchmark.evaluate and through a baseline's load_policy."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from benchmark import config, evaluate
from benchmark.env import make
from tests.integration.test_train_support import untrained_skill_run

TASK = "gnomish"
no_gpu = pytest.mark.skipif(torch.cuda.is_available(),
                            reason="checks the CPU fallback: this machine has a GPU")


def params_for(tmp_path, *overrides):
    return config.compose("ci", ["methods=[maestromotif]", f"tasks=[{TASK}]", "skill_seeds=[0]",
                                 f"data_dir={tmp_path}/data", "evaluate.episodes=2", "evaluate.num_envs=2",
                                 "evaluate.max_episode_steps=30", *overrides])


def test_the_paper_default_is_auto():
    assert config.compose("paper", []).evaluate.device == "auto"
    assert config.defaults("evaluate", evaluate.EvaluateConfig).device == "auto"


@no_gpu
@pytest.mark.timeout(300)
def test_auto_resolves_to_the_cpu_here_and_the_skill_policy_evaluates_there(tmp_path):
    """Old behaviour: the network was always loaded on the CPU, with no setting; now auto picks the device."""
    params = params_for(tmp_path)
    assert params.evaluate.device == "auto" and evaluate.policy_device(params) == "cpu"
    untrained_skill_run(params, 0)
    out = evaluate.evaluate("maestromotif", TASK, 0, params, progress=False, code_seed=0)
    records = evaluate.finished_records(out)
    assert len(records) == 2 and all(r["steps"] > 0 for r in records)
    assert json.loads((out / "provenance.json").read_text())["policy_device"] == "cpu"


@no_gpu
@pytest.mark.timeout(300)
def test_a_baseline_policy_loads_on_the_resolved_device_and_acts(tmp_path):
    from baselines.appo import RUN_DIR, load_policy

    params = params_for(tmp_path)
    artefact = tmp_path / "artefact"
    shutil.copytree(untrained_skill_run(params, 0), artefact / RUN_DIR)
    policy = load_policy(artefact, device=evaluate.policy_device(params))
    assert policy.device == torch.device("cpu")
    assert {p.device for p in policy.model.parameters()} == {torch.device("cpu")}
    env = policy.wrap_env(make(task=TASK, seed=1))  # NoSkill + the network inputs
    obs, _ = env.reset(seed=1)
    state = policy.initial_state(1)
    for step in range(5):
        stacked = {k: v[None] for k, v in obs.items()}
        actions, state = policy.act(stacked, state, np.array([step == 0]))
        assert actions.dtype == np.int64 and actions.shape == (1,)
        obs, *_ = env.step(int(actions[0]))
    env.close()


def test_a_device_that_is_not_there_or_not_a_device_is_a_clear_error(tmp_path):
    with pytest.raises(config.ConfigError, match="evaluate.device='tpu'"):
        evaluate.policy_device(params_for(tmp_path, "evaluate.device=tpu"))
    if not torch.cuda.is_available():
        with pytest.raises(config.ConfigError, match="evaluate.device=cuda.*no CUDA GPU.*auto"):
            evaluate.policy_device(params_for(tmp_path, "evaluate.device=cuda"))
    assert evaluate.policy_device(params_for(tmp_path, "evaluate.device=cpu")) == "cpu"


@pytest.mark.gpu
@pytest.mark.timeout(300)
def test_auto_puts_the_skill_policy_on_the_gpu_when_there_is_one(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    params = params_for(tmp_path)
    assert evaluate.policy_device(params) == "cuda"
    untrained_skill_run(params, 0)
    out = evaluate.evaluate("maestromotif", TASK, 0, params, progress=False, code_seed=0)
    assert len(evaluate.finished_records(out)) == 2
    assert json.loads((out / "provenance.json").read_text())["policy_device"].startswith("cuda")
