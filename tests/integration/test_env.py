"""The paper's env on the real game: determinism, the 28 actions and their macros, options, bad input."""
from pathlib import Path

import numpy as np
import pytest
from nle import nethack
from omegaconf import OmegaConf

from benchmark.env import (ACTION_INDEX, ACTIONS, ENV_CONF, PAPER_CONFIG_LINES, PAPER_OPTIONS, EnvError,
                           decode_message, died, is_blank, make)
from benchmark.tasks import TaskError
from tests.fixtures.wizard import (act, base, depth, hero_position, identify_all, map_level, message,
                                   teleport_onto, teleport_to, wish)

pytestmark = pytest.mark.timeout(120)


def _rollout(seed: int, steps: int, action_seed: int = 0):
    env = make(seed=seed)
    rng = np.random.default_rng(action_seed)
    obs, _ = env.reset()
    frames = [(obs["tty_chars"].copy(), obs["blstats"].copy())]
    for a in rng.integers(len(ACTIONS), size=steps):
        obs, _, terminated, truncated, _ = env.step(int(a))
        frames.append((obs["tty_chars"].copy(), obs["blstats"].copy()))
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return frames


def test_same_seed_and_actions_replay_exactly_and_another_seed_differs():
    first, again, other = _rollout(7, 300), _rollout(7, 300), _rollout(8, 300)
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first, again))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other))


def test_action_set_and_observation_keys():
    env = make(seed=0)
    obs, _ = env.reset()
    assert env.action_space.n == 28 and len(ACTIONS) == 28
    assert set(obs) == set(env.observation_space.spaces)
    assert "Monk" in decode_message(obs["message"]) or obs["blstats"][nethack.NLE_BL_XP] == 1
    env.close()


def test_starting_inventory_and_spell_are_recorded(wizard_env):
    env = wizard_env()  # seed 1: a Monk with the spellbook of healing
    b = base(env)
    assert b.healing_spell
    assert ord("a") in b.starting_letters and ord("b") in b.starting_letters  # gloves, robe


def test_eat_macro_y_picks_the_first_listed_item(wizard_env):
    env = wizard_env()
    act(env, "EAT")
    assert "What do you want to eat?" in message(env)
    turn = int(base(env).blstats()[nethack.NLE_BL_TIME])
    _, _, _, _, info = act(env, "NW")  # the `y` key
    assert info["macro"] == "eat" and info["ate"]
    assert int(base(env).blstats()[nethack.NLE_BL_TIME]) > turn  # eating takes game time


def test_eat_prompt_is_cancelled_by_any_other_action(wizard_env):
    env = wizard_env()
    act(env, "EAT")
    turn = int(base(env).blstats()[nethack.NLE_BL_TIME])
    _, _, _, _, info = act(env, "N")
    assert not info["ate"] and info["macro"] is None
    assert "What do you want to eat?" not in message(env)
    assert int(base(env).blstats()[nethack.NLE_BL_TIME]) == turn


def test_quaff_macro_drinks_the_first_listed_potion(wizard_env):
    env = wizard_env()
    oclasses = base(env).last_observation[base(env)._inv_oclasses_index]
    potions_before = int((oclasses == nethack.POTION_CLASS).sum())
    act(env, "QUAFF")
    assert "What do you want to drink?" in message(env)
    _, _, _, _, info = act(env, "NW")
    assert info["macro"] == "quaff"
    assert "You feel better." in message(env) or "healing" not in message(env)
    inv = base(env).last_observation[base(env)._inv_strs_index]
    texts = [bytes(r).rstrip(b"\0").decode() for r in inv if r[0]]
    assert potions_before == 1 and any(t.startswith("2 uncursed potions of healing") for t in texts), texts


def test_wait_rests_25_turns(wizard_env):
    env = wizard_env()
    turn = int(base(env).blstats()[nethack.NLE_BL_TIME])
    _, _, _, _, info = act(env, "WAIT")
    assert info["macro"] == "wait"
    # 25 rest moves; the Monk is intrinsically fast, so they take about 19 game turns.
    assert 15 <= int(base(env).blstats()[nethack.NLE_BL_TIME]) - turn <= 26


