"""The paper's caption format (docs/method.md §3.2), line by line."""
from maestromotif.data.captions import HUNGER_NAMES, caption, hunger_name, motif_caption


def side(**kw):
    base = dict(message="", prev_message="", dlvl=1, dlvl_prev=1, gold=0, gold_prev=0, hp=14, hp_prev=14,
                hpmax=14, hpmax_prev=14, xp=1, xp_prev=1, hunger=1, hunger_prev=1)
    base.update(kw)
    return base


def test_unchanged_sample_says_did_not_change_everywhere():
    assert caption(side(message="It's a wall.", prev_message="Hello")) == "\n".join([
        'Message: previously seen "Hello", currently displayed "It\'s a wall."',
        "Dungeon Level: did not change",
        "Gold: did not change",
        "HP: did not change",
        "XP: did not change",
        "Hunger: did not change.",
    ])


def test_changes_use_the_papers_wording():
    text = caption(side(dlvl_prev=1, dlvl=2, gold_prev=0, gold=15, hp_prev=14, hp=10, xp_prev=1, xp=2,
                        hunger_prev=1, hunger=2))
    assert text.splitlines()[1:] == [
        "Dungeon Level: went down from 1 to 2",  # a larger depth is further down
        "Gold: went up from 0 to 15",
        "HP: went down from 14/14 to 10/14",
        "XP: went up from 1 to 2",
        "Hunger: changed from Normal to Hungry",
    ]


def test_going_up_a_level_and_losing_gold():
    lines = caption(side(dlvl_prev=3, dlvl=2, gold_prev=20, gold=5)).splitlines()
    assert lines[1] == "Dungeon Level: went up from 3 to 2"
    assert lines[2] == "Gold: went down from 20 to 5"


def test_max_hp_change_alone_is_reported():
    assert caption(side(hpmax=16, hp=14)).splitlines()[3] == "HP: went up from 14/14 to 14/16"


def test_hunger_names_and_suffixed_fields():
    assert HUNGER_NAMES == ("Satiated", "Normal", "Hungry", "Weak", "Fainting", "Fainted", "Starved")
    assert hunger_name(0) == "Satiated" and hunger_name(6) == "Starved"
    pair = {f"{k}_2": v for k, v in side(message="You kill the newt!\0\0").items()}
    assert 'currently displayed "You kill the newt!"' in caption(pair, "_2")
    assert motif_caption(pair, "_2") == "You kill the newt!"
