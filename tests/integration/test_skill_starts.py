"""The `skill_starts` training program (rl.program): each training env holds one skill, on the start made
for it, on the real game."""
from __future__ import annotations

import json
import types

import numpy as np
import pytest
from nle import nethack

from benchmark.config import ConfigError, defaults
from benchmark.env import EnvConfig
from maestromotif.options.runtime import SKILLS
from maestromotif.rl.sf_env import held_skill_at_start, skills_crossed_with_starts, training_starts
from maestromotif.rl.train import RLConfig, skill_starts_json
from maestromotif.skill_behaviour import ALTAR, SHOPKEEPERS
from maestromotif.skill_starts import MEASURED_STARTS, START_OF, STARTS


@pytest.mark.timeout(300)
def test_every_env_holds_its_skill_on_that_skills_start():
    cfg = types.SimpleNamespace(mm_held_steps=30, num_envs_per_worker=8,
                                mm_skill_starts=skill_starts_json(defaults("rl", RLConfig)))
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


@pytest.mark.timeout(300)
def test_a_skill_with_several_starts_spreads_them_over_its_envs():
    table = {**{k: [v] for k, v in {"discoverer": "dl1", "descender": "dl2", "ascender": "dl2",
                                    "worshipper": "altar", "merchant": "shop"}.items()},
             "discoverer": ["dl1", "dl2"]}
    cfg = types.SimpleNamespace(mm_held_steps=5, mm_skill_starts=json.dumps(table))
    depths = {}
    for index in (0, 5, 10):  # the Discoverer's first, second and third env
        env = held_skill_at_start(defaults("env", EnvConfig), cfg, index, env_seed=7)
        try:
            obs, info = env.reset()
            assert info["skill"] == SKILLS.index("discoverer")
            depths[index] = int(obs["blstats"][nethack.NLE_BL_DEPTH])
        finally:
            env.close()
    assert depths == {0: 1, 5: 2, 10: 1}


def test_the_default_table_trains_each_skill_on_the_start_made_for_it():
    """conf/rl's default `skill_starts` and skill_starts.START_OF (what skill_behaviour reads as a skill's
    own start) are written apart; a change to one alone would measure skills where they never trained."""
    table = defaults("rl", RLConfig).skill_starts
    assert {k: list(v) for k, v in dict(table).items()} == {k: [START_OF[k]] for k in SKILLS}


def test_a_skill_starts_table_without_a_skill_or_with_an_unknown_start_is_refused():
    good = {k: ["dl1"] for k in SKILLS}
    assert training_starts(json.dumps(good)) == good
    with pytest.raises(ConfigError, match=r"rl\.skill_starts: .*missing \['merchant'\], unknown \[\]"):
        training_starts(json.dumps({k: v for k, v in good.items() if k != "merchant"}))
    with pytest.raises(ConfigError, match=r"rl\.skill_starts: .*unknown \['dl9'\]"):
        training_starts(json.dumps({**good, "descender": ["dl9"]}))


@pytest.mark.timeout(300)
def test_skills_crossed_plays_every_skill_on_each_envs_start():
    """`skills_crossed`: an env keeps its start (env_index % 4) and cycles the held skill episode by episode,
    so the skill one-hot is independent of the level."""
    cfg = types.SimpleNamespace(mm_held_steps=5, num_envs_per_worker=8)
    starts = list(MEASURED_STARTS)
    for index in (1, 6):  # start dl2 for both, first skills 0 and 1
        env = skills_crossed_with_starts(defaults("env", EnvConfig), cfg, index, env_seed=200 + index)
        try:
            held = []
            for _ in range(len(SKILLS) + 1):
                obs, info = env.reset()
                assert int(obs["blstats"][nethack.NLE_BL_DEPTH]) == STARTS[starts[index % 4]][1]
                held.append(info["skill"])
                for step in range(1, 20):
                    obs, _, terminated, truncated, info = env.step(0 if step % 2 else 1)  # wait or move
                    assert obs["skill_onehot"].argmax() == held[-1] and info["skill"] == held[-1]
                    if terminated or truncated:
                        break
                assert terminated or step == cfg.mm_held_steps
            first = index // 4
            assert held == [(first + k) % len(SKILLS) for k in range(len(SKILLS) + 1)]
        finally:
            env.close()
