"""The real embedded model (SmolLM2-135M-Instruct on vLLM's CPU build), one engine per session."""
from __future__ import annotations

import logging

import pytest

from maestromotif.llm import BadInputError, Completion, PromptTooLongError, Sampling
from maestromotif.llm.vllm_engine import VLLMEngine

pytestmark = [pytest.mark.llm, pytest.mark.timeout(600)]

QUESTION = [{"role": "user", "content": "Name one monster in NetHack."}]
PREFILL = [
    {"role": "system", "content": "You are a helpful and honest judge of NetHack gameplay."},
    {"role": "user", "content": "Description 1: you found gold. Description 2: you fell into a pit. "
                                'Which is better? Answer ("best_description": 1) or '
                                '("best_description": 2).'},
    {"role": "assistant", "content": '("best_description": '},
]


def test_engine_records_model_and_dtype(embedded_engine):
    assert embedded_engine.model_id.startswith("SmolLM2-135M-Instruct@")
    assert embedded_engine.dtype in ("bfloat16", "float32")
    assert embedded_engine.tensor_parallel_size == 1
    info = embedded_engine.provenance()
    assert info["model_id"] == embedded_engine.model_id and info["dtype"] == embedded_engine.dtype
    assert info["device"] == "cpu" and info["engine"] == "vllm"


def test_generate_returns_one_completion_per_conversation(embedded_engine, caplog):
    with caplog.at_level(logging.INFO, logger="maestromotif.llm.base"):
        out = embedded_engine.generate([QUESTION, QUESTION, PREFILL], Sampling(max_tokens=8))
    assert len(out) == 3 and all(isinstance(c, Completion) for c in out)
    for c in out:
        assert c.model_id == embedded_engine.model_id
        assert 1 <= c.completion_tokens <= 8 and c.prompt_tokens > 5
        assert c.finish_reason in ("stop", "length") and c.text
    assert "tok/s" in caplog.text and "req/s" in caplog.text


def test_same_seed_same_batch_same_text(embedded_engine):
    # Per-request seeds make a repeated call reproducible. (Across different batch compositions bf16
    # kernels may round differently, so batched vs alone is not guaranteed to match token for token.)
    sampling = Sampling(temperature=1.0, max_tokens=6, seed=7)
    first = embedded_engine.generate([QUESTION, PREFILL], sampling)
    again = embedded_engine.generate([QUESTION, PREFILL], sampling)
    assert [c.text for c in first] == [c.text for c in again]


def test_prefill_continues_the_assistant_message(embedded_engine):
    text = embedded_engine.render(PREFILL)
    assert text.endswith('("best_description": ')  # no end-of-turn, no new assistant header
    plain = embedded_engine.render(QUESTION)
    assert plain.rstrip().endswith("assistant")  # a fresh reply starts after the generation prompt


def test_logprobs_of_the_next_token_after_a_prefill(embedded_engine):
    [c] = embedded_engine.generate([PREFILL], Sampling(temperature=0.0, max_tokens=1, logprobs=5))
    assert c.completion_tokens == 1 and c.top_logprobs is not None and len(c.top_logprobs) == 1
    step = c.top_logprobs[0]
    assert 5 <= len(step) <= 6 and all(v <= 0.0 for v in step.values())
    assert {"1", "2"} & set(step), f"the digits should be among the top tokens: {step}"


def test_empty_input_is_a_clear_error(embedded_engine):
    with pytest.raises(BadInputError, match="no conversations"):
        embedded_engine.generate([], Sampling())
    with pytest.raises(BadInputError, match="conversation 0, message 0"):
        embedded_engine.generate([[{"role": "robot", "content": "hi"}]], Sampling())


def test_too_long_prompt_errors_or_truncates(embedded_engine, caplog):
    long = [{"role": "system", "content": "You judge NetHack."},
            {"role": "user", "content": "gold " * 3000 + "Which is better?"}]
    with pytest.raises(PromptTooLongError, match="on_too_long=truncate"):
        embedded_engine.generate([long], Sampling(max_tokens=4))
    cfg = embedded_engine.config
    cfg.on_too_long = "truncate"
    try:
        with caplog.at_level(logging.WARNING):
            # generate() fits every prompt with this call; a large max_tokens leaves a small prompt budget,
            # so the test needs no 2k-token prefill.
            ids = embedded_engine.prompt_token_ids(long, max_tokens=cfg.max_model_len - 200)
    finally:
        cfg.on_too_long = "error"
    assert 150 <= len(ids) <= 200
    text = embedded_engine._tokenizer.decode(ids)
    assert "You judge NetHack." in text and "Which is better?" in text and "[...]" in text  # both ends kept
    assert "truncated a prompt" in caplog.text


def test_engine_is_the_shared_vllm_code_path(embedded_engine):
    assert isinstance(embedded_engine, VLLMEngine)


def test_seeded_batch_larger_than_one_prefill_step(embedded_engine):
    """vLLM's CPU sampler crashed ("CPU Generator does not use offset") when a seeded request's prompt was
    split over two prefill steps; the engine prefills whole prompts only. 6 x ~1,800 tokens > one step."""
    words = "the gnome hits the dwarf with a pick-axe and the dwarf dies while the monk watches".split()
    convs = [[{"role": "user", "content": " ".join(words[(i + j) % len(words)] for j in range(1450))}]
             for i in range(6)]
    out = embedded_engine.generate(convs, Sampling(temperature=0.7, max_tokens=4, seed=0))
    assert sum(c.prompt_tokens for c in out) > 8192
    assert [c.completion_tokens for c in out] == [4] * 6
