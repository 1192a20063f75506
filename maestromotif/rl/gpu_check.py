"""Measure skill training on a GPU machine: the paper network, the paper profile's APPO settings, all cores.

    python -m maestromotif.rl.gpu_check                      # 3 minutes, writes results/gpu_check.json
    python -m maestromotif.rl.gpu_check --minutes 5 --out /tmp/gpu.json

It trains the real thing (the skill-conditioned network with the rendered crop, the options wrapper and the
five intrinsic rewards) from the paper profile's `rl` section, with `num_workers` set to the machine's core
count, for a fixed wall time, then writes frames/s (env steps per second after the first iteration),
the learner's samples/s as sample-factory logs them, and the GPU memory in use. The reward models are
freshly initialised at the paper's sizes: their cost per step is that of trained ones, and no earlier
stage has to run first. Without a CUDA GPU it exits with status 2 and says so (`--device cpu` runs the
same measurement on the CPU, which the tests use). docs/throughput.md has the figures measured so far.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

log = logging.getLogger(__name__)

NO_GPU_EXIT = 2
THROUGHPUT_RE = re.compile(r"Throughput: 0: ([0-9]+(?:\.[0-9]+)?|nan)")  # sample-factory's runner, policy 0
PROBE_MESSAGES = ["", "You see here a scroll.", "The door opens.", "You kill the newt!", "It's a wall.",
                  "You hear the footsteps of a guard on patrol.", "You climb up the stairs."]


def fresh_reward_models(folder: Path, skills: list[str]) -> None:
    """Untrained paper-size reward models with a normalisation and quantile table from probe messages."""
    import torch

    from benchmark.config import defaults
    from maestromotif.reward.model import (RewardCheckpoint, RewardModel, RewardModelConfig,
                                           reward_statistics, save_checkpoint, score)

    torch.manual_seed(0)
    for skill in skills:
        model = RewardModel(defaults("reward.model", RewardModelConfig))
        mean, var, quantiles = reward_statistics(score(model, PROBE_MESSAGES, [0] * len(PROBE_MESSAGES)))
        save_checkpoint(folder / skill / "model.pt", RewardCheckpoint(
            skill=skill, model=model, reward_mean=mean, reward_var=var, quantiles=quantiles,
            metadata={"note": "untrained, for the throughput check (maestromotif/rl/gpu_check.py)"}))


def gpu_memory_mib() -> list[int]:
    """Memory in use per GPU (nvidia-smi), [] when it cannot be read."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
        return [int(x) for x in out.split()]
    except (OSError, subprocess.SubprocessError, ValueError):
        return []


