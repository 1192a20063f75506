"""A BALROG-like text rendering of our NetHack observations, for LLM agents.

BALROG turns NLE into text with the NLE language wrapper (message, stats, one line per visible thing
with a direction and a distance, inventory). That code needs an old gym fork, so this module writes the
same kind of text from our own observation keys (glyphs, blstats, message, tty_chars, inv_*).

Choices, so that a small model can act on the text:
- directions are the 8 compass points the actions use (N, NE, ...), distances are in moves (Chebyshev:
  a diagonal move counts as one), e.g. "staircase down, 7 steps east";
- only things worth walking to are listed (creatures, objects, stairs, doors, altars, fountains, traps...);
  walls, floor and corridors are summarised by one line describing the 8 neighbouring squares;
- objects whose appearance NetHack shuffles per game (potions, scrolls, wands, rings, amulets,
  spellbooks) are named by their class only: the glyph encodes the true identity, which the player
  does not know, and NLE's description table is the unshuffled one.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from nle import nethack

from benchmark.env import decode_message

MORE_PROMPT = b"--More--"

# Dungeon numbers (blstats[NLE_BL_DNUM]) in NetHack 3.6's dungeon.def order.
DUNGEON_NAMES = {
    0: "the Dungeons of Doom",
    1: "Gehennom",
    2: "the Gnomish Mines",
    3: "the Quest",
    4: "Sokoban",
    5: "Fort Ludios",
    6: "Vlad's Tower",
    7: "the Elemental Planes",
}
HUNGER_NAMES = ("satiated", "not hungry", "hungry", "weak", "fainting", "fainted", "starved")
ENCUMBRANCE_NAMES = ("unencumbered", "burdened", "stressed", "strained", "overtaxed", "overloaded")
CONDITION_NAMES = (
    (nethack.BL_MASK_STONE, "turning to stone"),
    (nethack.BL_MASK_SLIME, "turning to slime"),
    (nethack.BL_MASK_STRNGL, "strangled"),
    (nethack.BL_MASK_FOODPOIS, "food poisoned"),
    (nethack.BL_MASK_TERMILL, "terminally ill"),
    (nethack.BL_MASK_BLIND, "blind"),
    (nethack.BL_MASK_DEAF, "deaf"),
    (nethack.BL_MASK_STUN, "stunned"),
    (nethack.BL_MASK_CONF, "confused"),
    (nethack.BL_MASK_HALLU, "hallucinating"),
    (nethack.BL_MASK_LEV, "levitating"),
    (nethack.BL_MASK_FLY, "flying"),
    (nethack.BL_MASK_RIDE, "riding"),
)

# Map features that are background: summarised as neighbours, never listed as "things nearby".
BACKGROUND_FEATURES = frozenset({
    "dark part of a room", "floor of a room", "wall", "corridor", "lit corridor", "air", "cloud", "",
})
# Object classes whose appearance is shuffled per game: name them by class only (see module doc).
SHUFFLED_CLASSES = {
    nethack.POTION_CLASS: "potion",
    nethack.SCROLL_CLASS: "scroll",
    nethack.WAND_CLASS: "wand",
    nethack.RING_CLASS: "ring",
    nethack.AMULET_CLASS: "amulet",
    nethack.SPBOOK_CLASS: "spellbook",
}
# (dx, dy) of one step in each direction; dy grows downwards (south), as rows do on the map.
COMPASS = (
    ("north", 0, -1), ("northeast", 1, -1), ("east", 1, 0), ("southeast", 1, 1),
    ("south", 0, 1), ("southwest", -1, 1), ("west", -1, 0), ("northwest", -1, -1),
)


@dataclass(frozen=True)
class TextObsConfig:
    """What the text lists (values: conf/method/llm_policy.yaml, through baselines.llm_policy)."""

    max_things: int  # nearest things listed, to bound the prompt length
    include_inventory: bool


def glyph_name(glyph: int) -> str:
    """What a player would call the thing shown by `glyph` (without shuffled-identity leaks)."""
    g = int(glyph)
    if nethack.glyph_is_pet(g):
        return "tame " + nethack.permonst(nethack.glyph_to_mon(g)).mname
    if nethack.glyph_is_detected_monster(g) or nethack.glyph_is_ridden_monster(g) or \
            nethack.glyph_is_normal_monster(g):
        return nethack.permonst(nethack.glyph_to_mon(g)).mname
    if nethack.glyph_is_invisible(g):
        return "unseen monster"
    if nethack.glyph_is_warning(g):
        return f"warning of an unseen monster (level {nethack.glyph_to_warning(g)})"
    if nethack.glyph_is_swallow(g):
        return "inside of a monster that swallowed you"
    if nethack.glyph_is_statue(g):
        return "statue of a " + nethack.permonst(g - nethack.GLYPH_STATUE_OFF).mname
    if nethack.glyph_is_body(g):
        return nethack.permonst(g - nethack.GLYPH_BODY_OFF).mname + " corpse"
    if nethack.glyph_is_object(g):
        return object_name(nethack.glyph_to_obj(g))
    if nethack.glyph_is_cmap(g):
        cmap = nethack.glyph_to_cmap(g)
        # S_stone (index 0) shares the explanation "dark part of a room" but means rock or unexplored.
        return "" if cmap == 0 else nethack.symdef.from_idx(cmap).explanation
    if nethack.GLYPH_EXPLODE_OFF <= g < nethack.GLYPH_SWALLOW_OFF:
        return "explosion" if g < nethack.GLYPH_ZAP_OFF else "magical beam"
    return ""


def object_name(obj_index: int) -> str:
    oclass = ord(nethack.objclass(obj_index).oc_class)
    if oclass in SHUFFLED_CLASSES:
        return SHUFFLED_CLASSES[oclass]
    descr = nethack.objdescr.from_idx(obj_index)
    if oclass == nethack.GEM_CLASS:
        return f"{descr.oc_descr} stone" if descr.oc_descr else "stone"
    if oclass == nethack.ARMOR_CLASS and descr.oc_descr:
        return "piece of armor"  # helmets, cloaks, boots, gloves: appearance shuffled as well
    if oclass == nethack.COIN_CLASS:
        return "gold pieces"
    return descr.oc_descr or descr.oc_name  # unidentified name where NetHack has one (fixed per type)


def direction(dx: int, dy: int) -> str:
    """The compass point (of 8) nearest to the offset (dx east, dy south)."""
    angle = math.degrees(math.atan2(dx, -dy)) % 360  # 0 = north, clockwise
    return COMPASS[int((angle + 22.5) // 45) % 8][0]


def steps(dx: int, dy: int) -> int:
    return max(abs(dx), abs(dy))


def at_more_prompt(tty_chars: np.ndarray) -> bool:
    """True while the game waits for a key to dismiss a --More-- (other keys are ignored there)."""
    return any(MORE_PROMPT in bytes(row) for row in np.asarray(tty_chars, dtype=np.uint8))


def status_text(blstats: np.ndarray) -> str:
    b = [int(v) for v in blstats]
    dungeon = DUNGEON_NAMES.get(b[nethack.NLE_BL_DNUM], f"dungeon {b[nethack.NLE_BL_DNUM]}")
    hunger = b[nethack.NLE_BL_HUNGER]
    cap = b[nethack.NLE_BL_CAP]
    parts = [
        f"{dungeon}, depth {b[nethack.NLE_BL_DEPTH]}",
        f"HP {b[nethack.NLE_BL_HP]}/{b[nethack.NLE_BL_HPMAX]}",
        f"Pw {b[nethack.NLE_BL_ENE]}/{b[nethack.NLE_BL_ENEMAX]}",
        f"AC {b[nethack.NLE_BL_AC]}",
        f"XP level {b[nethack.NLE_BL_XP]} ({b[nethack.NLE_BL_EXP]} points)",
        f"gold {b[nethack.NLE_BL_GOLD]}",
        f"turn {b[nethack.NLE_BL_TIME]}",
        HUNGER_NAMES[hunger] if 0 <= hunger < len(HUNGER_NAMES) else f"hunger {hunger}",
        ENCUMBRANCE_NAMES[cap] if 0 <= cap < len(ENCUMBRANCE_NAMES) else f"encumbrance {cap}",
    ]
    conditions = [name for mask, name in CONDITION_NAMES if b[nethack.NLE_BL_CONDITION] & mask]
    return ", ".join(parts + conditions)


def nearby_things(glyphs: np.ndarray, x: int, y: int, limit: int) -> list[str]:
    """'<thing>, <n> step(s) <direction>' for the `limit` nearest non-background things in view."""
    found = []
    rows, cols = glyphs.shape
    for row in range(rows):
        for col in range(cols):
            if (col, row) == (x, y):
                continue
            name = glyph_name(glyphs[row, col])
            if name in BACKGROUND_FEATURES:
                continue
            dx, dy = col - x, row - y
            found.append((steps(dx, dy), row, col, name, direction(dx, dy)))
    found.sort()
    return [f"{name}, {n} step{'s' if n > 1 else ''} {d}" for n, _, _, name, d in found[:limit]]


def neighbours_text(glyphs: np.ndarray, x: int, y: int) -> str:
    rows, cols = glyphs.shape
    parts = []
    for name, dx, dy in COMPASS:
        col, row = x + dx, y + dy
        inside = 0 <= row < rows and 0 <= col < cols
        what = glyph_name(glyphs[row, col]) if inside else ""
        parts.append(f"{name}: {what or 'solid rock or unexplored'}")
    return "; ".join(parts)


def inventory_lines(obs: dict[str, np.ndarray]) -> list[str]:
    lines = []
    for letter, text in zip(obs["inv_letters"], obs["inv_strs"]):
        if int(letter) == 0:
            continue
        lines.append(f"{chr(int(letter))}: {decode_message(text)}")
    return lines


def render(obs: dict[str, np.ndarray], cfg: TextObsConfig) -> str:
    """The text an LLM agent reads for one (unbatched) observation."""
    blstats = np.asarray(obs["blstats"])
    x, y = int(blstats[nethack.NLE_BL_X]), int(blstats[nethack.NLE_BL_Y])
    glyphs = np.asarray(obs["glyphs"])
    message = decode_message(obs["message"]).strip()
    lines = [f"Message: {message or '(none)'}"]
    if "tty_chars" in obs and at_more_prompt(obs["tty_chars"]):
        lines.append("The game shows --More--: answer MORE to continue.")
    lines.append(f"Status: {status_text(blstats)}")
    lines.append(f"Next to you: {neighbours_text(glyphs, x, y)}")
    things = nearby_things(glyphs, x, y, cfg.max_things)
    lines.append("In view:" + ("" if things else " nothing notable"))
    lines.extend(f"- {t}" for t in things)
    if cfg.include_inventory:
        inv = inventory_lines(obs)
        lines.append("Inventory:" + ("" if inv else " empty"))
        lines.extend(f"- {i}" for i in inv)
    return "\n".join(lines)


# ----- the task text for agents that play the game themselves (LLM policy, embedding similarity) -------
# conf/task/*.yaml `description` is the LLM coder's text; sentences about code or skills mean nothing to
# an agent that acts directly, so they are dropped.
_CODER_WORDS = re.compile(r"perform_task|precondition|write the code|unit test|skill|discoverer|descender|"
                          r"ascender|worshipper|merchant", re.IGNORECASE)


def task_goal_text(task: str) -> str:
    """The task's description (benchmark.tasks) without its coder-only sentences."""
    from benchmark.tasks import load_task_config

    description = load_task_config(task).description
    sentences = [s.strip() for s in re.split(r"(?<=[.;])\s+|\n+", description) if s.strip()]
    kept = [s for s in sentences if not _CODER_WORDS.search(s)]
    return " ".join(kept) or description.strip()
