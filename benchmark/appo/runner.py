"""One sample-factory APPO run, as a child process of `benchmark.appo.trainer.train`.

    python -m benchmark.appo.runner --appo_env_module=<module> <sample-factory args> --appo_* ... <env args>

`--appo_env_module` names the method's env module (docs/design.md §4.6): its `register()` registers the
training env names and the encoder with sample-factory, and its `add_args(parser)` adds the flags its env
factory reads. The runner adds, through sample-factory's observer and message-handler hooks only:
  progress.jsonl   every few seconds: env steps, training iterations, frames/s (the watchdog's heartbeat)
  curve.jsonl      per name of `--appo_curve_names`: mean normalised reward r_hat per step and the fraction
                   of env steps spent under that name (the paper's Fig. 8b/c), from the
                   `skill_reward/<name>` and `skill_steps/<name>` episode_extra_stats that an intrinsic
                   reward wrapper writes at each episode end.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from benchmark.io import append_jsonl
from benchmark.logs import setup_logging

log = logging.getLogger(__name__)

ENV_MODULE_FLAG = "--appo_env_module="


def add_trainer_args(parser: argparse.ArgumentParser) -> None:
    """The shared trainer's settings, carried inside sample-factory's cfg to every process."""
    p = parser.add_argument
    p("--appo_env_module", default="", help="the method's env module (register(), add_args(parser))")
    p("--appo_error_file", default="", help="worker errors go here (one JSON line each) for the watchdog")
    p("--appo_root_seed", type=int, default=0, help="params root_seed, for the env factories' seeds")
    p("--appo_seed", type=int, default=0, help="the run's training seed, for the env factories' seeds")
    p("--appo_env_config", default="", help="benchmark.env.EnvConfig as JSON ('' = conf/env/default.yaml's)")
    p("--appo_run_dir", default="", help="where progress.jsonl and curve.jsonl go")
    p("--appo_report_every_sec", type=float, default=5.0)
    p("--appo_curve_names", default="", help="comma-separated names of the reward curves ('' = none)")
    p("--appo_curve_every_sec", type=float, default=30.0)
    p("--appo_reproducible", type=lambda v: str(v).lower() in ("1", "true", "yes"), default=False,
      help="one torch thread (with --serial_mode=True --async_rl=False: a reproducible run)")


def env_module(argv: list[str]):
    """The env module that `--appo_env_module=` names, imported."""
    names = [a[len(ENV_MODULE_FLAG):] for a in argv if a.startswith(ENV_MODULE_FLAG)]
    if not names or not names[-1]:
        raise SystemExit(f"benchmark.appo.runner needs {ENV_MODULE_FLAG}<module> (the method's env module)")
    return importlib.import_module(names[-1])


def parse_cfg(argv: list[str]):
    """sample-factory's cfg for `argv`, with the trainer's and the env module's flags."""
    from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args

    module = env_module(argv)
    module.register()
    parser, _ = parse_sf_args(argv)
    add_trainer_args(parser)
    module.add_args(parser)
    return parse_full_cfg(parser, argv)


class RewardCurves:
    """Accumulates per-name sums from episode ends; writes one row per name every `every` seconds."""

    def __init__(self, path: Path, names: list[str], every: float):
        self.path, self.names, self.every = path, names, every
        self.last = time.time()
        self._reset()

    def _reset(self):
        self.reward = {s: 0.0 for s in self.names}
        self.steps = {s: 0 for s in self.names}
        self.episodes = 0

    def on_episode(self, runner, msg, policy_id) -> None:
        extra = msg["episodic"].get("episode_extra_stats", {})
        if not any(k.startswith("skill_steps/") for k in extra):
            return
        self.episodes += 1
        for s in self.names:
            self.reward[s] += float(extra.get(f"skill_reward/{s}", 0.0))
            self.steps[s] += int(extra.get(f"skill_steps/{s}", 0))

    def maybe_write(self, env_steps: int, force: bool = False) -> None:
        if not force and time.time() - self.last < self.every:
            return
        self.last = time.time()
        total = sum(self.steps.values())
        if self.episodes == 0 or total == 0:
            return
        rows = [
            {
                "env_steps": env_steps,
                "skill": s,
                "mean_normalised_reward": self.reward[s] / self.steps[s] if self.steps[s] else None,
                "frequency": self.steps[s] / total,
                "skill_steps": self.steps[s],
                "episodes": self.episodes,
            }
            for s in self.names
        ]
        append_jsonl(self.path, rows)
        self._reset()


def make_observer(cfg, curves: RewardCurves, progress_path: Path):
    from sample_factory.algo.runners.runner import AlgoObserver

    class Progress(AlgoObserver):
        """Heartbeat for the watchdog and the frames/s log, after every training iteration."""

        def __init__(self):
            self.start_time = self.start_steps = None
            self.last = 0.0

        def _env_steps(self, runner) -> int:
            return int(sum(runner.env_steps.values())) if runner.env_steps else 0

        def on_training_step(self, runner, iteration: int) -> None:
            now, steps = time.time(), self._env_steps(runner)
            if self.start_time is None:  # frames/s counts from the first iteration: start-up excluded
                self.start_time, self.start_steps = now, steps
            curves.maybe_write(steps)
            if now - self.last < cfg.appo_report_every_sec:
                return
            self.last = now
            elapsed = now - self.start_time
            fps = (steps - self.start_steps) / elapsed if elapsed > 0 else 0.0
            append_jsonl(progress_path,
                         [{"time": now, "env_steps": steps, "iterations_since_resume": iteration,
                           "fps": fps, "steps_since_resume": steps - self.start_steps,
                           "seconds_since_first_iteration": elapsed}])

        def on_stop(self, runner) -> None:
            curves.maybe_write(self._env_steps(runner), force=True)

    return Progress()


def exit_with_parent(poll: float = 1.0) -> None:
    """If the supervisor dies (killed stage, Ctrl-C), take this whole process group down with it: a resumed
    stage must never find the previous run still training into the same folder."""
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(poll)
            if os.getppid() != parent:
                os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def run(argv: list[str]) -> int:
    from sample_factory.algo.utils.misc import ExperimentStatus
    from sample_factory.train import make_runner

    from benchmark.appo import patches

    exit_with_parent()
    cfg = parse_cfg(argv)
    patches.apply(cfg.appo_error_file)
    if cfg.serial_mode:
        patches.env_info_in_process()
    if cfg.appo_reproducible:
        import torch

        # Multi-threaded CPU kernels reduce in a load-dependent order: two threads gave different weights
        # after one update from the same batch and parameters; one thread gave identical runs under load.
        torch.set_num_threads(1)
    run_dir = Path(cfg.appo_run_dir or ".")
    names = [n for n in cfg.appo_curve_names.split(",") if n]
    curves = RewardCurves(run_dir / "curve.jsonl", names, cfg.appo_curve_every_sec)
    cfg, runner = make_runner(cfg)
    runner.register_observer(make_observer(cfg, curves, run_dir / "progress.jsonl"))
    if names:
        runner.register_episodic_stats_handler(curves.on_episode)
    status = runner.init()
    if status == ExperimentStatus.SUCCESS:
        status = runner.run()
    return 0 if status == ExperimentStatus.SUCCESS else 1


if __name__ == "__main__":
    setup_logging()
    sys.exit(run(sys.argv[1:]))