def summarise(progress: list[dict], log_text: str, warmup_s: float) -> dict:
    """Frames/s over the records after `warmup_s` of training, and the learner's logged samples/s."""
    steady = [r for r in progress if r.get("seconds_since_first_iteration", 0) >= warmup_s] or progress
    if len(steady) >= 2:
        first, last = steady[0], steady[-1]
        seconds = last["seconds_since_first_iteration"] - first["seconds_since_first_iteration"]
        fps = (last["env_steps"] - first["env_steps"]) / seconds if seconds > 0 else None
    else:
        fps = steady[-1]["fps"] if steady else None
    samples = [float(x) for x in THROUGHPUT_RE.findall(log_text) if x != "nan"]
    return {"frames_per_s": fps, "env_steps": progress[-1]["env_steps"] if progress else 0,
            "learner_samples_per_s": statistics.median(samples[len(samples) // 2:]) if samples else None}


def measure(minutes: float, device: str, workers: int, envs_per_worker: int | None, batch_size: int | None,
            workdir: Path, extra_overrides: Sequence[str] = (), profile: str = "paper") -> dict:
    from benchmark.config import compose, root, section
    from benchmark.io import read_jsonl
    from benchmark.provenance import machine
    from benchmark.appo.trainer import EXPERIMENT, RUNNER
    from benchmark.appo.watchdog import kill_group
    from maestromotif.rl.train import RLConfig, sf_argv

    overrides = [f"data_dir={workdir / 'data'}", f"rl.reward_dir={workdir / 'reward'}", f"rl.device={device}",
                 f"rl.num_workers={workers}", "rl.train_for_env_steps=100000000000",
                 "rl.save_every_sec=1000000"]
    overrides += [f"rl.num_envs_per_worker={envs_per_worker}"] * (envs_per_worker is not None)
    overrides += [f"rl.batch_size={batch_size}"] * (batch_size is not None)
    params = compose(profile, overrides + list(extra_overrides))
    fresh_reward_models(workdir / "reward", list(root(params).skills))
    rl = section(params, "rl", RLConfig)
    run = workdir / "run"
    cmd = [sys.executable, "-m", RUNNER, *sf_argv(rl, params, 0, run)]
    run.mkdir(parents=True, exist_ok=True)
    log.info("training for %.1f min: %d workers x %d envs, batch %d, device %s", minutes, rl.num_workers,
             rl.num_envs_per_worker, rl.batch_size, device)
    peak: list[int] = []
    with open(run / "train.log", "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        # the clock starts at the first training iteration: start-up (workers, env creation) is not timed
        started, deadline = time.time(), None
        try:
            while proc.poll() is None and (deadline is None or time.time() < deadline):
                time.sleep(2)
                if deadline is None and (run / "progress.jsonl").exists():
                    deadline = time.time() + 60 * minutes
                if deadline is None and time.time() - started > rl.startup_timeout_s:
                    break
                now = gpu_memory_mib()
                peak = [max(a, b) for a, b in zip(peak, now)] if peak else now
        finally:
            kill_group(proc, grace=10)
    progress = read_jsonl(run / "progress.jsonl")
    if not progress:
        tail = (run / "train.log").read_text(errors="replace").splitlines()[-30:]
        raise RuntimeError("training produced no progress record; the log ends:\n" + "\n".join(tail))
    result = summarise(progress, (run / "train.log").read_text(errors="replace"),
                       warmup_s=min(30.0, 15 * minutes))
    result.update(device=device, minutes=minutes, num_workers=rl.num_workers,
                  num_envs_per_worker=rl.num_envs_per_worker, batch_size=rl.batch_size,
                  crop_mode=rl.crop_mode, overrides=list(extra_overrides), profile=profile,
                  gpu_memory_used_mib=peak, machine=machine(), experiment=EXPERIMENT)
    return result


def main(argv: list[str] | None = None) -> int:
    from benchmark.io import write_json
    from benchmark.logs import setup_logging

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--out", default="results/gpu_check.json")
    parser.add_argument("--device", choices=["gpu", "cpu"], default="gpu")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--envs-per-worker", type=int, default=None, help="default: the paper profile's")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the paper profile's")
    parser.add_argument("--profile", default="paper", help="whose rl settings (default: the paper's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a params override (Hydra syntax), e.g. rl.reproducible=true or "
                             "\"rl.extra_sf_args=['--serial_mode=True','--async_rl=False']\" (repeatable)")
    args = parser.parse_args(argv)
    setup_logging()
    if args.device == "gpu":
        import torch

        if not torch.cuda.is_available():
            print("gpu_check: no CUDA GPU visible to torch (torch.cuda.is_available() is False; torch "
                  f"{torch.__version__}). Run it on a GPU machine after `make setup-gpu`, or pass --device "
                  "cpu to measure the same configuration on the CPU.", file=sys.stderr)
            return NO_GPU_EXIT
    with tempfile.TemporaryDirectory(prefix="mm-gpu-check-") as tmp:
        result = measure(args.minutes, args.device, args.workers, args.envs_per_worker, args.batch_size,
                         Path(tmp), args.set, args.profile)
    write_json(Path(args.out), result)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
