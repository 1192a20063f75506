"""The options wrapper on the real game (wizard mode): call-and-return switching with the training program."""
from __future__ import annotations

import numpy as np
import pytest
from nle.nethack.actions import WizardCommand

from benchmark.env import ACTION_INDEX, make
from maestromotif.options.program import Program, Settings, compose, reference_layers
from maestromotif.options.runtime import SKILLS
from maestromotif.options.wrapper import OptionsWrapper, screen_window
from tests.fixtures.programs import BROKEN
from tests.fixtures.wizard import (WIZARD_SEED, base, message, shop_interiors, teleport_onto, teleport_to,
                                   teleport_to_named, wish)

DISCOVERER, DESCENDER, ASCENDER, WORSHIPPER, MERCHANT = range(5)


def training_program(max_depth: int = 3, discoverer_turns: int = 5) -> Program:
    """The reference training policy with a short Discoverer and a fixed max depth (settings only)."""
    settings = Settings((max_depth, max_depth), discoverer_turns)
    return Program("training", compose("training", reference_layers("training"), settings, "test"), "test",
                   trusted=True)


@pytest.fixture
def options_env(request):
    runner = getattr(request, "param", "inprocess")
    env = OptionsWrapper(make(seed=WIZARD_SEED, wizard=True), training_program(), runner=runner,
                         on_error="raise")
    yield env
    env.close()


def step(env, name: str = "SEARCH"):
    obs, _, terminated, truncated, info = env.step(ACTION_INDEX[name])
    assert not (terminated or truncated), message(env)
    return obs, info


def run_until_switch(env, max_steps: int = 40):
    for _ in range(max_steps):
        obs, info = step(env)
        if info["skill_switched"]:
            return obs, info
    raise AssertionError(f"no skill switch in {max_steps} steps")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("options_env", ["inprocess", "sandbox"], indirect=True)
def test_discoverer_descender_ascender_follow_depth(options_env):
    env = options_env
    obs, info = env.reset()
    assert info["skill"] == DISCOVERER and obs["skill"].tolist() == [DISCOVERER]
    assert obs["skill_onehot"].dtype == np.float32 and obs["skill_onehot"].tolist() == [1, 0, 0, 0, 0]
    assert env.observation_space["skill_onehot"].contains(obs["skill_onehot"])

    # Discoverer ends after 5 game turns; depth 1 < max depth 3: go down.
    obs, info = run_until_switch(env)
    assert info["skill"] == DISCOVERER and info["next_skill"] == DESCENDER
    assert obs["blstats"][20] >= 5 and obs["skill"].tolist() == [DESCENDER]
    obs, info = step(env)  # the Descender keeps running while the depth does not change
    assert info["skill"] == DESCENDER and not info["skill_switched"]

    teleport_to(env, 2)  # a level change, as a staircase would give
    obs, info = step(env)
    assert info["skill"] == DESCENDER and info["skill_switched"] and info["next_skill"] == DISCOVERER

    obs, info = run_until_switch(env)
    assert info["next_skill"] == DESCENDER
    teleport_to(env, 3)
    obs, info = step(env)
    assert info["next_skill"] == DISCOVERER

    obs, info = run_until_switch(env)  # explored the max depth: turn around
    assert info["next_skill"] == ASCENDER
    teleport_to(env, 2)
    obs, info = step(env)
    assert info["skill"] == ASCENDER and info["skill_switched"] and info["next_skill"] == DISCOVERER
    obs, info = run_until_switch(env)
    assert info["next_skill"] == ASCENDER  # still on the way up until depth 1


@pytest.mark.timeout(300)
def test_merchant_starts_next_to_a_shopkeeper_only_with_a_new_item(options_env):
    env = options_env
    env.reset()
    teleport_to_named(env, "minetn")  # seed 1: Minetown with four shops
    inside = shop_interiors(env)
    assert inside, "no shop found in Minetown"
    teleport_onto(env, inside[0])
    obs, info = step(env)
    assert not info["merchant_precondition"], "no collected item yet: the Merchant must not start"
    assert info["next_skill"] == DISCOVERER

    wish(env, "ring of adornment")
    obs, info = step(env)
    assert info["merchant_precondition"] and info["skill_switched"]
    assert info["next_skill"] == MERCHANT and obs["skill"].tolist() == [MERCHANT]
    chars, colors = screen_window(obs["tty_chars"], obs["tty_colors"], int(obs["blstats"][0]),
                                  int(obs["blstats"][1]))
    assert ((chars == ord("@")) & (colors == 15)).any()  # the shopkeeper is in the 7x7 window


@pytest.mark.timeout(300)
def test_worshipper_starts_next_to_an_altar_only_with_a_new_item(options_env):
    env = options_env
    env.reset()
    base(env).send_keys(bytes([WizardCommand.WIZWISH]) + b"altar\r")  # wizard mode builds an altar underfoot
    assert "altar" in message(env)
    obs, info = step(env, "E")  # step off it: the '_' is now next to the agent
    chars, _ = screen_window(obs["tty_chars"], obs["tty_colors"], int(obs["blstats"][0]),
                             int(obs["blstats"][1]))
    assert (chars == ord("_")).any()
    assert not info["worshipper_precondition"] and info["next_skill"] == DISCOVERER

    wish(env, "ring of adornment")
    obs, info = step(env)
    assert info["worshipper_precondition"] and not info["merchant_precondition"]
    assert info["skill_switched"] and info["next_skill"] == WORSHIPPER
    assert SKILLS[int(obs["skill"][0])] == "worshipper"


