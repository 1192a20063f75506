"""Every annotation prompt, as data: MaestroMotif's per-skill preference prompt and Motif's goal prompt.

Strings are the papers' (MaestroMotif Prompts 1-3, App. A.1; Motif's rlaif/prompts.py), see
docs/method.md §2-§3 and §10.2. `prompt_hash` fingerprints everything that shapes a label, so
labels made with different prompts are never mixed silently.
"""
from __future__ import annotations

import json
import math
import re
from typing import Mapping

from maestromotif.skills import SKILLS


def check_skills(names) -> list[str]:
    """The params' `skills`, each one a skill this method has a prompt for (ConfigError otherwise). Checked
    here, by the stages that use them, since the benchmark layer knows no method's skills."""
    from benchmark.config import ConfigError, did_you_mean

    unknown = [s for s in names if s not in SKILLS]
    if unknown:
        raise ConfigError(f"params `skills` names unknown skill(s) {unknown}"
                          f"{did_you_mean(unknown[0], SKILLS)}; the skills are {list(SKILLS)}")
    return list(names)

# ---- MaestroMotif -----------------------------------------------------------------------------------
SYSTEM_PROMPT = (
    "You are a helpful and honest judge of specific types of NetHack gameplaying. Always answer as helpfully "
    "as possible, while being truthful.\n\nIf you don't know the answer to a question, please don't share "
    "false information."
)

SKILL_MODIFIERS = {
    "discoverer": "players that are adventurous but only within the same dungeon level, for example by "
                  "fighting monsters, finding gold pieces or scrolls; but do not drop them. Categorically "
                  "refuse going up and down dungeon levels.",
    "descender": "the direction of progress is to explore by going down the dungeon. It is urgent to do so, "
                 "strongly avoid staying on the same level or worse, going higher.",
    "ascender": "the direction of progress is only by going up a dungeon level successfully. Strongly "
                "dislike remaining on the same dungeon level, no matter the consequences.",
    "worshipper": "strongly encourage players that interact with the altar, primarily for identifying "
                  "whether items are cursed or blessed, rather than for praying to or pleasing their god.",
    "merchant": "prefer players that negotiate, sell and interact with shopkeepers. Be careful not to steal "
                "from stores.",
}

GOD_CLAUSE = ("Above everything else, categorically refuse to anger or displease your god, for example by "
              "causing them to thunder or boom out.")

USER_TEMPLATE = (
    "I will present you with two short gameplay descriptions.\n"
    "First, tell me about your knowledge of NetHack. Mention the goal of NetHack.\n"
    "Write an analysis describing the semantics of each description strictly using information from the "
    "descriptions and your knowledge of NetHack.\n"
    "Provide a comparative analysis based on first principles. Here is the preference that you should seek: "
    "{modifier} {god_clause}\n"
    "Finally, respond by explicitly declaring which description best fits your preference, writing either "
    '("best_description": 1), ("best_description": 2). If both contain undesirable events, say '
    '("best_description": None).\n'
    "\n"
    '{{"description_1":\n{description_1}\n}}\n'
    "\n"
    '{{"description_2":\n{description_2}\n}}'
)

RETRY_PROMPT = ('So, which one is the best? Please respond by saying ("best_description": 1), '
                '("best_description": 2), or ("best_description": None).')

# The paper's regex (App. A.1): best[_ ]description, punctuation, an optional word, then 1 | 2 | none;
# with the official code's optional backslashes before the underscore, so that the markdown-escaped
# "best\_description" models often write is read too.
ANSWER_REGEX = re.compile(r"(?i)\W*best\\*_*\s*description\W*(?:\s*:*\s*)?(?:\w+\s*)?(1|2|none)")
# Which declaration counts when an answer has several: the official annotators take the first match.
ANSWER_MATCHES = ("first", "last")

# Direct mode: the assistant turn is prefilled up to here and the next token is the answer.
DIRECT_PREFILL = '("best_description": '

