"""Training throughput on this machine: APPO frames/s with the paper's network (rendered RGB crop) and
with the cheap crop (char/colour embeddings), each against the raw env rate measured in the same run.

Target (issue "Skill-conditioned APPO training"): >= 3,000 training frames/s on 2 cores. Nothing here
asserts on time; the numbers go to pytest-benchmark's extra_info and the log:
    .venv/bin/python -m pytest tests/benchmarks/test_train_fps.py --benchmark-only -s
"""
from __future__ import annotations

import json
import logging
import os
import time

import numpy as np
import pytest

from benchmark.env import make
from maestromotif.rl.train import train
from tests.integration.test_train_support import ci_params, real_messages, train_tiny_reward_models

log = logging.getLogger(__name__)
STEPS = 8192
SIZES = ["rl.num_workers=2", "rl.num_envs_per_worker=8", "rl.batch_size=512",
         f"rl.train_for_env_steps={STEPS}", "rl.save_every_sec=600"]  # the small profile's shape


def raw_env_rate(steps: int = 3000) -> float:
    """Paper env steps/s with uniformly random actions, one process (no wrappers, no model)."""
    env = make(seed=0)
    rng = np.random.default_rng(0)
    env.reset()
    start = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(int(rng.integers(env.action_space.n)))
        if term or trunc:
            env.reset()
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


@pytest.fixture(scope="module")
def reward_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reward")
    train_tiny_reward_models(folder, real_messages(steps=400), epochs=5)
    return folder


def train_fps(tmp_path, reward_dir, crop_mode: str) -> float:
    params, path = ci_params(tmp_path, f"rl.reward_dir={reward_dir}", f"rl.crop_mode={crop_mode}", *SIZES)
    os.environ["MM_PARAMS"] = str(path)
    try:
        run = train(params, 0)
    finally:
        os.environ.pop("MM_PARAMS", None)
    return float(json.loads((run / "summary.json").read_text())["fps_last_segment"])


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("crop_mode", ["rgb", "embed"])
def test_training_frames_per_second(benchmark, tmp_path, reward_dir, crop_mode):
    env_rate = raw_env_rate()
    fps = benchmark.pedantic(train_fps, args=(tmp_path, reward_dir, crop_mode), rounds=1, iterations=1)
    ratio = fps / env_rate
    benchmark.extra_info.update(crop_mode=crop_mode, train_fps=fps, raw_env_steps_per_s=env_rate,
                                ratio=ratio, target_fps=3000, cores=os.cpu_count())
    log.warning("train_skills %s crop: %.0f frames/s; raw env %.0f steps/s; ratio %.3f "
                "(target 3000 frames/s)",
                crop_mode, fps, env_rate, ratio)
    assert fps > 0 and ratio > 0
