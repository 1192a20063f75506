"""LLM engines: one interface (`Engine.generate(conversations, sampling)`) over vLLM in process and
OpenAI-compatible HTTP endpoints. `make_engine(cfg)` builds the one a conf/llm/*.yaml names."""
from __future__ import annotations

from typing import Any, Mapping

from maestromotif.llm.base import (
    REQUEST_ERRORS,
    BadInputError,
    Completion,
    Conversation,
    Engine,
    EngineConfigError,
    LLMConfig,
    LLMError,
    Message,
    ModelNotFoundError,
    PromptTooLongError,
    RequestRejectedError,
    Sampling,
    ServerError,
)

__all__ = [
    "BadInputError", "Completion", "Conversation", "Engine", "EngineConfigError", "LLMConfig", "LLMError",
    "Message", "ModelNotFoundError", "PromptTooLongError", "REQUEST_ERRORS", "RequestRejectedError",
    "Sampling", "ServerError", "load_config", "make_engine",
]


def load_config(cfg: LLMConfig | Mapping[str, Any] | Any) -> LLMConfig:
    """An `LLMConfig` from a dataclass, a dict or an OmegaConf node; unknown keys are errors."""
    if isinstance(cfg, LLMConfig):
        return cfg.validate()
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        merged = OmegaConf.merge(OmegaConf.structured(LLMConfig), cfg)
        config = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise EngineConfigError(f"bad LLM config (schema: maestromotif.llm.LLMConfig, conf/llm/*.yaml): "
                                f"{e}") from e
    return config.validate()  # type: ignore[union-attr]


def make_engine(cfg: LLMConfig | Mapping[str, Any] | Any) -> Engine:
    """The engine a config names: "vllm" (in process, CPU or GPU build) or "openai" (HTTP endpoint)."""
    config = load_config(cfg)
    if config.engine == "vllm":
        from maestromotif.llm.vllm_engine import VLLMEngine

        return VLLMEngine(config)
    from maestromotif.llm.openai_engine import OpenAIEngine

    return OpenAIEngine(config)
