"""baselines.text_obs: the text an LLM agent reads, checked on real NetHack observations."""
import numpy as np
import pytest
from nle import nethack

from baselines.text_obs import (
    TextObsConfig, at_more_prompt, direction, glyph_name, nearby_things, render, status_text, steps,
    task_goal_text,
)
from benchmark.env import ACTION_INDEX, make

TEXT = TextObsConfig(max_things=12, include_inventory=True)  # conf/method/llm_policy.yaml's values


@pytest.fixture(scope="module")
def start_obs():
    """The first observation of the game of seed 3: the Monk in a lit room with a fountain and doors."""
    env = make(seed=3)
    obs, _ = env.reset()
    env.close()
    return obs


def test_compass_direction_and_steps():
    assert direction(0, -5) == "north"
    assert direction(3, 0) == "east"
    assert direction(2, 2) == "southeast"
    assert direction(-7, 2) == "west"  # 16 degrees off west: the nearest of 8 points
    assert direction(-1, -1) == "northwest"
    assert steps(-7, 2) == 7 and steps(1, 1) == 1


def test_glyph_names_do_not_leak_identities():
    potion = next(i for i in range(nethack.NUM_OBJECTS)
                  if ord(nethack.objclass(i).oc_class) == nethack.POTION_CLASS)
    assert glyph_name(nethack.GLYPH_OBJ_OFF + potion) == "potion"
    gold = next(i for i in range(nethack.NUM_OBJECTS) if nethack.objdescr.from_idx(i).oc_name == "gold piece")
    assert glyph_name(nethack.GLYPH_OBJ_OFF + gold) == "gold pieces"
    assert glyph_name(nethack.GLYPH_MON_OFF) == nethack.permonst(0).mname == "giant ant"
    assert glyph_name(nethack.GLYPH_PET_OFF) == "tame giant ant"
    assert glyph_name(nethack.GLYPH_BODY_OFF) == "giant ant corpse"
    assert glyph_name(nethack.GLYPH_STATUE_OFF) == "statue of a giant ant"
    assert glyph_name(nethack.GLYPH_CMAP_OFF + 0) == ""  # solid rock / unexplored, not "dark part of a room"
    assert glyph_name(nethack.GLYPH_CMAP_OFF + 24) == "staircase down"


def test_render_of_a_real_start(start_obs):
    text = render(start_obs, TEXT)
    lines = text.splitlines()
    assert lines[0] == "Message: Hello Agent, welcome to NetHack!  You are a neutral male human Monk."
    assert lines[1] == ("Status: the Dungeons of Doom, depth 1, HP 14/14, Pw 4/4, AC 4, XP level 1 (0 "
                        "points), gold 0, turn 1, not hungry, unencumbered")
    assert lines[2] == ("Next to you: north: wall; northeast: wall; east: floor of a room; southeast: floor "
                        "of a room; south: floor of a room; southwest: floor of a room; west: floor of a "
                        "room; northwest: wall")
    assert lines[3:9] == [
        "In view:",
        "- fountain, 3 steps east",
        "- closed door, 4 steps east",
        "- doorway, 4 steps southeast",
        "- doorway, 5 steps west",
        "- closed door, 5 steps west",
    ]
    assert "Inventory:" in lines
    assert "- a: an uncursed +2 pair of leather gloves (being worn)" in lines
    assert "- b: an uncursed +1 robe (being worn)" in lines


def test_cells_match_the_screen(start_obs):
    """The fountain said to be 3 steps east is the '{' on the tty screen, 3 columns right of the '@'."""
    x, y = int(start_obs["blstats"][nethack.NLE_BL_X]), int(start_obs["blstats"][nethack.NLE_BL_Y])
    screen_row = bytes(start_obs["tty_chars"][y + 1]).decode("latin-1")  # tty row 0 is the message line
    assert screen_row[x] == "@" and screen_row[x + 3] == "{"
    assert nearby_things(start_obs["glyphs"], x, y, limit=1) == ["fountain, 3 steps east"]


def test_status_after_walking(start_obs):
    env = make(seed=3)
    env.reset()
    for _ in range(2):
        obs, *_ = env.step(ACTION_INDEX["E"])
    env.close()
    assert int(obs["blstats"][nethack.NLE_BL_X]) == 42  # two squares east of the start (x=40)
    assert status_text(obs["blstats"]).startswith("the Dungeons of Doom, depth 1, HP 14/14")
    text = render(obs, TEXT)
    assert "- fountain, 1 step east" in text.splitlines()


def test_more_prompt_detection(start_obs):
    assert not at_more_prompt(start_obs["tty_chars"])
    tty = start_obs["tty_chars"].copy()
    tty[0, 10:18] = np.frombuffer(b"--More--", dtype=np.uint8)
    assert at_more_prompt(tty)
    assert "answer MORE" in render({**start_obs, "tty_chars": tty}, TEXT)


def test_task_goal_text_drops_coder_sentences():
    assert task_goal_text("gnomish") == "You are now faced with the task of finding the Gnomish Mines."
    for task in ("buc", "levelupsell", "goldenexit", "discoveryhunger"):
        text = task_goal_text(task)
        assert text and "perform_task" not in text and "precondition" not in text
        assert "skill" not in text.lower()
