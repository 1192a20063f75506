"""One sample-factory APPO run, as a child process of the train_skills stage (maestromotif.rl.train).

It adds to sample-factory, through its observer and message-handler hooks only:
  progress.jsonl   every few seconds: env steps, training iterations, frames/s (the watchdog's heartbeat)
  curve.jsonl      per skill, over env steps: mean normalised reward r_hat per step and the fraction of
                   env steps the skill was active (the paper's Fig. 8b/c), from the episode_extra_stats
                   that IntrinsicRewardWrapper writes at each episode end.

Usage (the train stage builds this command): python -m maestromotif.rl.sf_run <sample-factory args> --mm_* ...
"""
from __future__ import annotations

import argparse
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


def add_mm_args(parser: argparse.ArgumentParser) -> None:
    """Our settings, carried inside sample-factory's cfg to the env factory in every worker."""
    p = parser.add_argument
    p("--mm_intrinsic", default="",
      help="the params' reward.intrinsic block as JSON ('' = conf/reward/default.yaml's)")
    p("--mm_error_file", default="", help="worker errors go here (one JSON line each) for the watchdog")
    p("--mm_root_seed", type=int, default=0)
    p("--mm_seed", type=int, default=0, help="skill-training seed (data/fit/maestromotif/seed<k>)")
    p("--mm_program", default="training",
      help="policy over skills, or 'isolated' (ablation), or 'skill_starts' (each env holds one skill), "
      "or 'skills_crossed' (every skill on every start)")
    p("--mm_held_steps", type=int, default=1000, help="skill_starts: steps per episode of a held skill")
    p("--mm_codegen_dir", default="", help="codegen outputs: <dir>/<program>/seed<k>/program.py")
    p("--mm_code_seed", type=int, default=0, help="which codegen seed of the training program")
    p("--mm_reward_dir", default="data/reward", help="<dir>/<skill>/model.pt")
    p("--mm_skills", default="discoverer,descender,ascender,worshipper,merchant")
    p("--mm_crop_mode", default="rgb", choices=["rgb", "embed"])
    p("--mm_env_config", default="", help="benchmark.env.EnvConfig as JSON ('' = conf/env/default.yaml's)")
    p("--mm_run_dir", default="", help="where progress.jsonl and curve.jsonl go")
    p("--mm_report_every_sec", type=float, default=5.0)
    p("--mm_curve_every_sec", type=float, default=30.0)
    p("--mm_reproducible", type=lambda v: str(v).lower() in ("1", "true", "yes"), default=False,
      help="one torch thread (with --serial_mode=True --async_rl=False: a reproducible run)")
    p("--mm_crash_after", type=int, default=10**9, help="test-only env: raise after this many steps")
    # env name "mm_factory" (baselines): the training env comes from this importable function instead
    p("--mm_env_factory", default="",
      help="'module:function(cfg, env_config, **kwargs) -> env' for mm_factory")
    p("--mm_factory_kwargs", default="{}", help="JSON keyword arguments of --mm_env_factory")


def parse_cfg(argv: list[str]):
    from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args

    from maestromotif.rl.sf_env import register

    register()
    parser, _ = parse_sf_args(argv)
    add_mm_args(parser)
    return parse_full_cfg(parser, argv)


class SkillCurves:
    """Accumulates per-skill sums from episode ends; writes one row per skill every `every` seconds."""

    def __init__(self, path: Path, skills: list[str], every: float):
        self.path, self.skills, self.every = path, skills, every
        self.last = time.time()
        self._reset()

    def _reset(self):
        self.reward = {s: 0.0 for s in self.skills}
        self.steps = {s: 0 for s in self.skills}
        self.episodes = 0

    def on_episode(self, runner, msg, policy_id) -> None:
        extra = msg["episodic"].get("episode_extra_stats", {})
        if not any(k.startswith("skill_steps/") for k in extra):
            return
        self.episodes += 1
        for s in self.skills:
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
            for s in self.skills
        ]
        append_jsonl(self.path, rows)
        self._reset()


def make_observer(cfg, curves: SkillCurves, progress_path: Path):
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
            if now - self.last < cfg.mm_report_every_sec:
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

    from maestromotif.rl import patches

    exit_with_parent()
    cfg = parse_cfg(argv)
    patches.apply(cfg.mm_error_file)
    if cfg.mm_reproducible:
        import torch

        # Multi-threaded CPU kernels reduce in a load-dependent order: two threads gave different weights
        # after one update from the same batch and parameters; one thread gave identical runs under load.
        torch.set_num_threads(1)
    run_dir = Path(cfg.mm_run_dir or ".")
    curves = SkillCurves(run_dir / "curve.jsonl", cfg.mm_skills.split(","), cfg.mm_curve_every_sec)
    cfg, runner = make_runner(cfg)
    runner.register_observer(make_observer(cfg, curves, run_dir / "progress.jsonl"))
    runner.register_episodic_stats_handler(curves.on_episode)
    status = runner.init()
    if status == ExperimentStatus.SUCCESS:
        status = runner.run()
    return 0 if status == ExperimentStatus.SUCCESS else 1


if __name__ == "__main__":
    setup_logging()
    sys.exit(run(sys.argv[1:]))
