"""Prompts are the paper's strings; the answer parser follows the paper's regex and label codes."""
import pytest

from benchmark.config import compose
from maestromotif import prompts as P


def test_maestromotif_prompt_has_system_modifier_god_clause_and_descriptions():
    msgs = P.maestromotif_messages("descender", "DESC-ONE", "DESC-TWO")
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[0]["content"].startswith("You are a helpful and honest judge of specific types of NetHack")
    user = msgs[1]["content"]
    assert user.startswith("I will present you with two short gameplay descriptions.\n")
    assert ("Here is the preference that you should seek: the direction of progress is to explore by going "
            "down the dungeon.") in user
    assert P.GOD_CLAUSE in user
    assert '{"description_1":\nDESC-ONE\n}\n\n{"description_2":\nDESC-TWO\n}' in user


def test_every_skill_has_a_modifier():
    assert set(P.SKILL_MODIFIERS) == set(P.SKILLS)
    with pytest.raises(ValueError, match="unknown skill"):
        P.maestromotif_messages("wizard", "a", "b")


@pytest.mark.parametrize("text, label", [
    ('... so ("best_description": 1)', P.FIRST),
    ('("best_description": 2)', P.SECOND),
    ('("best_description": None)', P.TIE),
    ("Best Description: none", P.TIE),
    ('"best_description" is 2', P.SECOND),
    ('first I said ("best_description": 1) but finally ("best_description": 2)', P.FIRST),  # the first counts
    ('("best\\_description": 2)', P.SECOND),  # markdown-escaped underscore
    ("**best\\_description**: None", P.TIE),
    ("I prefer the first one.", P.UNKNOWN),
    ("", P.UNKNOWN),
])
def test_parse_answer(text, label):
    assert P.parse_answer(text) == label


def test_parse_answer_first_or_last_declaration():
    text = ('Description 2 is better. ("best_description": 2)\n\nTo recap, I could have answered '
            '("best_description": 1) or ("best_description": None), but my answer is ("best\\_description": '
            '2).')
    assert P.parse_answer(text) == P.parse_answer(text, "first") == P.SECOND
    restated = 'So ("best_description": 1). You asked for ("best_description": 1), ("best_description": 2).'
    assert P.parse_answer(restated) == P.FIRST and P.parse_answer(restated, "last") == P.SECOND
    with pytest.raises(ValueError, match="first, last"):
        P.parse_answer(text, "middle")


def test_retry_prompt_and_direct_prefill():
    assert P.RETRY_PROMPT.startswith("So, which one is the best?")
    assert P.DIRECT_PREFILL == '("best_description": '
    assert P.parse_answer(P.DIRECT_PREFILL + "1)") == P.FIRST


def test_motif_goal_for_every_benchmark_task():
    tasks = list(compose("ci").tasks)
    assert set(tasks) <= set(P.MOTIF_TASK_GOALS)
    msgs = P.motif_messages(P.motif_goal("gnomish"), "You kill the newt!", "")
    assert "Mention the goal of NetHack. " + P.MOTIF_TASK_GOALS["gnomish"] in msgs[1]["content"]
    assert '"description_1":\n"You kill the newt!"' in msgs[1]["content"]
    with pytest.raises(ValueError, match="no Motif goal"):
        P.motif_goal("sokoban")


def test_prompt_hash_is_stable_and_specific():
    h = P.prompt_hash("maestromotif", "descender", "direct")
    assert h == P.prompt_hash("maestromotif", "descender", "direct") and len(h) == 16
    assert h != P.prompt_hash("maestromotif", "ascender", "direct")
    assert h != P.prompt_hash("maestromotif", "descender", "chain_of_thought")
    assert P.prompt_hash("motif", "gnomish", "direct") != P.prompt_hash("motif", "delphi", "direct")


# ---- direct mode read-outs (pure functions on hand-made top-N log-prob dicts) ------------------------
def top(one=None, two=None, none=None, **others):
    """A top-N dict as the engine returns it: token text -> log-prob (absent answers are left out)."""
    d = {"0": -4.0, "3": -5.0, "\n": -9.0, **others}
    d.update({k: v for k, v in (("1", one), ("2", two), (" None", none)) if v is not None})
    return d


def test_answer_logprobs_merges_tokenisations_of_one_answer():
    assert P.answer_logprobs({" 1": -0.5, "1": -0.7, "None": -3.0, " none": -2.0, "x": -0.1}) == \
        {"1": -0.5, "none": -2.0}
    assert P.answer_logprobs(None) == {}
    assert P.direct_label(top(one=-0.4, two=-1.5)) == (P.FIRST, {"1": -0.4, "2": -1.5})
    assert P.direct_label({"x": -0.1})[0] == P.UNKNOWN


def test_symmetrised_label_cancels_a_position_bias():
    # "1" is always ~1 nat likelier (position bias), but B wins when it comes first: label SECOND.
    label, info = P.symmetric_label(top(one=-0.5, two=-1.4), top(one=-0.3, two=-1.6), tau=0.05)
    assert label == P.SECOND
    assert info["margin_ab"] == pytest.approx(0.9) and info["margin_ba"] == pytest.approx(1.3)
    assert info["margin"] == pytest.approx(-0.4) and info["floored"] == [False, False]
    assert P.symmetric_label(top(one=-0.3, two=-1.6), top(one=-0.5, two=-1.4), tau=0.05)[0] == P.FIRST
    # an unbiased order-invariant answer is a tie: the model says "1" whatever comes first
    assert P.symmetric_label(top(one=-0.4, two=-1.5), top(one=-0.4, two=-1.5), tau=0.0)[0] == P.TIE


@pytest.mark.parametrize("margin, tau, label", [(0.3, 0.25, P.FIRST), (0.2, 0.25, P.TIE), (-0.2, 0.25, P.TIE),
                                                (-0.3, 0.25, P.SECOND), (1e-7, 0.0, P.FIRST)])
def test_symmetrised_label_threshold(margin, tau, label):
    assert P.symmetric_label(top(one=-1.0 + margin, two=-1.0), top(one=-1.0, two=-1.0), tau)[0] == label


def test_symmetrised_label_none_and_missing_answers():
    # "None" beats "1" and "2" in both orders: both descriptions undesirable, a tie
    assert P.symmetric_label(top(one=-2.0, two=-3.0, none=-0.5), top(one=-1.0, two=-3.0, none=-0.2),
                             0.0)[0] == P.TIE
    # ... in one order only: the margin decides
    assert P.symmetric_label(top(one=-2.0, two=-3.0, none=-0.5), top(one=-1.0, two=-3.0), 0.0)[0] == P.SECOND
    # "2" outside the top N: floored at the smallest listed log-prob (-9), and flagged
    label, info = P.symmetric_label(top(one=-1.0), top(one=-1.0, two=-2.0), 0.0)
    assert info["margin_ab"] == pytest.approx(8.0) and info["floored"] == [True, False] and label == P.FIRST
    # neither "1" nor "2" in one order: the model did not answer
    assert P.symmetric_label(top(), top(one=-1.0, two=-2.0), 0.0)[0] == P.UNKNOWN
