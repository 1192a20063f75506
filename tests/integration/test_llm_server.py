"""The OpenAI-compatible engine against a real vLLM server of the embedded model on loopback."""
from __future__ import annotations

import pytest

from maestromotif.llm import PromptTooLongError, Sampling, ServerError, make_engine
from maestromotif.llm.server import VLLMServer

pytestmark = [pytest.mark.llm, pytest.mark.slow, pytest.mark.timeout(900)]
PREFILL = [
    {"role": "user",
     "content": 'Which is better, 1 or 2? Answer ("best_description": 1) or ("best_description": 2).'},
    {"role": "assistant", "content": '("best_description": '},
]


@pytest.fixture(scope="module")
def server_engine(embedded_server):
    with make_engine(embedded_server.engine_config(max_tokens=8, timeout_s=120, max_retries=1)) as engine:
        yield engine


def test_server_answers_with_counts_prefill_and_logprobs(server_engine, embedded_server):
    assert server_engine.model_id == embedded_server.model_id and "@" in server_engine.model_id
    question = [{"role": "user", "content": "Name one NetHack monster."}]
    plain, prefilled = server_engine.generate([question, PREFILL], Sampling(max_tokens=4, logprobs=3))
    for c in (plain, prefilled):
        assert c.model_id == embedded_server.model_id
        assert c.prompt_tokens > 5 and 1 <= c.completion_tokens <= 4
        assert c.top_logprobs and len(c.top_logprobs) == c.completion_tokens
    assert {"1", "2"} & set(prefilled.top_logprobs[0]), prefilled.top_logprobs[0]


def test_server_too_long_prompt_is_a_clear_error(server_engine):
    long = [{"role": "user", "content": "gold " * 3000}]
    with pytest.raises(PromptTooLongError, match="too long"):
        server_engine.generate([long], Sampling(max_tokens=4))


def test_embedded_name_resolves_to_the_served_model(embedded_server):
    with make_engine(embedded_server.engine_config(model="embedded")) as engine:
        assert engine.model_id == embedded_server.model_id


def test_stopped_server_is_a_clear_error_not_a_hang():
    server = VLLMServer("embedded")  # never started: nothing listens on its port
    with pytest.raises(ServerError, match=f"{server.base_url}.*cannot connect"):
        make_engine({"engine": "openai", "model": "x", "base_url": server.base_url, "max_retries": 1,
                     "timeout_s": 2})
