"""BALROG's progression score: known values of its table (balrog/environments/nle/achievements.json)."""
import itertools
import math

import pytest

from benchmark import progression
from benchmark.progression import DEPTH_PROGRESSION, XL_PROGRESSION


def test_the_start_of_the_game_is_zero():
    assert progression.progression(1, 1) == 0.0  # "Dlvl:1": 0.0, "Xp:1": 0.0


def test_known_values_of_balrogs_table():
    assert progression.progression(2, 1) == 0.015392269075361172    # "Dlvl:2"
    assert progression.progression(10, 1) == 0.12558597019922987    # "Dlvl:10"
    assert progression.progression(50, 1) == 0.8067964442444019     # "Dlvl:50"
    assert progression.progression(1, 2) == 0.01847840456172601     # "Xp:2"
    assert progression.progression(1, 14) == 0.49403949403949404    # "Xp:14"
    assert progression.progression(1, 30) == 0.7804561949196475     # "Xp:30"


def test_the_larger_of_depth_and_experience_level_counts():
    assert progression.progression(3, 2) == XL_PROGRESSION[1] > DEPTH_PROGRESSION[2]  # XL 2 beats Dlvl 3
    assert progression.progression(12, 5) == DEPTH_PROGRESSION[11] > XL_PROGRESSION[4]


def test_levels_outside_the_table():
    assert progression.progression(0, 0) == 0.0                      # NLE's zeroed terminal blstats
    assert progression.progression(60, 1) == DEPTH_PROGRESSION[-1]   # deeper than the table: its last row
    assert progression.progression(1, 31) == 0.0                     # no such experience level: no value


def test_tables_only_rise_so_the_maximum_level_gives_balrogs_running_maximum():
    for table, size in ((DEPTH_PROGRESSION, 50), (XL_PROGRESSION, 30)):
        assert len(table) == size and all(a <= b for a, b in itertools.pairwise(table))


def test_run_mean_and_records_without_max_xlvl():
    records = [{"max_depth": 2, "max_xlvl": 1}, {"max_depth": 1, "max_xlvl": 2}]
    assert progression.mean_progression(records) == pytest.approx((0.015392269075361172
                                                                   + 0.01847840456172601) / 2)
    assert math.isnan(progression.mean_progression([{"max_depth": 2}]))  # written before max_xlvl existed
