"""What the annotator reads about one sample: the paper's diff-history caption (docs/method.md §3.2).

A sample is an observation and the one `gap` steps earlier in the same episode. The caption lists the
two messages and how depth, gold, HP, XP level and hunger changed between them, e.g.

    Message: previously seen "", currently displayed "You kill the newt!"
    Dungeon Level: went down from 1 to 2
    Gold: did not change
    HP: went down from 14/14 to 10/14
    XP: went up from 1 to 2
    Hunger: changed from Normal to Hungry

A larger depth number is "down". Motif captions are the current message alone.
"""
from __future__ import annotations

from typing import Mapping

HUNGER_NAMES = ("Satiated", "Normal", "Hungry", "Weak", "Fainting", "Fainted", "Starved")


def hunger_name(code: int) -> str:
    return HUNGER_NAMES[code] if 0 <= code < len(HUNGER_NAMES) else f"Unknown({code})"


def _up_down(before, after, before_text: str, after_text: str, up: str = "up", down: str = "down") -> str:
    if before_text == after_text:
        return "did not change"
    return f"went {up if after > before else down} from {before_text} to {after_text}"


def caption(side: Mapping, suffix: str = "") -> str:
    """The MaestroMotif caption of one sample.

    `side` maps field names (message, prev_message, dlvl, dlvl_prev, gold, gold_prev, hp, hp_prev,
    hpmax, hpmax_prev, xp, xp_prev, hunger, hunger_prev) with `suffix` appended (e.g. "_1") to values.
    """
    def g(name: str):
        return side[name + suffix]

    hp_before, hp_after = (g("hp_prev"), g("hpmax_prev")), (g("hp"), g("hpmax"))
    hunger_before, hunger_after = int(g("hunger_prev")), int(g("hunger"))
    lines = [
        f'Message: previously seen "{clean(g("prev_message"))}", currently displayed "{clean(g("message"))}"',
        # depth grows downwards: a larger number is a deeper level
        "Dungeon Level: " + _up_down(g("dlvl_prev"), g("dlvl"), str(g("dlvl_prev")), str(g("dlvl")),
                                     up="down", down="up"),
        "Gold: " + _up_down(g("gold_prev"), g("gold"), str(g("gold_prev")), str(g("gold"))),
        "HP: " + _up_down(hp_before, hp_after, "%d/%d" % hp_before, "%d/%d" % hp_after),
        "XP: " + _up_down(g("xp_prev"), g("xp"), str(g("xp_prev")), str(g("xp"))),
        "Hunger: " + ("did not change." if hunger_before == hunger_after
                      else f"changed from {hunger_name(hunger_before)} to {hunger_name(hunger_after)}"),
    ]
    return "\n".join(lines)


def motif_caption(side: Mapping, suffix: str = "") -> str:
    """Motif's caption: the current message only."""
    return clean(side["message" + suffix])


def clean(message: str) -> str:
    """A message as the annotator sees it: NULs dropped, outer whitespace stripped."""
    return str(message).replace("\0", "").strip()
