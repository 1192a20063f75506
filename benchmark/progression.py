"""BALROG's NetHack progression score of an episode, so our rows line up with LLM-agent leaderboards.

BALROG (Paglieri et al. 2025, github.com/balrog-ai/BALROG) scores a NetHack episode by the deepest dungeon
level (blstats depth) and the highest experience level it reached, each mapped through a table of how often
human players who reached it went on to ascend; the episode's progression is the larger of the two values
(0 at the start, Dlvl 1 / XL 1). docs/progression.md states the definition and where ours differs.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

# The data below is BALROG's (MIT licence, Copyright (c) 2024 BALROG Team), carried over as facts from
# balrog/environments/nle/achievements.json at commit af7d1f17e0deec3a7a0e334beae5f11b7a21371b (its "Dlvl:N"
# and "Xp:N" entries): the fraction of human NLD games that reached the level and then ascended.
# Entry i is depth / experience level i + 1. Its other entries ("Home N", "Astral Plane", "You ascend t")
# are never matched by BALROG's scorer, which looks up only "Dlvl:<blstats depth>" and "Xp:<blstats XL>".
DEPTH_PROGRESSION = (
    0.0, 0.015392269075361172, 0.017539535798967013, 0.021221378364235505, 0.026482449457437766,
    0.035428686118173014, 0.04846098359243788, 0.0695812141543123, 0.09770935198701912, 0.12558597019922987,
    0.1612677822768481, 0.20612854836308672, 0.2566039887664476, 0.29247245425293333, 0.30881240110986263,
    0.3249071349317381, 0.34007883702829594, 0.3526455577544006, 0.3654881095022441, 0.37895667923256743,
    0.39293747679675045, 0.40832255575976223, 0.4258360748858015, 0.445181408701678, 0.46637631565303056,
    0.5067605633802816, 0.5543572044866264, 0.6015648510382184, 0.6465049415992812, 0.6913110342176086,
    0.7101094299371864, 0.7176456494828894, 0.7232124894378948, 0.7284405900470092, 0.7327761924174481,
    0.7368528917489855, 0.7421458943978863, 0.7471321695760599, 0.753731343283582, 0.7610398408061306,
    0.76740810314648, 0.7725338491295938, 0.7771626297577855, 0.7812567949554251, 0.7858986134802957,
    0.7890256738822022, 0.7929718875502008, 0.7967408445768355, 0.8018467495718222, 0.8067964442444019,
)
XL_PROGRESSION = (
    0.0, 0.01847840456172601, 0.02081163581974355, 0.024160136550546978, 0.029108986017138745,
    0.036887590648350246, 0.0507583712345433, 0.07453595273884014, 0.11704996473565571, 0.17909953770432294,
    0.25480449090205187, 0.33264942385807844, 0.41442590519821954, 0.49403949403949404, 0.5778823703813513,
    0.6261221999477034, 0.656281764586298, 0.6810218550418937, 0.7015328516442704, 0.7174494081710576,
    0.7286977843944303, 0.7371004909327723, 0.7443446629532795, 0.7513449678519879, 0.7585537128343045,
    0.7642151855635002, 0.7703376822716808, 0.7759810263044415, 0.7783345263660224, 0.7804561949196475,
)


def progression(max_depth: int, max_xlvl: int) -> float:
    """An episode's progression in [0, 1]: max(table[deepest depth], table[highest experience level]).

    Both tables only rise, so the table value of the maximum equals BALROG's running maximum over every level
    seen. A depth or level the tables do not hold (0: NLE's zeroed terminal blstats) adds nothing, as in
    BALROG; a depth beyond 50 counts as 50 (the table's last row), which BALROG reaches on the way down.
    """
    values = [0.0]
    if max_depth >= 1:
        values.append(DEPTH_PROGRESSION[min(int(max_depth), len(DEPTH_PROGRESSION)) - 1])
    if 1 <= max_xlvl <= len(XL_PROGRESSION):
        values.append(XL_PROGRESSION[int(max_xlvl) - 1])
    return max(values)


def episode_progressions(records: Iterable[dict]) -> list[float]:
    """Each evaluation record's progression (from its max_depth and max_xlvl); NaN for a record without
    max_xlvl (written before evaluate recorded it)."""
    return [progression(r["max_depth"], r["max_xlvl"]) if "max_xlvl" in r else math.nan for r in records]


def mean_progression(records: list[dict]) -> float:
    """The run's mean progression over its episodes; NaN if any record lacks max_xlvl."""
    values = episode_progressions(records)
    return float(np.mean(values)) if values else math.nan