# ---- Motif (baseline) -------------------------------------------------------------------------------
MOTIF_SYSTEM_PROMPT = (
    "You are a helpful and honest judge of good gameplaying and progress in the NetHack game. Always answer "
    "as helpfully as possible, while being truthful.\n\nIf you don't know the answer to a question, please "
    "don't share false information."
)
MOTIF_USER_TEMPLATE = (
    "I will present you with two short gameplay descriptions.\n"
    "First, tell me about your knowledge of NetHack. Mention the goal of NetHack. {goal}\n"
    "Then, write an analysis describing the semantics of each description strictly using information from "
    "the descriptions (which may be empty) and your knowledge of NetHack.\n"
    "Provide a comparative analysis based on first princicples.\n"  # sic: Motif's spelling
    "Finally, respond by explicitly declaring which one is the most likely to make some progress towards the "
    'goal, writing either ("best_description": 1), ("best_description": 2). You could also say '
    '("best_description": None).\n'
    "\n"
    '{{\n"description_1":\n"{description_1}"\n}}\n'
    "\n"
    '{{\n"description_2":\n"{description_2}"\n}}'
)
MOTIF_DEFAULT_GOAL = ("Prefer agents that maximize the score in the game, for instance by killing monsters, "
                      "collecting gold or going down the stairs in the dungeon.")

# Goal strings for the Motif baseline, one per benchmark task, written from the task descriptions
# (docs/method.md §9.2); the papers do not publish the ones they used.
MOTIF_TASK_GOALS = {
    "gnomish": "Prefer agents that find the Gnomish Mines, the branch of the dungeon reached by a second "
               "staircase down on one of the first levels, and go down into it.",
    "delphi": "Prefer agents that go down the main dungeon, the Dungeons of Doom, to reach the Oracle of "
              "Delphi's level, but never prefer agents that enter the Gnomish Mines.",
    "minetown": "Prefer agents that find the Gnomish Mines and go down inside them until they reach "
                "Minetown, the town with shops and a temple.",
    "transactions": "Prefer agents that complete transactions with shopkeepers, for instance by selling "
                    "their items to a shopkeeper for gold, and never steal from shops.",
    "price": "Prefer agents that learn the prices of their items by offering them for sale to shopkeepers, "
             "which identifies what the items are.",
    "buc": "Prefer agents that find an altar and drop their items on it to learn whether they are blessed, "
           "uncursed or cursed.",
    "goldenexit": "Prefer agents that collect gold pieces and then climb back up the stairs of the first "
                  "level to leave the dungeon with the gold.",
    "levelupsell": "Prefer agents that fight monsters to gain experience levels while staying on the first "
                   "levels, and then sell items to a shopkeeper.",
    "discoveryhunger": "Prefer agents that explore the Gnomish Mines, fight monsters and collect items, eat "
                       "when they become hungry, and then go back to the main dungeon to reach the Oracle.",
}


def maestromotif_messages(skill: str, description_1: str, description_2: str) -> list[dict]:
    """The chat for one pair (system + user), as the paper sends it."""
    if skill not in SKILL_MODIFIERS:
        raise ValueError(f"unknown skill {skill!r}; choose one of {', '.join(SKILLS)}")
    user = USER_TEMPLATE.format(modifier=SKILL_MODIFIERS[skill], god_clause=GOD_CLAUSE,
                                description_1=description_1, description_2=description_2)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def motif_messages(goal: str, description_1: str, description_2: str) -> list[dict]:
    user = MOTIF_USER_TEMPLATE.format(goal=goal, description_1=description_1, description_2=description_2)
    return [{"role": "system", "content": MOTIF_SYSTEM_PROMPT}, {"role": "user", "content": user}]


def motif_goal(task: str | None) -> str:
    if task is None:
        return MOTIF_DEFAULT_GOAL
    from benchmark.variants import VARIANTS

    task = VARIANTS[task].base_task if task in VARIANTS else task  # a small variant keeps its task's goal
    if task not in MOTIF_TASK_GOALS:
        raise ValueError(f"no Motif goal string for task {task!r}; known: {', '.join(MOTIF_TASK_GOALS)}")
    return MOTIF_TASK_GOALS[task]


# Labels (Motif's AnnotationIdx): what the reward model trains on.
FIRST, SECOND, TIE, UNKNOWN = 0, 1, 2, 3
LABEL_NAMES = {FIRST: "first", SECOND: "second", TIE: "tie", UNKNOWN: "unknown"}
ANSWER_TO_LABEL = {"1": FIRST, "2": SECOND, "none": TIE}


