"""Per-step cost of the intrinsic reward with the memo, against calling the reward model every step.

Both are measured in this run on the same real game messages (a seeded random rollout); the target is
a ratio of at least 20x. Run with `make bench` (or pytest tests/benchmarks --benchmark-only).
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from benchmark.config import defaults
from benchmark.env import decode_message, make
from maestromotif.reward.intrinsic import EpisodeState, IntrinsicConfig, IntrinsicReward
from maestromotif.reward.model import QUANTILE_LEVELS, RewardCheckpoint, RewardModel, score

STEPS = 500


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread, as in an RL env worker (2 oversubscribed threads are far slower on 2 cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trajectory() -> list[tuple[str, int]]:
    env = make(seed=21, max_episode_steps=STEPS)
    rng = np.random.default_rng(0)
    obs, _ = env.reset()
    out = []
    while len(out) < STEPS:
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(28)))
        out.append((decode_message(obs["message"]), int(obs["blstats"][12])))
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return out


def test_reward_cache_speedup(benchmark, trajectory, one_thread):
    torch.manual_seed(0)
    ckpt = RewardCheckpoint("descender", RewardModel().eval(), 0.0, 1.0, {q: q for q in QUANTILE_LEVELS})
    reward = IntrinsicReward([ckpt], defaults("reward.intrinsic", IntrinsicConfig))
    state = EpisodeState(reward)
    # a warm memo, as after the first few episodes of a run
    reward.precompute((0, m, c) for m, _ in trajectory for c in (-1, 0, 1))

    def cached_episode():
        state.reset("", 1)
        for message, depth in trajectory:
            state.step(0, message, depth, 0.0, False)

    def model_every_step():
        for message, _ in trajectory:
            score(ckpt.model, [message], [0])

    model_every_step()  # warm-up
    t0 = time.perf_counter()
    model_every_step()
    uncached_per_step = (time.perf_counter() - t0) / len(trajectory)

    benchmark(cached_episode)
    cached_per_step = benchmark.stats.stats.median / len(trajectory)
    ratio = uncached_per_step / cached_per_step
    benchmark.extra_info.update(uncached_us_per_step=uncached_per_step * 1e6,
                                cached_us_per_step=cached_per_step * 1e6, ratio=ratio)
    print(f"\nper step: model every step {uncached_per_step * 1e6:.1f} us, "
          f"memo {cached_per_step * 1e6:.2f} us, "
          f"ratio {ratio:.0f}x")
    assert ratio >= 20
