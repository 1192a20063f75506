"""Every change this project makes to a third-party library, in one place, applied by `apply()`.

Nothing here runs at import. `apply()` is called where training starts in each process that needs it:
the sample-factory entry point (benchmark.appo.runner), every method's training env factory (rollout
workers), its encoder factory (learner and inference worker) and its deployment loader. It is idempotent,
so calling it once per process or once per env costs nothing. Targets: sample-factory 2.1.1, torch >= 2.6.
"""
from __future__ import annotations

import json
import logging
import os
import time

import numpy as np
import torch

_applied: set[str] = set()


def allow_checkpoint_globals() -> None:
    """torch >= 2.6 (here 2.13): torch.load defaults to weights_only=True, and sample-factory 2.1.1 calls
    it without the argument. Our checkpoints hold tensors, builtins and the numpy scalar types that
    numpy-typed counters pickle into; allow exactly those (no arbitrary code), so SF's own resume works."""
    if "checkpoint_globals" in _applied:
        return
    safe = [np.dtype, np.core.multiarray.scalar] if hasattr(np, "core") else [np.dtype]
    safe += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
    torch.serialization.add_safe_globals(safe)
    _applied.add("checkpoint_globals")


def fix_vtrace_summaries() -> None:
    """sample-factory 2.1.1 with with_vtrace=True: Learner._record_summaries reads mb.advantages, which
    only the GAE path fills, so the learner dies at its first summary (AttributeError). The V-trace
    advantages are in the same locals under `adv`; hand them over. Summaries only: the training math is
    untouched. A no-op for versions whose minibatch already has advantages."""
    from sample_factory.algo.learning.learner import Learner

    original = Learner._record_summaries
    if getattr(original, "_mm_fixed", False):
        return

    def record_summaries(self, train_loop_vars):
        mb = train_loop_vars.mb
        if "advantages" not in mb and "adv" in train_loop_vars:
            mb["advantages"] = train_loop_vars.adv
        return original(self, train_loop_vars)

    record_summaries._mm_fixed = True
    Learner._record_summaries = record_summaries


class ErrorFileHandler(logging.Handler):
    """sample-factory 2.1.1 / signal-slot only log an exception in a worker and then stall; this handler
    also appends it to the run's error file (one JSON line), which the watchdog (benchmark.appo.watchdog)
    reads to end the run with that error."""

    def __init__(self, path: str):
        super().__init__(level=logging.ERROR)
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        fatal = record.exc_info is not None or "heartbeat" in record.getMessage().lower()
        if not fatal:
            return
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(logging.Formatter().formatException(record.exc_info))
        write_error(self.path, record.name, text)


def write_error(path: str, source: str, text: str) -> None:
    line = json.dumps({"time": time.time(), "pid": os.getpid(), "logger": source, "error": text})
    try:
        with open(path, "a") as f:
            f.write(line + "\n")
    except OSError:
        pass


def install_error_reporter(path: str) -> None:
    for name in ("rl", "signal_slot"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, ErrorFileHandler) and h.path == path for h in logger.handlers):
            logger.addHandler(ErrorFileHandler(path))


def env_info_in_process() -> None:
    """sample-factory 2.1.1 spawns a fresh interpreter only to build one env and read its spaces
    (`obtain_env_info_in_a_separate_process`): ~2.5 s of imports per run, a quarter of a per-task
    baseline's start-up (docs/throughput.md, "Start-up"). A serial run builds its envs in this process
    anyway, so build that one here too. The global RNG states are put back afterwards, so the run's
    weights and actions are those of the spawned way. Only for serial runs: the runner calls it then."""
    import random

    from sample_factory.algo.runners import runner as sf_runner

    if getattr(sf_runner.obtain_env_info_in_a_separate_process, "_mm_in_process", False):
        return
    from sample_factory.algo.utils.env_info import extract_env_info
    from sample_factory.algo.utils.make_env import make_env_func_batched

    def obtain_env_info(cfg):
        states = random.getstate(), np.random.get_state(), torch.get_rng_state()
        env = make_env_func_batched(cfg, env_config=None)
        try:
            return extract_env_info(env, cfg)
        finally:
            env.close()
            random.setstate(states[0])
            np.random.set_state(states[1])
            torch.set_rng_state(states[2])

    obtain_env_info._mm_in_process = True
    sf_runner.obtain_env_info_in_a_separate_process = obtain_env_info


def apply(error_file: str = "") -> None:
    """Apply every patch (idempotent); with `error_file`, also report worker errors there."""
    allow_checkpoint_globals()
    fix_vtrace_summaries()
    if error_file:
        install_error_reporter(error_file)