def test_drop_macro_drops_a_new_item_and_never_a_starting_one(wizard_env):
    env = wizard_env()
    _, _, _, _, info = act(env, "DROP")  # only starting items and food: nothing to drop
    assert info["macro"] is None
    letter = wish(env, "ruby ring")
    _, _, _, _, info = act(env, "DROP")
    assert info["macro"] == "drop"
    assert message(env).startswith("You drop"), message(env)
    letters = base(env).last_observation[base(env)._inv_letters_index]
    assert ord(letter) not in set(int(x) for x in letters)


def test_cast_macro_casts_healing_at_self(wizard_env):
    env = wizard_env()
    energy = int(base(env).blstats()[nethack.NLE_BL_ENE])
    _, _, _, _, info = act(env, "CAST")
    assert info["macro"] == "cast"
    assert int(base(env).blstats()[nethack.NLE_BL_ENE]) == energy - 5  # healing costs 5 Pw
    assert "direction" not in message(env)


def test_yes_no_prompts_are_declined_and_reported(wizard_env):
    env = wizard_env()
    teleport_onto(env, "<")
    _, _, terminated, _, info = act(env, "UP")  # "Beware, there will be no return!  Still climb?"
    assert any("climb" in p for p in info["declined"])
    assert not terminated and depth(env) == 1


def test_descent_message_survives_its_more_and_overview_is_invisible(wizard_env):
    env = wizard_env()
    map_level(env)
    teleport_onto(env, ">")
    obs, _, _, _, info = act(env, "DOWN")
    assert info["descended"] and depth(env) == 2
    assert decode_message(obs["message"]) == "You descend the stairs."
    seen = obs["tty_chars"].copy()
    steps = base(env)._steps
    text = base(env).overview_text()
    assert "Level 2" in text and "You are here" in text
    assert np.array_equal(obs["tty_chars"], seen) and base(env)._steps == steps
    assert decode_message(obs["message"]) == "You descend the stairs."
    act(env, "SEARCH")  # the game goes on normally afterwards
    assert depth(env) == 2


def test_step_cap_is_a_truncation():
    env = make(seed=0, max_episode_steps=5)
    env.reset()
    results = [env.step(ACTION_INDEX["SEARCH"]) for _ in range(5)]
    assert [r[3] for r in results] == [False] * 4 + [True]
    assert not results[-1][2]
    assert not died(results[-1][2], results[-1][4])  # a step cap is not a death
    env.close()


def test_a_death_ends_on_a_blank_observation_and_reads_as_a_death():
    """Random play kills the Monk within ~130 steps (seed 3); the step that ends the game returns NLE's
    blank observation, which no stage may read a depth or message from (benchmark.env.is_blank)."""
    env = make(seed=3)
    rng = np.random.default_rng(0)
    obs, _ = env.reset()
    for _ in range(2000):
        assert not is_blank(obs)
        obs, _, terminated, truncated, info = env.step(int(rng.integers(len(ACTIONS))))
        if terminated or truncated:
            break
    assert terminated and not truncated and died(terminated, info)
    assert is_blank(obs) and decode_message(obs["message"]) == ""
    env.close()


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"task": "nope"}, ["nope", "gnomish", "discoveryhunger"]),
        ({"seed": -1}, ["seed", "-1"]),
        ({"seed": "3"}, ["seed"]),
        ({"options": ["role:mon,race:hum"]}, ["comma", "role:mon"]),
        ({"observation_keys": ["glyphs", "smell"]}, ["smell"]),
        ({"max_episode_steps": 0}, ["max_episode_steps"]),
        ({"colour": True}, ["colour", "allowed"]),
    ],
)
def test_bad_input_names_the_problem(kwargs, words):
    with pytest.raises((EnvError, TaskError)) as err:
        make(**kwargs)
    for word in words:
        assert word in str(err.value)


def test_teleport_helper_moves_levels(wizard_env):
    env = wizard_env()
    teleport_to(env, 4)
    assert depth(env) == 4


