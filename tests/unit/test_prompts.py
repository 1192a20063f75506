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
    assert ("Here is the preference that you should seek: the direction of progress is to explore by going down "
            "the dungeon.") in user
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
    ('first I said ("best_description": 1) but finally ("best_description": 2)', P.SECOND),
    ("I prefer the first one.", P.UNKNOWN),
    ("", P.UNKNOWN),
])
def test_parse_answer(text, label):
    assert P.parse_answer(text) == label


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
