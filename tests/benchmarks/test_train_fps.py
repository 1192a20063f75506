"""Training throughput on this machine, from one run: APPO frames/s of the small profile's skill training
with the paper's network (rendered RGB crop), with the cheap crop (char/colour embeddings), and with a
trivial encoder (maestromotif.rl.network.TrivialEncoder: the same env stack, options wrapper, reward and
GRU, no encoder compute: the sampling ceiling), against the raw env rate measured in the same run.

Target (issue #18): >= 3,000 training frames/s on 2 idle cores with the paper network. Nothing here asserts
on time; the figures go to results/bench.json ("skill_training"), pytest-benchmark's extra_info and the log:
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
STEPS = 24576  # ~20 s of the paper network on 2 cores after start-up: the last segment's rate is steady
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


def train_fps(tmp_path, reward_dir, crop_mode: str, encoder: str = "paper") -> float:
    run_root = tmp_path / f"{crop_mode}_{encoder}"
    run_root.mkdir()
    params, path = ci_params(run_root, f"rl.reward_dir={reward_dir}", f"rl.crop_mode={crop_mode}", *SIZES)
    os.environ["MM_PARAMS"] = str(path)
    try:
        run = train(params, 0, extra_args=[f"--mm_encoder={encoder}"])
    finally:
        os.environ.pop("MM_PARAMS", None)
    return float(json.loads((run / "summary.json").read_text())["fps_last_segment"])


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_training_frames_per_second(benchmark, tmp_path, reward_dir, bench_summary):
    def measure():
        return {"paper_rgb": train_fps(tmp_path, reward_dir, "rgb"),
                "paper_embed": train_fps(tmp_path, reward_dir, "embed"),
                "trivial_encoder": train_fps(tmp_path, reward_dir, "rgb", encoder="trivial")}

    env_rate = raw_env_rate()
    fps = benchmark.pedantic(measure, rounds=1, iterations=1)
    assert all(v > 0 for v in fps.values()) and env_rate > 0
    figures = {
        "train_for_env_steps": STEPS, "shape": "2 workers x 8 envs, batch 512 (the small profile's)",
        "raw_env_steps_per_s": round(env_rate, 1),
        **{f"{k}_frames_per_s": round(v, 1) for k, v in fps.items()},
        "paper_rgb_to_trivial_ratio": round(fps["paper_rgb"] / fps["trivial_encoder"], 3),
        "trivial_to_raw_env_ratio": round(fps["trivial_encoder"] / env_rate, 3),
        "target_frames_per_s": 3000,
    }
    benchmark.extra_info.update(figures)
    bench_summary.record("skill_training", figures)
    log.warning("train_skills: paper rgb %.0f, embed %.0f, trivial encoder %.0f frames/s; raw env %.0f "
                "steps/s (target 3000 frames/s)", fps["paper_rgb"], fps["paper_embed"],
                fps["trivial_encoder"], env_rate)
