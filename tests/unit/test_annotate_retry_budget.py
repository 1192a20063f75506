"""The chain of thought's retry budget and per-pair failures, against FakeBudgetEngine: a fake engine with a
fake tokenizer (4 characters a token) that refuses, as the vLLM engine does, any request whose prompt plus
max_tokens exceeds its max_model_len. It runs the real Engine base class (generate, generate_each) and the
real annotate code; only the model is fake. The real-engine test is in tests/integration/test_annotate.py."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from benchmark.config import defaults
from maestromotif import annotate as A
from maestromotif import prompts as P
from maestromotif.llm import Completion, Engine, LLMConfig, LLMError, PromptTooLongError

CHARS_PER_TOKEN = 4
DECLARE = '("best_description": 2)'


def fake_tokens(conv: list[dict]) -> int:
    """The fake tokenizer: 4 characters a token plus 4 template tokens per message and 4 for the reply."""
    return sum(math.ceil(len(m["content"]) / CHARS_PER_TOKEN) + 4 for m in conv) + 4


class FakeBudgetEngine(Engine):
    """A fake: first turns answer `first_answer` (unparsable), retry turns declare 2. Records every retry
    conversation it answered; refuses what would not fit, like VLLMEngine.prompt_token_ids."""

    def __init__(self, max_model_len: int, first_answer: str, exact_count: bool = True):
        self.config = LLMConfig(max_model_len=max_model_len, max_tokens=16).validate()
        self.model_id = "fake-budget-engine"
        self.first_answer, self.exact_count = first_answer, exact_count
        self.retries_seen: list[list[dict]] = []
        self.calls = 0

    def count_tokens(self, conv):
        return fake_tokens(conv) if self.exact_count else None

    def _generate(self, conversations, sampling):
        self.calls += 1
        for conv in conversations:
            n = fake_tokens(conv)
            if n + sampling.max_tokens > self.config.max_model_len:
                raise PromptTooLongError(f"a prompt has {n} tokens; with max_tokens={sampling.max_tokens} it "
                                         f"does not fit max_model_len={self.config.max_model_len}")
        out = []
        for conv in conversations:
            retry = conv[-1]["content"] == P.RETRY_PROMPT
            if retry:
                self.retries_seen.append(conv)
            text = DECLARE if retry else self.first_answer
            out.append(Completion(text=text, prompt_tokens=fake_tokens(conv),
                                  completion_tokens=math.ceil(len(text) / CHARS_PER_TOKEN),
                                  finish_reason="stop", model_id=self.model_id))
        return out


def conv(description: str = "You see a staircase down.") -> list[dict]:
    return P.maestromotif_messages("descender", description, "You hear a door open.")


def cfg(**kw) -> A.AnnotateConfig:
    return defaults("annotate", A.AnnotateConfig, mode="chain_of_thought",
                    **{"max_tokens": 400, "retry_max_tokens": 400, **kw})


# A rambling, unparsable first answer of 400 tokens with recognisable ends.
ANSWER = "HEAD " + "the first description mentions stairs; " * 40 + "TAIL"


def test_the_retry_fits_the_window_by_cutting_the_middle_of_the_echoed_answer():
    """Old behaviour: the whole answer was echoed, the retry prompt overflowed, and the engine's refusal
    failed the chunk. Now the echo is cut so prompt + retry question + retry_max_tokens fit."""
    window = fake_tokens(conv()) + 400 + 40 + 400 - 200  # the full echo would be ~150 tokens too many
    engine = FakeBudgetEngine(window, ANSWER)
    [r] = A.annotate_chunk_llm(engine, [conv()], cfg(), seed=0)
    assert r["label"] == P.SECOND and r["retried"] and r["unknown_reason"] is None
    [sent] = engine.retries_seen
    assert fake_tokens(sent) + 400 <= window  # it fits, as sent
    echoed = sent[-2]["content"]
    assert echoed.startswith("HEAD ") and echoed.endswith("TAIL") and "characters cut to fit" in echoed
    assert r["retry_answer_cut"] == len(ANSWER) - (len(echoed)
                                                   - len(A.CUT_MARK.format(n=r["retry_answer_cut"])))
    assert r["retry_answer_cut"] > 0
    # with room to spare nothing is cut: the paper's protocol, unchanged
    roomy = FakeBudgetEngine(window + 1000, ANSWER)
    [r] = A.annotate_chunk_llm(roomy, [conv()], cfg(), seed=0)
    assert r["retry_answer_cut"] == 0 and roomy.retries_seen[0][-2]["content"] == ANSWER


def test_the_budget_without_a_local_tokenizer_is_estimated_from_the_first_turn():
    """HTTP engines cannot count: the first turn's token counts bound the retry, with a margin."""
    window = fake_tokens(conv()) + 400 + 40 + 400 - 200
    engine = FakeBudgetEngine(window, ANSWER, exact_count=False)
    [r] = A.annotate_chunk_llm(engine, [conv()], cfg(), seed=0)
    assert r["label"] == P.SECOND and r["retry_answer_cut"] > 0
    assert fake_tokens(engine.retries_seen[0]) + 400 <= window


