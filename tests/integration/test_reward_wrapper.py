"""IntrinsicRewardWrapper on the real env: the reward it returns is the paper's formula, recomputed here
independently, and per-skill sums arrive in episode_extra_stats at episode end."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from benchmark.config import defaults
from benchmark.env import decode_message, is_blank, make
from maestromotif.reward.intrinsic import IntrinsicConfig, IntrinsicReward
from maestromotif.reward.model import RewardCheckpoint, RewardModel
from maestromotif.reward.train import KeyTable, normalisation
from maestromotif.reward.wrapper import IntrinsicRewardWrapper

SKILLS = ("discoverer", "descender")


class FakeSkillInfo(gym.Wrapper):
    """Fake of the options wrapper's info contract (control flow only): skill = (t // 7) % 2,
    switching after every 7th step to the other skill."""

    def reset(self, **kwargs):
        self.t = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, r, terminated, truncated, info = self.env.step(action)
        info["skill"] = (self.t // 7) % 2
        info["skill_switched"] = self.t % 7 == 6
        info["next_skill"] = ((self.t + 1) // 7) % 2
        self.t += 1
        return obs, r, terminated, truncated, info


def real_messages(seed: int, steps: int) -> list[str]:
    env = make(seed=seed, max_episode_steps=steps)
    rng = np.random.default_rng(seed)
    env.reset()
    out = []
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(28)))
        out.append(decode_message(obs["message"]))
        if terminated or truncated:
            env.reset()
    env.close()
    return out


@pytest.fixture(scope="module")
def reward() -> IntrinsicReward:
    """Two untrained (seeded) reward models, normalised over real game messages as the stage does."""
    import pandas as pd

    msgs = real_messages(seed=11, steps=400)
    pairs = pd.DataFrame({"message_1": msgs, "message_2": msgs[::-1], "dlvl_change_1": 0,
                          "dlvl_change_2": 1, "label": 2})
    ckpts = []
    for i, name in enumerate(SKILLS):
        torch.manual_seed(i)
        model = RewardModel().eval()
        mean, var, quantiles = normalisation(model, KeyTable.build(pairs), 256)
        ckpts.append(RewardCheckpoint(name, model, mean, var, quantiles))
    return IntrinsicReward(ckpts, defaults("reward.intrinsic", IntrinsicConfig))


@pytest.mark.timeout(300)
def test_wrapper_reward_matches_the_formula_on_a_real_episode(reward):
    env = IntrinsicRewardWrapper(FakeSkillInfo(make(seed=3, max_episode_steps=150)), reward)
    rng = np.random.default_rng(0)
    obs, _ = env.reset()
    counts = {decode_message(obs["message"]): 1}  # independent LRU: dict in recency order
    window = [int(obs["blstats"][12])]
    sums, steps = np.zeros(2), np.zeros(2, dtype=int)
    done, info, blank_end = False, {}, False
    while not done:
        obs, total, terminated, truncated, info = env.step(int(rng.integers(28)))
        done = terminated or truncated
        if is_blank(obs):  # NLE's end-of-game observation: no depth, no message, not scored
            assert (total, info["normalised_reward"], info["intrinsic_reward"]) == (0.0, 0.0, 0.0)
            blank_end = True
            continue
        msg, depth = decode_message(obs["message"]), int(obs["blstats"][12])
        skill = info["next_skill"] if info["skill_switched"] else info["skill"]  # the official scorer
        window = (window + [depth])[-1000:]
        change = int(np.sign(depth - window[0]))
        n = counts.pop(msg, 0) + 1
        counts[msg] = n
        if len(counts) > 20:
            counts.pop(next(iter(counts)))
        r_hat = reward.normalised(skill, msg, change)
        expected = 0.1 * (r_hat if r_hat > reward.model(skill).threshold else 0.0) / n**3
        assert total == pytest.approx(expected, abs=1e-7)
        assert info["normalised_reward"] == pytest.approx(r_hat)
        if info["skill_switched"]:
            window = [depth]
        sums[skill] += r_hat
        steps[skill] += 1
    stats = info["episode_extra_stats"]
    for i, name in enumerate(SKILLS):
        assert stats[f"skill_steps/{name}"] == steps[i]
        assert stats[f"skill_reward/{name}"] == pytest.approx(sums[i], abs=1e-4)
    assert sum(steps) > 20
    assert blank_end, "random play with this seed dies within 150 steps: the end-of-game step was checked"


@pytest.mark.timeout(300)
def test_wrapper_without_skill_info_uses_model_zero_and_can_add_the_game_score(reward):
    motif = IntrinsicReward([reward.models[0].ckpt],
                            defaults("reward.intrinsic", IntrinsicConfig, extrinsic_coef=0.1, llm_coef=0.1,
                                     reward_scale=1.0))
    env = IntrinsicRewardWrapper(make(seed=4, max_episode_steps=60), motif)
    env.reset()
    rng = np.random.default_rng(1)
    for _ in range(60):
        _, total, terminated, truncated, info = env.step(int(rng.integers(28)))
        extrinsic = np.clip(info["env_reward"], -10, 10)
        assert total == pytest.approx(0.1 * extrinsic + 0.1 * info["intrinsic_reward"])
        if terminated or truncated:
            assert info["episode_extra_stats"][f"skill_steps/{motif.names[0]}"] > 0
            break
