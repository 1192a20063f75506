"""OpenAI-compatible HTTP engine: a `vllm serve` server (see maestromotif.llm.server) or any hosted endpoint.

Requests run on a bounded thread pool (max_concurrency); each is retried with exponential backoff on
connection errors, timeouts, 429 and 5xx, and on answers that are not chat completions. Every failure
ends in an LLMError subclass naming the URL and the cause; nothing waits longer than
timeout_s x (max_retries + 1) plus the backoff.
"""
from __future__ import annotations

import logging
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional

from maestromotif.llm.base import (
    REQUEST_ERRORS,
    Completion,
    Conversation,
    Engine,
    EngineConfigError,
    LLMConfig,
    LLMError,
    ModelNotFoundError,
    PromptTooLongError,
    RequestRejectedError,
    Sampling,
    ServerError,
    ends_with_prefill,
)

log = logging.getLogger(__name__)
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
CONTEXT_ERROR_HINTS = ("maximum context length", "context length", "too long", "max_model_len",
                       "maximum input length", "context_length_exceeded")
PREFILL_PARAMS = ("continue_final_message", "add_generation_prompt")


def backoff_delay(attempt: int, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_CAP_S,
                  rng: Optional[random.Random] = None) -> float:
    """Seconds to wait before retry number `attempt` (0-based): base*2^attempt capped, times a jitter in
    [0.5, 1] so that threads that failed together do not retry together."""
    jitter = (rng or random).uniform(0.5, 1.0)
    return min(base * (2 ** attempt), cap) * jitter


class _Retryable(Exception):
    """A failure worth another try; `cause` is what to report if the tries run out."""

    def __init__(self, cause: str):
        super().__init__(cause)
        self.cause = cause


def _import_openai():
    try:
        import openai
    except ImportError as e:
        raise ModelNotFoundError(f"the openai engine needs the `openai` package: pip install openai "
                                 f"({e})") from e
    return openai


def embedded_served_name() -> str:
    """The name the server helper serves the embedded model under (its model id)."""
    from maestromotif.llm.models import EMBEDDED_NAME, _gguf_digest, embedded_gguf

    return f"{EMBEDDED_NAME}@{_gguf_digest(embedded_gguf())[:12]}"


