"""Our reference programs over skills behave as the released ones (mklissa/maestromotif @ 268cf45,
rl_baseline/meta_policies/<task>/seed42/execution.py), state by state, through the real options step."""
from __future__ import annotations

import pytest

from maestromotif.options.program import SETTINGS, reference_program
from maestromotif.options.sandbox import InProcessRunner
from tests.fixtures.data import step_inputs

FORK = 2  # depth of the Mines fork in these tests
DOD, MINES = 0, 2


@pytest.fixture(scope="module")
def runner():
    return InProcessRunner()


def _inputs(**kw):
    return step_inputs(**{"skill": "descender", **kw})


def player(runner, name, seed=0, fork=FORK, **fed):
    """A fresh player of reference program `name` that knows the fork depth (and was fed `fed` hooks)
    through one options step that does not end the running skill."""
    p = runner.load(reference_program(name).source, name).new_player(seed=seed)
    p.step(_inputs(branch_depth=fork, **fed))
    return p


def next_skill(p, skill, depth, branch, merchant=False, worshipper=False):
    return p.call("perform_task", skill, depth, branch, merchant, worshipper)


def training(runner, mines: int):
    seed = next(s for s in range(100) if runner.load(reference_program("training").source, "t")
                .new_player(seed=s).get("mines") == mines)
    return player(runner, "training", seed=seed)


@pytest.mark.parametrize("mines", [0, 1])
def test_exploration_always_descends_at_the_fork(runner, mines):
    p = training(runner, mines)
    # arriving at the fork from above: down again at once (old: explore the fork level first)
    assert next_skill(p, "descender", FORK, DOD) == "descender"
    # even with a shopkeeper or an altar in view (old: Merchant / Worshipper)
    assert next_skill(p, "discoverer", FORK, DOD, merchant=True) == "descender"
    assert next_skill(p, "discoverer", FORK, DOD, worshipper=True) == "descender"
    # through the real options step: a precondition ends the running skill, the program picks the Descender
    window, colors = [[32] * 7 for _ in range(7)], [[0] * 7 for _ in range(7)]
    window[1][1], colors[1][1] = ord("@"), 15
    out = p.step(_inputs(skill="discoverer", depth=FORK, previous_depth=FORK, branch_depth=FORK, chars=window,
                         colors=colors, num_items=1))
    assert out["merchant"] and out["end"] and out["next"] == "descender"


def test_exploration_descends_at_the_fork_on_the_way_up_too(runner):
    p = training(runner, 1)
    max_depth = p.get("max_depth")
    assert next_skill(p, "discoverer", max_depth, MINES) == "ascender"  # turned around at max_depth
    assert p.get("direction") == "up"
    assert next_skill(p, "ascender", FORK, DOD) == "descender"  # old: explore, then keep going up


def test_exploration_leaves_the_wrong_branch_just_below_the_fork_only(runner):
    mines = training(runner, 1)
    assert next_skill(mines, "descender", FORK + 1, DOD) == "ascender"
    assert next_skill(mines, "descender", FORK + 2, DOD) == "discoverer"  # deeper: tour (old: ascender)
    doom = training(runner, 0)
    assert next_skill(doom, "descender", FORK + 1, MINES) == "ascender"
    assert next_skill(doom, "descender", FORK + 2, MINES) == "discoverer"  # (old: ascender)
    # fork unknown: the plain tour
    unknown = player(runner, "training", fork=-2)
    assert next_skill(unknown, "discoverer", 1, DOD, merchant=True) == "merchant"


def test_gnomish_is_the_mines_branch_policy_with_short_exploration(runner):
    assert SETTINGS["gnomish"].discoverer_skill_steps == 50  # old: 500
    p = player(runner, "gnomish")
    assert next_skill(p, "discoverer", FORK + 1, MINES) == "descender"  # Mines: tour (old: discoverer)
    assert next_skill(p, "descender", FORK, DOD) == "descender"


