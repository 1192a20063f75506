"""Reading conf/llm/*.yaml outside a composed params.yaml (tests, helpers, interactive use)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from maestromotif.llm import LLMConfig, load_config

CONF_LLM = Path(__file__).resolve().parents[2] / "conf" / "llm"


def llm_config(name: str = "embedded", **overrides: Any) -> LLMConfig:
    """conf/llm/<name>.yaml as a validated LLMConfig, with keyword overrides (e.g. max_tokens=8)."""
    from omegaconf import OmegaConf

    path = CONF_LLM / f"{name}.yaml"
    if not path.is_file():
        choices = ", ".join(sorted(p.stem for p in CONF_LLM.glob("*.yaml")))
        raise FileNotFoundError(f"no LLM config {path}; choose one of: {choices}")
    return load_config(OmegaConf.merge(OmegaConf.load(path), overrides))


def embedded_config(**overrides: Any) -> LLMConfig:
    return llm_config("embedded", **overrides)
