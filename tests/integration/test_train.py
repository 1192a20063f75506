"""train_skills end to end: real NLE, real sample-factory, real (tiny) reward models, the real options
wrapper with the training program. One ci-profile run is killed after its first checkpoint and resumed;
its checkpoint is then evaluated zero-shot on a task. A crashing env must end a run with an error."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime

import numpy as np
import pytest

from benchmark.appo.trainer import checkpoint_env_steps, checkpoints
from benchmark.config import REPO_ROOT, defaults
from maestromotif.rl.sf_env import TEST_CRASH_ENV_NAME
from maestromotif.rl.train import run_dir, train
from benchmark.appo.watchdog import TrainingError
from tests.integration.test_train_support import ci_params, real_messages, train_tiny_reward_models

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def reward_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reward")
    train_tiny_reward_models(folder, real_messages(steps=400), epochs=5)
    return folder


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory, reward_dir):
    """A ci run killed (SIGKILL, stage process) after its first checkpoint, then rerun to completion."""
    tmp = tmp_path_factory.mktemp("train")
    params, path = ci_params(tmp, f"rl.reward_dir={reward_dir}")
    run = run_dir(params, 0)
    env = {**os.environ, "MM_PARAMS": str(path)}
    stage = subprocess.Popen([sys.executable, "-m", "maestromotif.rl.train", "--seed", "0"], cwd=REPO_ROOT,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 400
        def trained_checkpoint() -> bool:  # SF also saves one at env step 0
            return bool(checkpoints(run)) and checkpoint_env_steps(checkpoints(run)[-1]) > 0

        while not trained_checkpoint() and time.time() < deadline and stage.poll() is None:
            time.sleep(1)
        assert trained_checkpoint(), f"no checkpoint before the kill; see {run / 'train.log'}"
    finally:
        stage.send_signal(signal.SIGKILL)  # the stage process only: its sample-factory child must follow it
        stage.wait()
    killed_at = checkpoint_env_steps(checkpoints(run)[-1])
    time.sleep(3)  # the child notices its parent is gone within a second and kills its process group
    os.environ["MM_PARAMS"] = str(path)
    try:
        train(params, 0)
    finally:
        os.environ.pop("MM_PARAMS", None)
    return params, run, killed_at


@pytest.mark.timeout(1200)
def test_resume_continues_from_checkpoint(resumed_run):
    params, run, killed_at = resumed_run
    summary = json.loads((run / "summary.json").read_text())
    assert killed_at > 0
    assert summary["resumed_from_env_steps"] >= killed_at  # SF may save once more while dying
    assert summary["env_steps"] >= params.rl.train_for_env_steps
    log = (run / "train.log").read_text()
    assert f"self.env_steps={summary['resumed_from_env_steps']}" in log  # SF really loaded it
    progress = [json.loads(l) for l in (run / "progress.jsonl").read_text().splitlines()]
    steps = [p["env_steps"] for p in progress]
    assert steps == sorted(steps), "env steps must keep counting from the checkpoint"


@pytest.mark.timeout(1200)
def test_curve_has_every_skill_over_env_steps(resumed_run):
    params, run, _ = resumed_run
    rows = [json.loads(l) for l in (run / "curve.jsonl").read_text().splitlines()]
    assert rows
    assert {r["skill"] for r in rows} == set(params.skills)
    by_step: dict[int, float] = {}
    for r in rows:
        by_step[r["env_steps"]] = by_step.get(r["env_steps"], 0.0) + r["frequency"]
    assert all(abs(v - 1.0) < 1e-6 for v in by_step.values())  # frequencies of one window sum to 1
    active = [r for r in rows if r["skill_steps"]]
    assert all(np.isfinite(r["mean_normalised_reward"]) for r in active)


@pytest.mark.timeout(1200)
def test_checkpoint_evaluates_zero_shot_on_a_task(resumed_run):
    from benchmark.env import EnvConfig, make
    from benchmark.evaluate import play
    from benchmark.evaluate import build_method

    params, run, _ = resumed_run
    policy = build_method("maestromotif").policy(run, "gnomish", params)
    records = []
    steps = play(policy, lambda: make(task="gnomish", cfg=defaults("env", EnvConfig, max_episode_steps=150)),
                 [(0, 11), (1, 12)], num_envs=2, on_record=records.append, progress=False)
    assert len(records) == 2 and steps > 0
    assert all(r["metric"] is not None for r in records)  # the task tracker scored each episode


@pytest.mark.timeout(400)
def test_worker_crash_ends_the_run_with_an_error(tmp_path, reward_dir):
    params, path = ci_params(tmp_path, f"rl.reward_dir={reward_dir}", "rl.startup_timeout_s=200",
                             "rl.stall_timeout_s=60", "rl.extra_sf_args=['--mm_crash_after=40']")
    os.environ["MM_PARAMS"] = str(path)
    try:
        with pytest.raises(TrainingError, match="injected env crash|stalled|exited"):
            train(params, 1, env_name=TEST_CRASH_ENV_NAME)
    finally:
        os.environ.pop("MM_PARAMS", None)
    time.sleep(2)
    leftovers = subprocess.run(["pgrep", "-f", f"appo_run_dir={run_dir(params, 1)}"], capture_output=True,
                               text=True)
    assert leftovers.stdout.strip() == "", "the crashed run's processes must all be gone"


@pytest.mark.timeout(900)
def test_fit_stage_trains_maestromotif_and_evaluate_plays_it(tmp_path, reward_dir):
    """`python -m benchmark.fit --method maestromotif` (calibration and the fan-out use it) must leave a run
    that evaluation can play; it used to train into the artefact folder and then delete it."""
    from benchmark.evaluate import evaluate, finished_records
    from benchmark.fit import fit

    params, _ = ci_params(tmp_path, f"rl.reward_dir={reward_dir}", "rl.train_for_env_steps=2048",
                          "evaluate.episodes=1", "evaluate.max_episode_steps=30")
    artefact = fit("maestromotif", 0, params)
    assert artefact == run_dir(params, 0) and (artefact / "provenance.json").exists()
    assert checkpoints(artefact) and checkpoint_env_steps(checkpoints(artefact)[-1]) >= 2048
    records = finished_records(evaluate("maestromotif", "gnomish", 0, params, progress=False, code_seed=0))
    assert len(records) == 1 and records[0]["steps"] > 0


@pytest.mark.timeout(900)
def test_skill_seeds_train_side_by_side_and_a_failed_seed_keeps_the_others(tmp_path, reward_dir):
    """train_seeds (the train_skills stage) runs fit_jobs seeds at once, each its own sample-factory process
    tree; a seed that cannot start (here: an unreadable checkpoint to resume from) is reported with its seed
    while the others finish. With rl.reproducible, a seed trained beside another gives the network it
    gives alone (why fit_jobs is not a DVC param)."""
    from benchmark.regression_policy import weights_fingerprint
    from maestromotif.rl.train import train_seeds

    params, path = ci_params(tmp_path, f"rl.reward_dir={reward_dir}", "rl.train_for_env_steps=1024",
                             "rl.reproducible=true", "skill_seeds=[0,1,2]")
    broken = run_dir(params, 2) / "sf" / "checkpoint_p0" / "checkpoint_000000002_512.pth"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a checkpoint")
    os.environ["MM_PARAMS"] = str(path)
    try:
        with pytest.raises(RuntimeError, match=r"1 of 3 skill seeds failed.*seed 2: RuntimeError: cannot "
                                               r"resume"):
            train_seeds(params, [0, 1, 2], jobs=2)
    finally:
        os.environ.pop("MM_PARAMS", None)
    spans = []
    for seed in (0, 1):
        summary = json.loads((run_dir(params, seed) / "summary.json").read_text())
        assert summary["seed"] == seed and summary["env_steps"] >= 1024
        # from sample-factory's own log lines, first to last: a 1,024-step run can end within one progress
        # interval, leaving a single progress row (a zero-length span) on a fast machine
        stamps = re.findall(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]",
                            (run_dir(params, seed) / "train.log").read_text())
        times = [datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f") for t in stamps]
        assert len(times) >= 2, f"seed {seed}: no sample-factory log lines to time the run by"
        spans.append((min(times), max(times)))
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], f"the two runs did not overlap: {spans}"
    assert not (run_dir(params, 2) / "summary.json").exists()
    os.environ["MM_PARAMS"] = str(path)
    try:
        alone = train(params, 0, run=tmp_path / "alone")
    finally:
        os.environ.pop("MM_PARAMS", None)
    assert weights_fingerprint(alone) == weights_fingerprint(run_dir(params, 0)) is not None
    assert weights_fingerprint(run_dir(params, 1)) != weights_fingerprint(alone)


@pytest.mark.timeout(900)
def test_per_skill_heads_train_and_deploy(tmp_path, reward_dir):
    """rl.skill_heads=policy_value through sample-factory's real learner (its packed GRU sequences) and
    inference worker, saved, loaded by deployment and played on a task."""
    import gymnasium as gym
    import torch
    from sample_factory.model.actor_critic import create_actor_critic

    from benchmark.env import ACTIONS
    from benchmark.evaluate import evaluate, finished_records
    from maestromotif.rl.heads import SkillHeadsActorCritic
    from maestromotif.rl.obs import observation_space
    from maestromotif.rl.policy import load_actor_critic

    params, path = ci_params(tmp_path, f"rl.reward_dir={reward_dir}", "rl.train_for_env_steps=2048",
                             "rl.skill_heads=policy_value", "evaluate.episodes=1",
                             "evaluate.max_episode_steps=30")
    os.environ["MM_PARAMS"] = str(path)
    try:
        run = train(params, 0)
    finally:
        os.environ.pop("MM_PARAMS", None)
    assert checkpoint_env_steps(checkpoints(run)[-1]) >= 2048
    model, cfg, _ = load_actor_critic(run)
    assert isinstance(model, SkillHeadsActorCritic) and cfg.mm_skill_heads == "policy_value"
    # The untrained network, rebuilt as sample-factory's learner builds it (torch seeded with cfg.seed just
    # before create_actor_critic; its first checkpoint is kept only on a fast machine): the learner's few
    # updates moved the per-skill heads a little, where another initialisation differs by about their norm.
    torch.manual_seed(cfg.seed)
    actions = gym.spaces.Discrete(len(ACTIONS))
    untrained = create_actor_critic(cfg, observation_space(cfg.mm_crop_mode), actions)
    before, after = untrained.policy_linear.weight, model.policy_linear.weight
    moved = float((after - before).detach().norm() / before.detach().norm())
    assert 0 < moved < 0.2, f"per-skill policy heads moved by {moved:.3f} of their norm"
    records = finished_records(evaluate("maestromotif", "gnomish", 0, params, progress=False, code_seed=0))
    assert len(records) == 1 and records[0]["steps"] > 0