@pytest.mark.timeout(120)
def test_mines_fork_detected_from_a_descender_landing_in_the_mines():
    env = OptionsWrapper(make(seed=WIZARD_SEED, wizard=True), training_program(max_depth=4),
                         runner="inprocess", on_error="raise")
    try:
        env.reset()
        run_until_switch(env)  # Discoverer -> Descender on DL1
        teleport_to(env, 2)
        step(env)
        obs, info = run_until_switch(env)  # Discoverer -> Descender on DL2 (the fork of seed 1)
        assert info["next_skill"] == DESCENDER
        teleport_to_named(env, "minetn")  # the Descender "lands" in the Mines (Minetown)
        obs, info = step(env)
        assert obs["blstats"][23] == 2
        assert info["skill_switched"] and info["branch_depth"] == 2
    finally:
        env.close()


def test_screen_window_is_centred_on_the_agent_and_padded_at_the_edges():
    chars = np.arange(24 * 80).reshape(24, 80) % 256
    colors = np.full((24, 80), 5)
    window, wcolors = screen_window(chars, colors, x=10, y=5)  # map row 5 = terminal row 6
    assert window[3, 3] == chars[6, 10] and window[0, 0] == chars[3, 7] and window[6, 6] == chars[9, 13]
    assert wcolors[3, 3] == 0 and (wcolors.sum() == 5 * 48)  # the agent's own colour is cleared
    corner, ccolors = screen_window(chars, colors, x=0, y=0)
    assert corner[3, 3] == chars[1, 0] and (corner[:, :3] == 32).all() and (ccolors[:, :3] == 0).all()
    assert corner[2, 3] == chars[0, 0] and (corner[:2] == 32).all()  # terminal rows -2, -1 do not exist



@pytest.mark.timeout(120)
def test_a_failing_program_does_not_stop_the_episode():
    env = OptionsWrapper(make(seed=3), Program("broken", BROKEN, "test"), runner="sandbox")
    try:
        env.reset()
        for _ in range(3):
            obs, info = step(env)
        assert info["program_errors"] == 3 and info["skill"] == DISCOVERER and not info["skill_switched"]
    finally:
        env.close()
    strict = OptionsWrapper(make(seed=3), Program("broken", BROKEN, "test"), runner="sandbox",
                            on_error="raise")
    try:
        strict.reset()
        with pytest.raises(Exception, match="this program is broken"):
            strict.step(ACTION_INDEX["SEARCH"])
    finally:
        strict.close()


def test_wrapper_refuses_an_env_without_the_keys_it_needs():
    with pytest.raises(ValueError, match="glyphs"):
        OptionsWrapper(make(seed=3, observation_keys=["blstats", "message", "tty_chars", "tty_colors",
                                                      "inv_letters", "inv_oclasses"]), "training")


def _same_step(a: tuple, b: tuple) -> bool:
    (obs_a, *rest_a), (obs_b, *rest_b) = a, b
    same_obs = obs_a.keys() == obs_b.keys() and all(np.array_equal(obs_a[k], obs_b[k]) for k in obs_a)
    return same_obs and repr(rest_a) == repr(rest_b)  # reward, terminated, truncated, info (nested dicts)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("runner", ["sandbox", "inprocess"])
def test_step_batch_steps_like_one_env_after_another(runner):
    """One program call for the whole batch (step_batch) against env.step one env after another: the same
    observations (network inputs included), rewards, ends and infos, through skill switches and resets. The
    last env has no options wrapper and steps on its own."""
    from maestromotif.options.wrapper import step_batch
    from maestromotif.rl.obs import PolicyObservation

    program = training_program()  # a 5-turn Discoverer: skills switch within the test
    if runner == "sandbox":
        program = Program("training", program.source, "test", trusted=False)

    def envs():
        wrapped = [PolicyObservation(OptionsWrapper(make(seed=s, max_episode_steps=120), program, seed=s),
                                     "embed", keep_raw=True) for s in (4, 5, 6)]
        return wrapped + [make(seed=7, max_episode_steps=120)]

    alone, batched = envs(), envs()
    assert runner != "sandbox" or alone[0].env.runner.sandboxed
    for k, (a, b) in enumerate(zip(alone, batched)):
        assert _same_step((*a.reset(seed=10 + k), 0), (*b.reset(seed=10 + k), 0))
    rng = np.random.default_rng(0)
    switches = resets = 0
    for _ in range(300):
        actions = [int(a) for a in rng.integers(0, 28, size=len(alone))]
        expected = [env.step(a) for env, a in zip(alone, actions)]
        got = step_batch(batched, actions)
        assert all(_same_step(e, g) for e, g in zip(expected, got))
        switches += sum(bool(e[4].get("skill_switched")) for e in expected[:3])
        for k, (e, a, b) in enumerate(zip(expected, alone, batched)):
            if e[2] or e[3]:
                resets += 1
                assert _same_step((*a.reset(seed=100 + k), 0), (*b.reset(seed=100 + k), 0))
    assert switches > 0 and resets > 0, (switches, resets)  # the check went through both
    for env in alone + batched:
        env.close()
