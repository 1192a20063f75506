"""Control flow of the OpenAI-compatible engine (retries, backoff, timeouts, bad answers, concurrency)
against FakeOpenAIServer, a scripted HTTP server on loopback. No model runs here: the real-server test
is tests/integration/test_llm_server.py."""
from __future__ import annotations

import json
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from maestromotif.llm import (
    BadInputError,
    EngineConfigError,
    LLMConfig,
    ModelNotFoundError,
    PromptTooLongError,
    Sampling,
    ServerError,
    make_engine,
)
from maestromotif.llm.openai_engine import OpenAIEngine, backoff_delay

pytestmark = pytest.mark.timeout(60)
MODEL = "fake-model"
USER = [{"role": "user", "content": "hi"}]
PREFILL = [{"role": "user", "content": "pick"}, {"role": "assistant", "content": '("best_description": '}]


def completion_body(text="ok", logprobs=False):
    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    if logprobs:
        choice["logprobs"] = {"content": [{"token": "1", "logprob": -0.1, "bytes": None, "top_logprobs": [
            {"token": "1", "logprob": -0.1, "bytes": None}, {"token": "2", "logprob": -2.5, "bytes": None}]}]}
    return {"id": "x", "object": "chat.completion", "created": 0, "model": MODEL, "choices": [choice],
            "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8}}


class FakeOpenAIServer:
    """A fake: /v1/models lists MODEL; each POST /v1/chat/completions takes the next scripted reply
    ((status, body), "echo" or "hang"), then repeats the last one. Records bodies and peak concurrency."""

    def __init__(self, script=None, delay_s=0.0):
        self.script = list(script or [(200, completion_body())])
        self.delay_s, self.bodies, self.in_flight, self.peak = delay_s, [], 0, 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, status, body):
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type",
                                 "application/json" if not isinstance(body, str) else "text/html")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0,
                                                              "owned_by": "fake"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.bodies.append(body)
                    reply = fake.script.pop(0) if len(fake.script) > 1 else fake.script[0]
                    fake.in_flight += 1
                    fake.peak = max(fake.peak, fake.in_flight)
                try:
                    if reply == "hang":
                        time.sleep(3.0)
                        return
                    time.sleep(fake.delay_s)
                    if reply == "echo":  # answer with the last message: shows which request got which answer
                        reply = (200, completion_body(body["messages"][-1]["content"]))
                finally:
                    with fake.lock:
                        fake.in_flight -= 1
                # answered once the answer leaves: the client may send its next request as soon as it has
                # read this one, so counting it until after the write saw one request too many
                self._send(*reply)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def engine_for(url, **overrides):
    sleeps = []
    values = dict(engine="openai", model=MODEL, base_url=url, timeout_s=1.0, max_retries=2)
    cfg = LLMConfig(**{**values, **overrides}).validate()
    return OpenAIEngine(cfg, sleep=sleeps.append), sleeps


def test_backoff_doubles_with_jitter_and_cap():
    rng = random.Random(0)
    for attempt in range(8):
        d = backoff_delay(attempt, base=0.5, cap=4.0, rng=rng)
        full = min(0.5 * 2 ** attempt, 4.0)
        assert 0.5 * full <= d <= full


def test_success_returns_completion_and_sends_paper_sampling():
    with FakeOpenAIServer() as server:
        engine, _ = engine_for(server.url)
        [c] = engine.generate([USER], Sampling())
        body = server.bodies[0]
    assert (c.text, c.prompt_tokens, c.completion_tokens, c.model_id) == ("ok", 7, 1, MODEL)
    assert (body["temperature"], body["top_p"], body["top_k"], body["max_tokens"]) == (0.1, 0.95, 50, 256)
    assert body["seed"] == 0  # the config's seed fills Sampling(seed=None)
    assert "continue_final_message" not in body


def test_prefill_is_sent_as_vllm_continue_final_message_and_logprobs_parsed():
    with FakeOpenAIServer([(200, completion_body("1", logprobs=True))]) as server:
        engine, _ = engine_for(server.url)
        [c] = engine.generate([PREFILL], Sampling(max_tokens=1, logprobs=2))
        body = server.bodies[0]
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert body["messages"][-1] == PREFILL[-1]
    assert body["logprobs"] is True and body["top_logprobs"] == 2
    assert c.top_logprobs == [{"1": -0.1, "2": -2.5}]


def test_server_errors_are_retried_with_backoff_then_succeed():
    script = [(500, {"error": "busy"}), (429, {"error": "slow down"}), (200, completion_body())]
    with FakeOpenAIServer(script) as server:
        engine, sleeps = engine_for(server.url)
        [c] = engine.generate([USER], Sampling())
    assert c.text == "ok" and len(server.bodies) == 3
    assert len(sleeps) == 2 and sleeps[0] <= 0.5 and sleeps[1] <= 1.0