def test_one_pair_too_long_for_the_window_is_unknown_and_the_chunk_completes():
    """Old behaviour: the engine's PromptTooLongError for one pair failed the whole chunk."""
    engine = FakeBudgetEngine(fake_tokens(conv()) + 400 + 400, ANSWER)
    convs = [conv(), conv(), conv("a very long message " * 400), conv(), conv()]
    results = A.annotate_chunk_llm(engine, convs, cfg(), seed=0)
    assert len(results) == 5
    bad = results[2]
    assert bad["label"] == P.UNKNOWN and bad["unknown_reason"] == A.REQUEST_FAILED
    assert "PromptTooLongError" in bad["error"] and bad["answer"] is None
    assert all(r["label"] == P.SECOND and r["unknown_reason"] is None for i, r in enumerate(results)
               if i != 2)
    frame = pd.DataFrame([{**r, "asked": True} for r in results])
    metrics = A.label_metrics(frame)
    assert metrics["unknown_reasons"][A.REQUEST_FAILED] == 1 and metrics["histogram"]["unknown"] == 1
    assert sum(metrics["unknown_reasons"].values()) == metrics["histogram"]["unknown"]


def test_a_retry_with_no_room_at_all_is_an_unknown_label_with_its_reason():
    """retry_max_tokens larger than the first turn's: the bare retry question no longer fits."""
    window = fake_tokens(conv()) + 100
    engine = FakeBudgetEngine(window, "no declaration here")
    results = A.annotate_chunk_llm(engine, [conv(), conv()], cfg(max_tokens=100, retry_max_tokens=200),
                                   seed=0)
    assert [r["unknown_reason"] for r in results] == [A.RETRY_DOES_NOT_FIT] * 2
    assert all(r["label"] == P.UNKNOWN and "retry_max_tokens=200" in r["error"] for r in results)
    assert engine.retries_seen == []
    metrics = A.label_metrics(pd.DataFrame([{**r, "asked": True} for r in results]))
    assert metrics["unknown_reasons"][A.RETRY_DOES_NOT_FIT] == 2


def test_an_engine_that_refuses_every_request_stops_the_stage():
    """A setting at fault (every prompt too long) must not pass as a chunk of unknown labels."""
    engine = FakeBudgetEngine(50, ANSWER)
    with pytest.raises(LLMError, match="refused all 3 requests"):
        A.annotate_chunk_llm(engine, [conv()] * 3, cfg(max_tokens=40), seed=0)


def test_direct_mode_also_isolates_a_refused_pair():
    engine = FakeBudgetEngine(fake_tokens(conv()) + 20, ANSWER)
    direct = defaults("annotate", A.AnnotateConfig, mode="direct")
    results = A.annotate_chunk_llm(engine, [conv(), conv("long " * 500)], direct, 0)
    assert results[1]["unknown_reason"] == A.REQUEST_FAILED and results[1]["label"] == P.UNKNOWN
    assert results[0]["unknown_reason"] in (None, A.NOT_IN_TOP_LOGPROBS)


@pytest.mark.parametrize("count", [fake_tokens, None])
def test_fit_retry_arithmetic(count):
    base = conv()
    answer_tokens = math.ceil(len(ANSWER) / CHARS_PER_TOKEN)
    full = fake_tokens(base + [{"role": "assistant", "content": ANSWER},
                               {"role": "user", "content": P.RETRY_PROMPT}])
    # without a tokenizer, the size is the first turn's counts plus a generous bound on the retry turn
    sized = full if count else fake_tokens(base) + answer_tokens + A.RETRY_TURN_TOKENS
    assert sized >= full
    least = (fake_tokens(base) + A.RETRY_TURN_TOKENS if count is None else full - answer_tokens) + 20
    for budget in (sized + 5, sized, sized - 1, full - 150, least):
        fitted, cut = A.fit_retry(base, ANSWER, fake_tokens(base), answer_tokens, budget, count)
        assert fitted is not None and fake_tokens(fitted) <= budget
        assert (cut == 0) == (budget >= sized)
    fitted, cut = A.fit_retry(base, ANSWER, fake_tokens(base), answer_tokens, fake_tokens(base) - 1, count)
    assert fitted is None and cut == 0


def test_the_paper_profile_window_holds_a_whole_retry_without_cutting():
    """The paper's protocol echoes the whole answer: prompt (~1k tokens; 2k allowed) + a 4096-token answer +
    the retry question + a 4096-token retry must fit Llama 3.1's configured window. Old: 8192 did not."""
    from benchmark.config import compose

    params = compose("paper", [])
    need = 2048 + params.annotate.max_tokens + A.RETRY_TURN_TOKENS + params.annotate.retry_max_tokens
    assert params.annotate.mode == "chain_of_thought"
    assert params.annotator_llm.max_model_len >= need