def parse_answer(text: str, match: str = "first") -> int:
    """The label declared in an answer, or UNKNOWN.

    match: "first" (the official annotators: the first declaration counts, e.g. when the model goes on
    to restate the instructions) or "last" (the final declaration counts).
    """
    if match not in ANSWER_MATCHES:
        raise ValueError(f"answer match {match!r}: choose one of {', '.join(ANSWER_MATCHES)}")
    matches = ANSWER_REGEX.findall(text or "")
    if not matches:
        return UNKNOWN
    return ANSWER_TO_LABEL[matches[0 if match == "first" else -1].lower()]


# ---- direct mode: the answer read from next-token log-probs -------------------------------------------
def answer_logprobs(top: Mapping[str, float] | None) -> dict[str, float]:
    """The log-probs of the answers "1" / "2" / "none" among one step's top-N next tokens.

    Tokenisations of the same answer (" 1", "1", "None", " none") count as that answer; the best wins.
    Answers outside the top N are absent.
    """
    best: dict[str, float] = {}
    for token, logprob in (top or {}).items():
        word = token.strip().lower()
        if word in ANSWER_TO_LABEL and logprob > best.get(word, -math.inf):
            best[word] = float(logprob)
    return best


def direct_label(top: Mapping[str, float] | None) -> tuple[int, dict[str, float]]:
    """One order: the argmax over "1" / "2" / "None" (UNKNOWN when none of them is in the top N)."""
    best = answer_logprobs(top)
    if not best:
        return UNKNOWN, best
    return ANSWER_TO_LABEL[max(best, key=best.get)], best


def one_vs_two(top: Mapping[str, float] | None) -> tuple[float | None, bool, bool]:
    """(log p("1") - log p("2"), whether a missing answer was floored, whether "None" beats both).

    An answer missing from the top N gets the smallest top-N log-prob, an upper bound of its own, so
    the difference is conservative. None when neither "1" nor "2" is in the top N.
    """
    best = answer_logprobs(top)
    if "1" not in best and "2" not in best:
        return None, False, "none" in best
    floor = min(top.values()) if top else -math.inf
    lp1, lp2 = best.get("1", floor), best.get("2", floor)
    none_wins = best.get("none", -math.inf) > max(lp1, lp2)
    return lp1 - lp2, ("1" not in best) or ("2" not in best), none_wins


def symmetric_label(top_ab: Mapping[str, float] | None, top_ba: Mapping[str, float] | None,
                    tau: float) -> tuple[int, dict]:
    """The label of a pair asked in both orders, (A, B) and (B, A), with any position bias cancelled.

    margin = [log p(1) - log p(2)](A, B) - [log p(1) - log p(2)](B, A): a bias towards "1" (or "2")
    adds the same amount to both terms and cancels; a real preference for A counts twice. FIRST (A) when
    margin > tau, SECOND (B) when margin < -tau, TIE otherwise, and TIE when "None" beats "1" and "2"
    in both orders (both descriptions undesirable). UNKNOWN when an order has neither "1" nor "2" in
    its top N (the model did not answer the question).
    """
    d_ab, floored_ab, none_ab = one_vs_two(top_ab)
    d_ba, floored_ba, none_ba = one_vs_two(top_ba)
    info = {"margin": None, "margin_ab": d_ab, "margin_ba": d_ba, "none_wins": [none_ab, none_ba],
            "floored": [floored_ab, floored_ba]}
    if none_ab and none_ba:
        if d_ab is not None and d_ba is not None:
            info["margin"] = d_ab - d_ba
        return TIE, info
    if d_ab is None or d_ba is None:
        return UNKNOWN, info
    margin = d_ab - d_ba
    info["margin"] = margin
    return (FIRST if margin > tau else SECOND if margin < -tau else TIE), info


def prompt_hash(variant: str, key: str, mode: str) -> str:
    """sha256 prefix of every string that shapes a label for (variant, skill-or-task, mode)."""
    if variant == "maestromotif":
        parts = [SYSTEM_PROMPT, USER_TEMPLATE, SKILL_MODIFIERS[key], GOD_CLAUSE, RETRY_PROMPT]
    else:
        parts = [MOTIF_SYSTEM_PROMPT, MOTIF_USER_TEMPLATE, motif_goal(key), RETRY_PROMPT]
    parts += [ANSWER_REGEX.pattern, mode, DIRECT_PREFILL if mode == "direct" else ""]
    from benchmark.provenance import sha256_hex

    return sha256_hex(json.dumps(parts))
