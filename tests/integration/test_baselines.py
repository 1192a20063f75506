"""The trained baselines on the shared APPO trainer: each fits on the ci profile through
`python -m benchmark.fit` (real NLE, real sample-factory, a few thousand steps) and is evaluated on one
task by benchmark.evaluate. One short training per baseline, shared through module fixtures."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import gymnasium as gym
import pytest

from baselines.appo import NoSkill, TaskScoreReward, scaled_score
from benchmark.config import compose, write_params
from benchmark.env import make

TASK = "gnomish"


def test_scaled_score_clips():
    assert scaled_score(50, 0.1, 10.0) == pytest.approx(5.0)
    assert scaled_score(1000, 0.1, 10.0) == 10.0
    assert scaled_score(-1000, 0.1, 10.0) == -10.0


def test_no_skill_adds_a_zero_one_hot():
    env = NoSkill(make(seed=3))
    obs, info = env.reset(seed=3)
    assert obs["skill_onehot"].shape == (5,) and not obs["skill_onehot"].any() and info["skill"] == 0
    obs, *_ , info = env.step(0)
    assert not obs["skill_onehot"].any() and info["skill"] == 0
    env.close()


class _ValueEnv(gym.Env):
    """Fake (control flow only): a task value that rises by 1 on each step, score delta 20 per step."""

    observation_space = gym.spaces.Discrete(1)
    action_space = gym.spaces.Discrete(1)

    def reset(self, *, seed=None, options=None):
        self.v = 0.0
        return 0, {"task": {"value": 0.0}}

    def step(self, action):
        self.v += 1
        return 0, 20.0, False, False, {"task": {"value": self.v}}


def test_task_reward_pays_the_value_increment_plus_the_score_term():
    env = TaskScoreReward(_ValueEnv(), task_coef=10.0, scale=0.1, clip=10.0)
    env.reset()
    assert env.step(0)[1] == pytest.approx(2.0 + 10.0)
    assert env.step(0)[1] == pytest.approx(2.0 + 10.0)


def _ci(tmp_path, *overrides):
    params = compose("ci", [f"data_dir={tmp_path / 'data'}", f"tasks=[{TASK}]", *overrides])
    path = tmp_path / "params.yaml"
    write_params(params, path)
    return params, path


def _fit_and_evaluate(tmp_path, method: str, params, path):
    from benchmark.evaluate import evaluate

    # As the DVC stage runs it: its own process. (Motif's fit starts an annotator LLM; a second in-process
    # vLLM engine would tear down the global state of the session's shared engine when it is collected.)
    env = {**os.environ, "MM_PARAMS": str(path)}  # sample-factory's workers read the params file
    proc = subprocess.run([sys.executable, "-m", "benchmark.fit", "--method", method, "--seed", "0",
                           "--task", TASK, "--params", str(path)], env=env, capture_output=True, text=True,
                          timeout=1000)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
    out = evaluate(method, TASK, 0, params, progress=False)
    records = [json.loads(l) for l in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(records) == params.evaluate.episodes
    assert all(r["steps"] > 0 for r in records)
    return records


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("method", ["score_ppo", "task_ppo"])
def test_fit_and_evaluate(tmp_path, method):
    params, path = _ci(tmp_path)
    _fit_and_evaluate(tmp_path, method, params, path)
    per_task = method != "score_ppo"
    art = tmp_path / "data" / "fit" / method / "seed0" / (TASK if per_task else "")
    summary = json.loads((art / "policy" / "summary.json").read_text())
    assert summary["env_steps"] >= 3000  # ci: score_ppo/task_ppo.trainer.train_for_env_steps
    assert (art / "trainer.json").exists() and (art / "provenance.json").exists()


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_motif_fits_labels_reward_and_policy(tmp_path, ci_data):
    """Motif on the ci data: fit() annotates the Motif pairs (ci annotator) since no labels exist yet,
    trains the task's reward model, then APPO on it."""
    params, path = _ci(tmp_path, f"data_dir={ci_data.data_dir}")
    _fit_and_evaluate(tmp_path, "motif", params, path)
    art = ci_data.data_dir / "fit" / "motif" / "seed0" / TASK
    assert (art / "reward" / "model.pt").exists() and (art / "policy" / "summary.json").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_embedding_similarity_trains_and_evaluates(tmp_path, ci_data):
    params, path = _ci(tmp_path, f"data_dir={ci_data.data_dir}")
    _fit_and_evaluate(tmp_path, "embedding_similarity", params, path)
    art = ci_data.data_dir / "fit" / "embedding_similarity" / "seed0" / TASK
    assert (art / "reward.json").exists() and (art / "policy" / "summary.json").exists()
