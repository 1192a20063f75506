"""The one LLM interface every stage uses: conversations in, completions with token counts out.

Engines (vLLM in process, OpenAI-compatible HTTP) differ only in how they reach a model; callers
build `Conversation`s, pick a `Sampling`, and record `Completion.model_id` with their outputs.
If a conversation ends with an assistant message, the engine continues that message (prefill),
e.g. to read the next-token log-probs after '("best_description": '.
"""
from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Optional

log = logging.getLogger(__name__)

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": str}
Conversation = list[Message]
ROLES = ("system", "user", "assistant")
ENGINES = ("vllm", "openai")
ON_TOO_LONG = ("error", "truncate")


class LLMError(RuntimeError):
    """Anything that stops an engine from answering; the message says what and how to fix it."""


class BadInputError(LLMError, ValueError):
    """The caller passed something an engine cannot answer (empty list, malformed message, ...)."""


class PromptTooLongError(BadInputError):
    """A prompt does not fit the context window (set on_too_long=truncate, or raise max_model_len)."""


class ModelNotFoundError(LLMError):
    """The model, or the package that ships or loads it, is missing."""


class EngineConfigError(LLMError, ValueError):
    """The LLM config is invalid."""


class ServerError(LLMError):
    """An HTTP endpoint is unreachable, timed out, or answered something unusable."""


class RequestRejectedError(BadInputError, ServerError):
    """An endpoint refused this one request (an HTTP 4xx other than auth or rate limits): the request is at
    fault, not the endpoint, so the other requests of a batch can still be answered."""


# Failures that belong to one request, not to the engine: `generate_each` returns them in their slot.
REQUEST_ERRORS = (BadInputError,)


@dataclass
class Sampling:
    """Sampling settings; the defaults are the paper's annotator sampling (docs/method.md §3.4)."""

    temperature: float = 0.1
    top_k: int = 50
    top_p: float = 0.95
    max_tokens: int = 256
    seed: Optional[int] = None  # None: the engine's configured seed
    logprobs: Optional[int] = None  # top-N alternatives per generated token
    stop: Optional[list[str]] = None


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length" | ...
    model_id: str
    top_logprobs: Optional[list[dict[str, float]]] = None  # per generated token: {token_text: logprob}


@dataclass
class LLMConfig:
    """Schema of conf/llm/*.yaml (unknown keys are errors)."""

    engine: str = "vllm"  # "vllm" (in process) | "openai" (HTTP, OpenAI-compatible)
    model: str = "embedded"  # "embedded" = packaged SmolLM2-135M-Instruct, or an HF id / local dir
    dtype: str = "auto"  # auto: bf16 where the CPU/GPU supports it, else float32 (CPU) / float16 (GPU)
    max_model_len: int = 2048
    tensor_parallel_size: str = "auto"  # "auto" = all visible GPUs (1 on CPU), or a number
    enable_prefix_caching: bool = True
    enforce_eager: bool = True  # CUDA graphs/compilation cost minutes to set up; set false for long GPU runs
    gpu_memory_utilization: float = 0.9
    cpu_kvcache_gb: float = 2.0  # VLLM_CPU_KVCACHE_SPACE for the CPU build
    max_num_seqs: int = 256
    base_url: Optional[str] = None  # openai engine: e.g. http://127.0.0.1:8000/v1
    api_key_env: Optional[str] = None  # name of the env var holding the API key (never the key itself)
    max_concurrency: int = 8  # openai engine: requests in flight
    timeout_s: float = 120.0  # openai engine: per request
    max_retries: int = 3  # openai engine: retries after the first try, with exponential backoff
    on_too_long: str = "error"  # "error" | "truncate" (with a warning)
    seed: int = 0
    temperature: float = 0.1
    top_k: int = 50
    top_p: float = 0.95
    max_tokens: int = 256

    def validate(self) -> "LLMConfig":
        if self.engine not in ENGINES:
            raise EngineConfigError(f"llm.engine={self.engine!r}: choose one of {', '.join(ENGINES)}")
        if self.on_too_long not in ON_TOO_LONG:
            raise EngineConfigError(f"llm.on_too_long={self.on_too_long!r}: choose one of "
                                    f"{', '.join(ON_TOO_LONG)}")
        if str(self.tensor_parallel_size) != "auto" and not str(self.tensor_parallel_size).isdigit():
            raise EngineConfigError(f"llm.tensor_parallel_size={self.tensor_parallel_size!r}: use 'auto' or "
                                    "a number")
        if self.engine == "openai" and not self.base_url:
            raise EngineConfigError("llm.engine=openai needs llm.base_url (e.g. http://127.0.0.1:8000/v1)")
        for key in ("max_model_len", "max_concurrency", "max_tokens", "max_num_seqs"):
            if getattr(self, key) < 1:
                raise EngineConfigError(f"llm.{key}={getattr(self, key)} must be >= 1")
        if self.max_retries < 0 or self.timeout_s <= 0:
            raise EngineConfigError("llm.max_retries must be >= 0 and llm.timeout_s > 0")
        return self

    def sampling(self, **overrides) -> Sampling:
        """The configured default sampling (paper values; max_tokens and seed from the config)."""
        values = dict(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
                      max_tokens=self.max_tokens, seed=self.seed)
        values.update(overrides)
        return Sampling(**values)