def test_persistent_garbage_ends_in_a_clear_error_naming_the_url():
    with FakeOpenAIServer([(200, "<html>not an API</html>")]) as server:
        engine, sleeps = engine_for(server.url)
        with pytest.raises(ServerError, match=f"{server.url}.*3 tries.*not a usable chat completion"):
            engine.generate([USER], Sampling())
    assert len(server.bodies) == 3 and len(sleeps) == 2


def test_hanging_server_times_out_instead_of_hanging():
    with FakeOpenAIServer(["hang"]) as server:
        engine, _ = engine_for(server.url, max_retries=1, timeout_s=0.3)
        with pytest.raises(ServerError, match="2 tries.*Timeout"):
            engine.generate([USER], Sampling())


def test_unreachable_server_is_a_clear_error():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(ServerError, match=f"{url}.*cannot connect"):
        engine_for(url, max_retries=1)


def test_context_length_error_is_not_retried():
    reply = (400, {"error": {"message": "This model's maximum context length is 2048 tokens", "code": 400}})
    with FakeOpenAIServer([reply]) as server:
        engine, sleeps = engine_for(server.url)
        with pytest.raises(PromptTooLongError, match="on_too_long=truncate"):
            engine.generate([USER], Sampling())
    assert len(server.bodies) == 1 and sleeps == []


def test_server_rejecting_prefill_says_so():
    reply = (400, {"error": {"message": "Unrecognized request argument supplied: continue_final_message"}})
    with FakeOpenAIServer([reply]) as server:
        engine, _ = engine_for(server.url)
        with pytest.raises(ServerError, match="rejects assistant prefill"):
            engine.generate([PREFILL], Sampling())


def test_bad_key_and_unknown_model_and_bad_config():
    with FakeOpenAIServer([(401, {"error": {"message": "invalid key"}})]) as server:
        engine, _ = engine_for(server.url)
        with pytest.raises(ServerError, match="API key"):
            engine.generate([USER], Sampling())
        with pytest.raises(ModelNotFoundError, match="serves \\['fake-model'\\]"):
            OpenAIEngine(LLMConfig(engine="openai", model="other", base_url=server.url).validate())
    with pytest.raises(EngineConfigError, match="MM_TEST_UNSET_KEY"):
        make_engine({"engine": "openai", "model": MODEL, "base_url": "http://127.0.0.1:9/v1",
                     "api_key_env": "MM_TEST_UNSET_KEY"})
    with pytest.raises(EngineConfigError, match="base_url"):
        make_engine({"engine": "openai"})
    with pytest.raises(EngineConfigError, match="choose one of vllm, openai"):
        make_engine({"engine": "llamacpp"})
    with pytest.raises(EngineConfigError, match="bad LLM config"):
        make_engine({"engine": "vllm", "temprature": 0.3})


def test_concurrency_is_bounded_and_order_kept():
    with FakeOpenAIServer(["echo"], delay_s=0.2) as server:
        engine, _ = engine_for(server.url, max_concurrency=3)
        out = engine.generate([[{"role": "user", "content": str(i)}] for i in range(12)], Sampling())
    assert 2 <= server.peak <= 3  # parallel, but never more than max_concurrency in flight
    assert [c.text for c in out] == [str(i) for i in range(12)]  # answers in input order


def test_empty_input_is_rejected_before_any_request():
    with FakeOpenAIServer() as server:
        engine, _ = engine_for(server.url)
        with pytest.raises(BadInputError):
            engine.generate([], Sampling())
    assert server.bodies == []


def test_generate_each_keeps_a_rejected_request_in_its_slot_and_resends_nothing():
    """One request the server refuses (HTTP 400, too long) is that request's error; the others are answered,
    each sent once. Old behaviour: the first refusal raised and the batch's answers were lost."""
    too_long = (400, {"error": {"message": "This model's maximum context length is 2048 tokens"}})
    rejected = (400, {"error": {"message": "invalid request"}})
    script = [(200, completion_body("a")), too_long, (200, completion_body("c")), rejected,
              (200, completion_body("e"))]
    with FakeOpenAIServer(script) as server:
        engine, sleeps = engine_for(server.url, max_concurrency=1)  # one at a time: the script's order
        out = engine.generate_each([[{"role": "user", "content": str(i)}] for i in range(5)], Sampling())
    assert [o.text if not isinstance(o, Exception) else type(o).__name__ for o in out] == \
        ["a", "PromptTooLongError", "c", "RequestRejectedError", "e"]
    assert isinstance(out[3], ServerError) and isinstance(out[3], BadInputError)
    assert len(server.bodies) == 5 and sleeps == []


def test_generate_each_still_raises_when_the_server_itself_fails():
    with FakeOpenAIServer([(200, completion_body()), (200, "<html>down</html>")]) as server:
        engine, _ = engine_for(server.url, max_concurrency=1, max_retries=0)
        with pytest.raises(ServerError, match="not a usable chat completion"):
            engine.generate_each([USER, USER], Sampling())