class OpenAIEngine(Engine):
    """Chat completions over HTTP. `model` is the served model name; "embedded" means the packaged
    SmolLM2 as served by `maestromotif.llm.server`."""

    def __init__(self, cfg: LLMConfig, sleep: Callable[[float], None] = time.sleep):
        if not cfg.base_url:
            raise EngineConfigError("llm.engine=openai needs llm.base_url (e.g. http://127.0.0.1:8000/v1)")
        self.config = cfg
        self.base_url = cfg.base_url.rstrip("/")
        self._sleep = sleep
        openai = _import_openai()
        self._openai = openai
        api_key = "EMPTY"  # a local vLLM server accepts anything
        if cfg.api_key_env:
            api_key = os.environ.get(cfg.api_key_env, "")
            if not api_key:
                raise EngineConfigError(f"llm.api_key_env={cfg.api_key_env!r} but that environment variable "
                                        f"is empty or unset: export {cfg.api_key_env}=<your key for "
                                        f"{self.base_url}>")
        # Our own retry loop (below) handles every failure the same way; the client's is off.
        self._client = openai.OpenAI(base_url=self.base_url, api_key=api_key, timeout=cfg.timeout_s,
                                     max_retries=0)
        self.model_id = embedded_served_name() if cfg.model == "embedded" else cfg.model
        self.served_models = self._check_served_model()
        self.dtype = "server"  # decided by the server
        self._rng = random.Random(cfg.seed)
        log.info("OpenAI-compatible engine: %s at %s", self.model_id, self.base_url)

    # -- startup check: reachable, and serving the model ------------------------------------------------
    def _check_served_model(self) -> list[str]:
        def list_models():
            try:
                return [m.id for m in self._client.models.list().data]
            except self._openai.NotFoundError:
                return None  # endpoints without /models: skip the check
            except self._openai.APIStatusError as e:
                raise self._status_error(e, "GET /models") from e
            except (self._openai.APIConnectionError, self._openai.APITimeoutError) as e:
                raise _Retryable(f"cannot connect ({type(e).__name__}: {e.__cause__ or e})") from e
            except (self._openai.APIResponseValidationError, AttributeError, TypeError, ValueError) as e:
                raise _Retryable(f"GET /models answered something that is not a model list: {e}") from e

        served = self._with_retries(list_models, "GET /models")
        if served is None:
            log.warning("%s has no /models endpoint; cannot check that it serves %s", self.base_url,
                        self.model_id)
            return []
        if self.model_id not in served:
            raise ModelNotFoundError(f"the server at {self.base_url} does not serve {self.model_id!r}; it "
                                     f"serves {served}. Set llm.model to one of those")
        return served

    # -- one request ---------------------------------------------------------------------------------------
    def request_kwargs(self, conv: Conversation, s: Sampling) -> dict[str, Any]:
        """The chat.completions.create arguments for one conversation (vLLM extras in extra_body)."""
        extra: dict[str, Any] = {"top_k": s.top_k}
        if ends_with_prefill(conv):
            extra.update(add_generation_prompt=False, continue_final_message=True)
        if self.config.on_too_long == "truncate":
            extra["truncate_prompt_tokens"] = max(self.config.max_model_len - s.max_tokens, 1)
        kwargs: dict[str, Any] = dict(model=self.model_id, messages=conv, temperature=s.temperature,
                                      top_p=s.top_p, max_tokens=s.max_tokens, seed=s.seed, extra_body=extra)
        if s.stop:
            kwargs["stop"] = s.stop
        if s.logprobs is not None:
            kwargs.update(logprobs=True, top_logprobs=s.logprobs)
        return kwargs

    def _request(self, conv: Conversation, s: Sampling) -> Completion:
        kwargs = self.request_kwargs(conv, s)

        def attempt() -> Completion:
            try:
                response = self._client.chat.completions.create(**kwargs)
            except self._openai.APIStatusError as e:
                raise self._status_error(e, "POST /chat/completions", prefill=ends_with_prefill(conv)) from e
            except (self._openai.APIConnectionError, self._openai.APITimeoutError) as e:
                raise _Retryable(f"{type(e).__name__}: {e.__cause__ or e}") from e
            except self._openai.APIResponseValidationError as e:
                raise _Retryable(f"the answer is not a chat completion ({e})") from e
            return self._completion(response, s)

        return self._with_retries(attempt, "POST /chat/completions")

    def _completion(self, response: Any, s: Sampling) -> Completion:
        try:
            choice = response.choices[0]
            text = choice.message.content or ""
            usage = response.usage
            top = None
            if s.logprobs is not None:
                content = choice.logprobs.content if choice.logprobs is not None else None
                if content is None:
                    raise ValueError("logprobs were asked for but the answer has none")
                top = [{alt.token: alt.logprob for alt in tok.top_logprobs} or {tok.token: tok.logprob}
                       for tok in content]
            return Completion(text=text, prompt_tokens=int(usage.prompt_tokens) if usage else 0,
                              completion_tokens=int(usage.completion_tokens) if usage else 0,
                              finish_reason=choice.finish_reason or "stop", model_id=self.model_id,
                              top_logprobs=top)
        except (AttributeError, IndexError, TypeError, ValueError) as e:
            raise _Retryable(f"the answer is not a usable chat completion ({type(e).__name__}: {e}): "
                             f"{str(response)[:200]!r}") from e

    def _status_error(self, e: Any, what: str, prefill: bool = False) -> Exception:
        """Map an HTTP error status to a retry or to the LLMError a user can act on."""
        status = getattr(e, "status_code", None)
        body = str(getattr(e, "message", e))[:500]
        if status in (408, 409, 429) or (status is not None and status >= 500):
            return _Retryable(f"HTTP {status}: {body}")
        if status in (401, 403):
            hint = f"set {self.config.api_key_env}" if self.config.api_key_env else "set llm.api_key_env"
            return ServerError(f"{self.base_url} refused {what} (HTTP {status}: {body}); check the API key "
                               f"({hint})")
        lower = body.lower()
        if prefill and any(p in lower for p in PREFILL_PARAMS):
            return ServerError(f"the server at {self.base_url} rejects assistant prefill "
                               f"(continue_final_message): HTTP {status}: {body}. Use a vLLM server, or end "
                               "conversations with a user message")
        if any(h in lower for h in CONTEXT_ERROR_HINTS):
            return PromptTooLongError(f"the server at {self.base_url} says the prompt is too long (HTTP "
                                      f"{status}: {body}). Shorten it, lower max_tokens, or set "
                                      "llm.on_too_long=truncate")
        if status is not None and 400 <= status < 500 and status != 404:  # this request, not the server (404:
            # a wrong URL or model name, which every request would hit)
            return RequestRejectedError(f"{self.base_url} rejected {what} (HTTP {status}): {body}")
        return ServerError(f"{self.base_url} rejected {what} (HTTP {status}): {body}")

    def _with_retries(self, call: Callable[[], Any], what: str) -> Any:
        tries = self.config.max_retries + 1
        for attempt in range(tries):
            try:
                return call()
            except _Retryable as e:
                if attempt + 1 == tries:
                    raise ServerError(f"{what} to {self.base_url} failed after {tries} tries "
                                      f"(timeout {self.config.timeout_s:g} s each): {e.cause}") from e
                delay = backoff_delay(attempt, rng=getattr(self, "_rng", None))
                log.warning("%s to %s failed (%s); retry %d/%d in %.1f s", what, self.base_url, e.cause,
                            attempt + 1, tries - 1, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")

    # -- a batch -------------------------------------------------------------------------------------------
    def _generate(self, conversations: list[Conversation], sampling: Sampling) -> list[Completion]:
        return self._run_pool(conversations, sampling, keep_request_errors=False)

    def generate_each(self, conversations: list[Conversation],
                      sampling: Optional[Sampling] = None) -> list[Completion | LLMError]:
        """One pass over the batch: a request the server refused keeps its error in its slot (nothing is
        re-sent, unlike the base class's halving)."""
        if not conversations:
            return []
        def run(convs: list[Conversation], s: Sampling) -> list:
            return self._run_pool(convs, s, keep_request_errors=True)

        return self._timed(run, conversations, sampling)

    def _run_pool(self, conversations: list[Conversation], sampling: Sampling,
                  keep_request_errors: bool) -> list:
        from tqdm.auto import tqdm

        workers = min(self.config.max_concurrency, len(conversations))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm-http")
        try:
            futures = [pool.submit(self._request, c, sampling) for c in conversations]
            results: list = []
            for f in tqdm(futures, desc=f"LLM {self.model_id}", unit="req", disable=len(futures) < 64):
                try:
                    results.append(f.result())  # any other failure propagates; the rest are cancelled below
                except REQUEST_ERRORS as e:
                    if not keep_request_errors:
                        raise
                    results.append(e)
            return results
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()
            self._client = None


__all__ = ["OpenAIEngine", "backoff_delay"]