def validate_conversations(conversations: list[Conversation]) -> None:
    if not isinstance(conversations, (list, tuple)) or not conversations:
        raise BadInputError("generate() got no conversations: pass a non-empty list of conversations "
                            "(each a list of {'role', 'content'} messages)")
    for i, conv in enumerate(conversations):
        if not isinstance(conv, (list, tuple)) or not conv:
            raise BadInputError(f"conversation {i} is empty or not a list of messages: {conv!r:.200}")
        for j, msg in enumerate(conv):
            if (not isinstance(msg, dict) or msg.get("role") not in ROLES
                    or not isinstance(msg.get("content"), str)):
                raise BadInputError(f"conversation {i}, message {j} must be {{'role': one of {ROLES}, "
                                    f"'content': str}}, got {msg!r:.200}")


def ends_with_prefill(conv: Conversation) -> bool:
    """An assistant message last means: continue it rather than start a new reply."""
    return conv[-1]["role"] == "assistant"


class Engine(ABC):
    """A loaded model behind one call. Use as a context manager; close() frees the model."""

    model_id: str
    config: LLMConfig

    def provenance(self) -> dict:
        """What to record next to outputs: model id, engine, and how it ran (dtype, device, ...)."""
        info = {"model_id": self.model_id, "engine": self.config.engine, "model": self.config.model,
                "max_model_len": self.config.max_model_len, "seed": self.config.seed}
        for key in ("dtype", "device", "tensor_parallel_size", "base_url"):
            if hasattr(self, key):
                info[key] = getattr(self, key)
        return info

    def default_sampling(self, **overrides) -> Sampling:
        return self.config.sampling(**overrides)

    def generate(self, conversations: list[Conversation],
                 sampling: Optional[Sampling] = None) -> list[Completion]:
        """One completion per conversation, in order. Logs tokens/s and requests/s."""
        return self._timed(self._generate, conversations, sampling)  # type: ignore[return-value]

    def _timed(self, run, conversations: list[Conversation], sampling: Optional[Sampling]) -> list:
        """Validate, set the seed, run `run(conversations, sampling)` and log its throughput."""
        validate_conversations(conversations)
        sampling = sampling or self.default_sampling()
        if sampling.seed is None:
            sampling = Sampling(**{**sampling.__dict__, "seed": self.config.seed})
        start = time.perf_counter()
        results = run(list(conversations), sampling)
        seconds = max(time.perf_counter() - start, 1e-9)
        completions = [c for c in results if isinstance(c, Completion)]
        generated = sum(c.completion_tokens for c in completions)
        prompted = sum(c.prompt_tokens for c in completions)
        failed = len(results) - len(completions)
        log.info("%s: %d requests%s, %d prompt + %d generated tokens in %.2f s: %.1f tok/s generated, "
                 "%.2f req/s", self.model_id, len(results), f" ({failed} refused)" if failed else "",
                 prompted, generated, seconds, generated / seconds, len(results) / seconds)
        self.last_stats = {"requests": len(results), "prompt_tokens": prompted,
                           "completion_tokens": generated, "seconds": seconds, "refused": failed}
        return results

    def generate_each(self, conversations: list[Conversation],
                      sampling: Optional[Sampling] = None) -> list[Completion | LLMError]:
        """Like `generate`, but a request the engine refuses on its own (REQUEST_ERRORS: too long, rejected)
        comes back as its exception in its slot while the others are answered. Failures of the engine itself
        (unreachable server, crashed model) still raise. This default isolates bad requests by halving the
        batch; engines that can tell which request failed override it."""
        if not conversations:
            return []
        try:
            return list(self.generate(conversations, sampling))
        except REQUEST_ERRORS as e:
            if len(conversations) == 1:
                return [e]
            mid = len(conversations) // 2
            return (self.generate_each(conversations[:mid], sampling)
                    + self.generate_each(conversations[mid:], sampling))

    def count_tokens(self, conv: Conversation) -> Optional[int]:
        """Prompt tokens of `conv` under the model's chat template, or None where the engine cannot count
        locally (an HTTP endpoint): callers then budget from the token counts of earlier completions."""
        return None

    @abstractmethod
    def _generate(self, conversations: list[Conversation], sampling: Sampling) -> list[Completion]:
        """Engine-specific generation; input already validated, sampling.seed set."""

    def forget_cached_prompts(self) -> None:  # noqa: B027 - engines without a prompt cache need nothing
        """Drop what the engine cached from earlier prompts, so that the next calls depend on their own
        prompts only. vLLM's prefix cache: on a bf16 CPU (an Intel Xeon with AMX) a prompt read from the
        cache and the same prompt computed afresh gave log-probs 0.006 apart and flipped 4 of 16 labels
        (tests/integration/test_annotate.py redoes a lost chunk and compares)."""

    def close(self) -> None:  # noqa: B027 - engines without resources need nothing here
        pass

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
