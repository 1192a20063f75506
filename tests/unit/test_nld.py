"""Status-line and message parsing of terminal frames (human data has no blstats)."""
import numpy as np

from maestromotif.data.nld import parse_message, parse_status


def screen(top: str = "", row22: str = "", row23: str = "") -> np.ndarray:
    chars = np.full((24, 80), ord(" "), dtype=np.uint8)
    for row, text in ((0, top), (22, row22), (23, row23)):
        chars[row, : len(text)] = np.frombuffer(text.encode("latin-1"), dtype=np.uint8)
    return chars


def test_status_lines_of_nethack_367():
    s = parse_status(screen(row22="Agent the Candidate   St:15 Dx:11 Co:10 In:13 Wi:17 Ch:9 Neutral S:0",
                            row23="Dlvl:3 $:42 HP:9(14) Pw:4(4) AC:4 Xp:2/25 T:1234 Hungry Burdened"))
    assert s == {"dlvl": 3, "gold": 42, "hp": 9, "hpmax": 14, "xp": 2, "hunger": 2, "turn": 1234}


def test_normal_hunger_and_missing_fields():
    s = parse_status(screen(row23="Dlvl:1 $:0 HP:14(14) Pw:4(4) AC:4 Exp:1"))
    assert s["hunger"] == 1 and s["xp"] == 1 and s["turn"] == -1
    assert parse_status(screen(row23="Home 1 $:0 HP:14(14)"))["dlvl"] == -1
    assert parse_status(screen(row23="Dlvl:1 $:0 HP:1(14) Weak"))["hunger"] == 3


def test_message_drops_padding_and_more():
    assert parse_message(screen(top="You kill the newt!--More--")) == "You kill the newt!"
    assert parse_message(screen(top="It's a wall.")) == "It's a wall."
    assert parse_message(screen()) == ""