def test_delphi(runner):
    p = player(runner, "delphi")
    assert next_skill(p, "descender", FORK + 1, MINES) == "ascender"
    assert next_skill(p, "discoverer", FORK + 2, MINES) == "descender"  # deeper: tour (old: ascender)
    assert next_skill(p, "descender", 5, DOD, merchant=True) == "descender"  # straight down to DL 9
    assert next_skill(p, "discoverer", 9, DOD) == "descender"  # tour to 10 (old: discoverer)
    assert next_skill(p, "discoverer", 9, DOD, merchant=True) == "merchant"


def test_minetown(runner):
    p = player(runner, "minetown")
    assert next_skill(p, "descender", FORK + 1, MINES) == "descender"
    assert next_skill(p, "descender", 8, MINES) == "discoverer"
    assert next_skill(p, "descender", FORK + 1, DOD) == "ascender"
    assert next_skill(p, "descender", FORK + 2, DOD) == "discoverer"  # below the fork in the Dungeons: tour
    assert next_skill(p, "descender", 1, DOD) == "discoverer"  # above the fork: explore (old: descender)
    unknown = player(runner, "minetown", fork=-2)
    assert next_skill(unknown, "discoverer", 1, DOD, merchant=True) == "merchant"  # (old: descender)


@pytest.mark.parametrize("task", ["transactions", "price"])
def test_shop_tasks_sell_whenever_they_can(runner, task):
    p = player(runner, task)
    assert next_skill(p, "discoverer", 1, DOD, merchant=True) == "merchant"  # also on DL 1 (old: not)
    assert next_skill(p, "discoverer", FORK + 1, MINES, merchant=True) == "merchant"  # also in the Mines
    assert next_skill(p, "discoverer", 1, DOD, worshipper=True) == "worshipper"  # (old: suppressed)
    assert next_skill(p, "descender", FORK + 1, MINES) == "ascender"


def test_buc_has_no_branch_policy(runner):
    p = player(runner, "buc")
    assert next_skill(p, "discoverer", 1, DOD, worshipper=True) == "worshipper"
    assert next_skill(p, "discoverer", 1, DOD, merchant=True) == "merchant"  # (old: suppressed)
    assert next_skill(p, "discoverer", FORK + 1, MINES) == "descender"  # Mines are fine (old: ascender)


def test_goldenexit(runner):
    assert next_skill(player(runner, "goldenexit"), "descender", FORK + 1, MINES) == "ascender"
    p = player(runner, "goldenexit")
    assert next_skill(p, "discoverer", 1, DOD) == "descender"
    for _ in range(25):
        p.step(_inputs(gold=20, kill=True, branch_depth=FORK))
    # gold and kills done on DL 1, never deeper: leave anyway (old: first reach max_depth)
    assert next_skill(p, "discoverer", 1, DOD) == "ascender"


def test_levelupsell(runner):
    p = player(runner, "levelupsell")
    assert next_skill(p, "descender", 2, DOD) == "discoverer"  # XP < 4: explore here (old: ascender)
    p.step(_inputs(xp_level=4, branch_depth=FORK))
    assert next_skill(p, "discoverer", 1, DOD, merchant=True) == "merchant"  # also on DL 1 (old: not)
    assert p.get("items_sold") is True
    assert next_skill(p, "discoverer", 1, DOD) == "descender"  # sold: the tour (old: discoverer)


def test_discoveryhunger(runner):
    p = player(runner, "discoveryhunger")
    assert next_skill(p, "descender", FORK, DOD) == "descender"  # Mines branch policy at the fork
    assert next_skill(p, "descender", FORK + 1, MINES) == "discoverer"
    assert next_skill(p, "ascender", FORK, DOD) == "discoverer"  # not fed yet: explore (old: descender)
    p.step(_inputs(dungeon_number=MINES, ate_in_mines=True, branch_depth=FORK))
    assert p.get("eaten_food") is True
    assert next_skill(p, "discoverer", FORK + 1, MINES) == "ascender"
    assert next_skill(p, "discoverer", FORK + 3, MINES) == "descender"  # fed, deep in the Mines: keeps going
    assert next_skill(p, "discoverer", 5, DOD) == "descender"
    assert next_skill(p, "descender", 9, DOD) == "discoverer"
