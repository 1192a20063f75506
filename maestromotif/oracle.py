"""A deterministic rule annotator per skill: an ablation of the LLM and a sanity check of the pipeline.

Each sample gets a score from what the skill's prompt asks for; the pair is labelled with the higher
one, a tie when equal (`annotate.annotator: oracle`):

  descender   the depth change (deeper is better)
  ascender    minus the depth change (shallower is better)
  merchant    a shop or transaction message (sell, shopkeeper, for sale, ...)
  worshipper  an altar message
  discoverer  gold, XP-level and kill gains, only when the depth did not change (leaving the level is bad)

Every skill penalises angering the god (the prompt's god clause). Only the current message of a
sample is read, as the reward model sees only that (plus the sign of the depth change).

`oracle_agreement` scores any labels against these rules; the annotate stage reports it in every
MaestroMotif metrics.json, a cheap check that an LLM's labels carry the skill's preference at all.
"""
from __future__ import annotations

import re
from typing import Mapping

import pandas as pd

from maestromotif.prompts import FIRST, SECOND, TIE, UNKNOWN

SHOP = re.compile(r"\bsell\b|\bsold\b|shopkeeper|for sale|\bbuy\b|bought|\byou owe\b|\bpay\b|"
                  r"\bgold pieces? for\b|\bwelcome to .*'s\b|\bcosts? \d+|\bquoted\b|\boffers? \d+", re.I)
ALTAR = re.compile(r"\baltar\b|\b(black|amber) flash\b", re.I)
KILL = re.compile(r"\byou (kill|destroy)\b", re.I)
ANGRY_GOD = re.compile(r"you feel that .+ is displeased|\bthunder\b|\bboom(s)? out\b|you feel guilty", re.I)


def sample_score(skill: str, side: Mapping, suffix: str = "") -> float:
    """How well one sample fits `skill` (higher is better)."""
    def g(name: str):
        return side[name + suffix]

    message = str(g("message"))
    depth_change = int(g("dlvl")) - int(g("dlvl_prev"))
    score = -10.0 if ANGRY_GOD.search(message) else 0.0
    if skill == "descender":
        return score + depth_change
    if skill == "ascender":
        return score - depth_change
    if skill == "merchant":
        return score + bool(SHOP.search(message))
    if skill == "worshipper":
        return score + bool(ALTAR.search(message))
    if skill == "discoverer":
        if depth_change != 0:
            return score - 1
        gains = (int(g("gold")) > int(g("gold_prev"))) + (int(g("xp")) > int(g("xp_prev")))
        return score + gains + bool(KILL.search(message))
    raise ValueError(f"the oracle has no rule for skill {skill!r}")


def oracle_label(skill: str, pair: Mapping) -> tuple[int, str]:
    """(label, explanation) for a pair row with fields suffixed _1 and _2."""
    s1, s2 = sample_score(skill, pair, "_1"), sample_score(skill, pair, "_2")
    label = FIRST if s1 > s2 else SECOND if s2 > s1 else TIE
    return label, f"oracle[{skill}]: score_1={s1:g} score_2={s2:g}"


def oracle_agreement(labels: pd.Series, pairs: pd.DataFrame, skill: str) -> dict:
    """How often `labels` (one per row of `pairs`, same order) agree with the rule oracle on the pairs
    where the oracle has a preference (chance: 0.5).

    n: pairs the oracle does not call a tie; accuracy: share of them labelled as the oracle does (a tie
    or unknown label counts as a miss); decided / accuracy_decided: the same among the pairs that got
    first or second.
    """
    if len(labels) != len(pairs):
        raise ValueError(f"oracle_agreement: {len(labels)} labels for {len(pairs)} pairs")
    oracle = pd.Series([oracle_label(skill, row)[0] for row in pairs.to_dict("records")], index=labels.index)
    given = labels.astype(int)
    strict = oracle != TIE
    decided = strict & given.isin([FIRST, SECOND])
    hits = given == oracle
    return {
        "n": int(strict.sum()),
        "accuracy": float(hits[strict].mean()) if strict.any() else None,
        "decided": int(decided.sum()),
        "accuracy_decided": float(hits[decided].mean()) if decided.any() else None,
        "oracle_histogram": {"first": int((oracle == FIRST).sum()), "second": int((oracle == SECOND).sum()),
                             "tie": int((oracle == TIE).sum())},
        "unknown": int((given[strict] == UNKNOWN).sum()),
    }
