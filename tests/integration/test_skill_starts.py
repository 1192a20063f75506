"""The `skill_starts` training program (rl.program): each training env holds one skill, on the start made
for it, on the real game."""
from __future__ import annotations

import types

import numpy as np
import pytest
from nle import nethack

from benchmark.config import defaults
from benchmark.env import EnvConfig
from maestromotif.options.runtime import SKILLS
from maestromotif.rl.sf_env import held_skill_at_start
from maestromotif.skill_behaviour import ALTAR, SHOPKEEPERS


@pytest.mark.timeout(300)
def test_every_env_holds_its_skill_on_that_skills_start():
    cfg = types.SimpleNamespace(mm_held_steps=30, num_envs_per_worker=8)
    rng = np.random.default_rng(0)
    for index in range(len(SKILLS) + 1):  # the sixth env cycles back to the first skill
        skill = SKILLS[index % len(SKILLS)]
        env = held_skill_at_start(defaults("env", EnvConfig), cfg, index, env_seed=100 + index)
        try:
            obs, info = env.reset()
            depth = int(obs["blstats"][nethack.NLE_BL_DEPTH])
            glyphs = set(np.unique(obs["glyphs"]).tolist())
            assert info["skill"] == index % len(SKILLS) and obs["skill_onehot"].argmax() == info["skill"]
            assert depth == (2 if skill in ("descender", "ascender") else 1), skill
            if skill == "merchant":  # transactions_small: the hero starts beside the general store
                assert glyphs & SHOPKEEPERS
            if skill == "worshipper":  # buc_small: the altar is in view
                assert ALTAR in glyphs
            for step in range(1, 100):
                obs, _, terminated, truncated, info = env.step(int(rng.integers(env.action_space.n)))
                assert obs["skill_onehot"].argmax() == index % len(SKILLS) and not info["skill_switched"]
                if terminated or truncated:
                    break
            assert terminated or step == cfg.mm_held_steps  # truncated after the held steps, not later
        finally:
            env.close()