def test_unknown_nethack_option_fails_at_reset_with_nethacks_words():
    env = make(seed=0, options=["role:mon", "race:hum", "gender:mal", "align:neu", "bogusoption"])
    with pytest.raises(EnvError, match="Unknown option 'bogusoption'"):
        env.reset()
    env.close()


# ----- the official NetHack options file ---------------------------------------------------------
def test_nethack_reads_exactly_the_conf_options_file_and_accepts_it():
    env = make(seed=0)
    env.reset()  # a config error would stop NetHack before the game (EnvError, see the test above)
    rc = Path(base(env).nethack._nethackoptions[1:])  # NLE passes "@<the file NetHack reads>"
    conf = OmegaConf.load(ENV_CONF)
    assert list(conf.options) == list(PAPER_OPTIONS) and list(conf.config_lines) == list(PAPER_CONFIG_LINES)
    expected = [f"OPTIONS={o}" for o in conf.options] + ["OPTIONS=name:Agent-mon-hum-neu-mal"]
    assert rc.read_text().splitlines() == expected + list(conf.config_lines)
    assert "mention_walls" not in rc.read_text()  # not in the official file (NLE's own list has it)
    assert message(env).startswith("Hello Agent, welcome to NetHack!")
    env.close()


def test_envs_share_one_options_file_and_a_killed_process_leaves_no_folder():
    """The options file is named by its text: two envs with the same settings read the same file, one with
    other options reads another, and a process that builds an env and dies by os._exit (as sample-factory's
    workers end) adds no folder to the temp dir."""
    import subprocess
    import sys
    import tempfile

    first, second = make(seed=0), make(seed=1)
    other = make(seed=0, options=[*PAPER_OPTIONS, "mention_walls"])
    files = [Path(base(e).nethack._nethackoptions[1:]) for e in (first, second, other)]
    assert files[0] == files[1] != files[2] and files[2].read_text().count("mention_walls") == 1
    for env in (first, second, other):
        env.close()
    assert files[0].is_file()  # closing an env removes nothing another env may still read

    def folders() -> set[str]:
        return {str(p) for p in Path(tempfile.gettempdir()).glob("mm-nethackrc*")} | {
            str(p) for p in Path(tempfile.gettempdir()).glob("mm-nethackrc*/*")}

    before = folders()
    code = ("import os; from benchmark.env import make; e = make(seed=3); e.reset(); e.step(0); "
            "os._exit(0)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2], timeout=60)
    assert folders() == before


def _bump_west(env) -> str:
    """Walk west until something stops the hero, then once more into it; the message of that last step."""
    for _ in range(80):
        before = hero_position(env)
        act(env, "W")
        if hero_position(env) == before:
            break
    act(env, "W")
    return message(env)


def test_walking_into_a_wall_says_nothing(wizard_env):
    assert _bump_west(wizard_env()) == ""
    # The same walk with NLE's default mention_walls reports the wall: the walk does reach one.
    with_walls = wizard_env(options=[*PAPER_OPTIONS, "mention_walls"])
    assert _bump_west(with_walls) in ("It's a wall.", "It's solid stone.")


@pytest.mark.parametrize("item, picked", [
    ("newt corpse", True), ("lichen corpse", True), ("lizard corpse", True), ("floating eye corpse", True),
    ("jackal corpse", False), ("tin", False), ("apple", True), ("scroll of light", True),
    ("robe", True), ("leather gloves", True),  # armour: picked up by an exception, once identified
])
def test_autopickup_follows_the_official_exceptions(wizard_env, item, picked):
    env = wizard_env()
    env_ = base(env)
    letter = wish(env, item)
    identify_all(env)  # "an uncursed +0 robe": the official robe/gloves patterns need a word before the name
    env_.send_keys("d" + letter)
    assert message(env).startswith("You drop")
    act(env, "E")
    act(env, "W")  # back onto the dropped item
    # "k - ..."
    assert (message(env)[1:4] == " - " and item.split()[-1] in message(env)) == picked, message(env)
