"""The rule oracle prefers what each skill's prompt asks for, and ties otherwise."""
import pytest

from maestromotif.oracle import oracle_label, sample_score
from maestromotif.prompts import FIRST, SECOND, TIE


def pair(one: dict, two: dict) -> dict:
    base = dict(message="", dlvl=1, dlvl_prev=1, gold=0, gold_prev=0, xp=1, xp_prev=1)
    return {**{f"{k}_1": v for k, v in {**base, **one}.items()},
            **{f"{k}_2": v for k, v in {**base, **two}.items()}}


@pytest.mark.parametrize("skill, one, two, label", [
    ("descender", {"dlvl": 2}, {}, FIRST),
    ("descender", {"dlvl_prev": 2}, {}, SECOND),
    ("ascender", {"dlvl_prev": 2}, {"dlvl": 2}, FIRST),
    ("merchant", {}, {"message": "You sold a scroll for 40 gold pieces."}, SECOND),
    ("merchant", {"message": "Asidonhopo, the shopkeeper, says: for sale"}, {}, FIRST),
    ("worshipper", {"message": "There is an altar to Chih Sung-tzu (neutral) here."}, {}, FIRST),
    ("discoverer", {"gold": 12}, {}, FIRST),
    ("discoverer", {"gold": 12, "dlvl": 2}, {}, SECOND),  # leaving the level is refused
    ("discoverer", {}, {"message": "You kill the newt!"}, SECOND),
    ("descender", {"message": "It's a wall."}, {"message": "It's solid stone."}, TIE),
])
def test_oracle_prefers_the_skills_goal(skill, one, two, label):
    assert oracle_label(skill, pair(one, two))[0] == label


def test_angering_the_god_loses_for_every_skill():
    p = pair({"dlvl": 2, "message": "You feel that Chih Sung-tzu is displeased."}, {})
    for skill in ("descender", "merchant", "discoverer"):
        assert oracle_label(skill, p)[0] == SECOND


def test_unknown_skill_is_an_error():
    with pytest.raises(ValueError, match="no rule"):
        sample_score("wizard", pair({}, {}), "_1")


def test_oracle_agreement_counts_only_pairs_the_oracle_decides():
    import pandas as pd

    from maestromotif.oracle import oracle_agreement
    from maestromotif.prompts import UNKNOWN

    rows = [pair({"dlvl": 2}, {}), pair({}, {"dlvl": 2}), pair({}, {"dlvl": 2}), pair({}, {"dlvl": 3}),
            pair({}, {})]
    pairs = pd.DataFrame(rows)
    # hit, miss, tie (miss), unknown (miss), oracle tie
    given = pd.Series([FIRST, FIRST, TIE, UNKNOWN, SECOND])
    got = oracle_agreement(given, pairs, "descender")
    assert got["n"] == 4 and got["accuracy"] == 0.25
    assert got["decided"] == 2 and got["accuracy_decided"] == 0.5 and got["unknown"] == 1
    assert got["oracle_histogram"] == {"first": 1, "second": 3, "tie": 1}
    with pytest.raises(ValueError, match="labels for"):
        oracle_agreement(given[:2], pairs, "descender")
