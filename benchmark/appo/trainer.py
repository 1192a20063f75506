"""The shared APPO trainer: any method's env module + the paper's APPO settings -> a resumable,
supervised sample-factory run (docs/design.md §4.6).

    argv = appo_argv(appo, run=run_dir, seed=0, root_seed=0, env_module="<the method's env module>",
                     env_name="<an env it registers>", env_config={}, env_args={"<its flag>": "<value>"})
    run = train(run_dir, appo, argv, seed=0, label="<name in the log>", summary={...},
                provenance=lambda env_steps: {...}, before_start=<the method's input checks>)

Writes into the run dir:
    sf/checkpoint_p0/checkpoint_*.pth   sample-factory checkpoints (the latest `keep_checkpoints`)
    sf/config.json                      sample-factory's full configuration
    progress.jsonl                      env steps and frames/s over time (the watchdog's heartbeat)
    curve.jsonl                         per name of `curve_names`: reward and frequency (Fig. 8b/c)
    train.log, errors.jsonl             the child's output; errors any of its processes reported
    summary.json                        written last: env steps, frames/s, checkpoint, settings hash, the
                                        caller's `summary` fields and provenance

Resumable: rerunning after a kill continues from the last checkpoint (sample-factory's `resume`), with env
steps counting on from the checkpoint's; a finished run (summary.json with the same settings hash) returns
at once. The run is a child process (benchmark.appo.runner) under the watchdog (benchmark.appo.watchdog),
so a crashed worker or learner ends the call with an error instead of a hang. The trainer knows no method:
the env module registers the env and the network, and the caller checks its own inputs (`before_start`).
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from benchmark.io import read_jsonl, write_json, write_text
from benchmark.provenance import sha256_hex

log = logging.getLogger(__name__)

EXPERIMENT = "sf"  # sample-factory's experiment folder inside the run dir
CHECKPOINT_RE = re.compile(r"checkpoint_(\d+)_(\d+)\.pth$")
RUNNER = "benchmark.appo.runner"


@dataclass
class APPOConfig:
    """What the shared trainer reads of the `rl` section (values: conf/rl/default.yaml, the paper's;
    docs/method.md §7). A method's own schema of the section extends this one with its fields."""

    # sizes (profile-dependent)
    num_workers: int
    num_envs_per_worker: int
    worker_num_splits: int
    batch_size: int
    train_for_env_steps: int
    # APPO
    rollout: int
    recurrence: int
    num_epochs: int
    num_batches_per_epoch: int
    with_vtrace: bool
    vtrace_rho: float
    vtrace_c: float
    learning_rate: float
    adam_beta1: float
    adam_beta2: float
    adam_eps: float
    gamma: float
    gae_lambda: float
    ppo_clip_ratio: float
    ppo_clip_value: float
    value_loss_coeff: float
    exploration_loss_coeff: float
    max_grad_norm: float
    max_policy_lag: int
    # the core after the env module's encoder: a GRU of this size
    rnn_size: int
    # plumbing
    device: str  # auto: cuda when available, else cpu
    save_every_sec: int
    keep_checkpoints: int
    curve_every_sec: float
    report_every_sec: float
    startup_timeout_s: float
    stall_timeout_s: float
    # any other sample-factory flag, e.g. --serial_mode=True
    extra_sf_args: list[str]
    # Reproducible training: sample-factory's serial, synchronous mode with one torch thread and a fixed
    # Python hash seed, so a run is a function of its settings on one kind of machine (same CPU, same torch
    # build), whatever the load.
    # About 0.6x the asynchronous default's frames/s on 2 cores; the regression check's trained rows use it
    # (docs/regression.md). The training math is the same.
    reproducible: bool


def checkpoints(run: Path) -> list[Path]:
    """sample-factory's 'latest' checkpoints of policy 0, oldest first."""
    folder = Path(run) / EXPERIMENT / "checkpoint_p0"
    return sorted(folder.glob("checkpoint_*.pth")) if folder.exists() else []


def checkpoint_env_steps(path: Path) -> int:
    m = CHECKPOINT_RE.search(path.name)
    if not m:
        raise ValueError(f"{path} is not named like a sample-factory checkpoint")
    return int(m.group(2))


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def appo_argv(appo: APPOConfig, *, run: Path, seed: int, root_seed: int, env_module: str, env_name: str,
              env_config: dict, env_args: dict, curve_names: list[str] = ()) -> list[str]:
    """The runner's command line: the APPO settings, the trainer's --appo_* plumbing and the env module's
    own `env_args` (everything explicit, so a resume cannot drift; `appo.extra_sf_args` last, so they win)."""
    a = {
        "env": env_name, "experiment": EXPERIMENT, "train_dir": str(run), "restart_behavior": "resume",
        "device": resolve_device(appo.device), "seed": seed,
        "num_workers": appo.num_workers, "num_envs_per_worker": appo.num_envs_per_worker,
        "worker_num_splits": appo.worker_num_splits, "batch_size": appo.batch_size,
        "train_for_env_steps": appo.train_for_env_steps, "rollout": appo.rollout,
        "recurrence": appo.recurrence, "num_epochs": appo.num_epochs,
        "num_batches_per_epoch": appo.num_batches_per_epoch,
        "with_vtrace": appo.with_vtrace, "vtrace_rho": appo.vtrace_rho, "vtrace_c": appo.vtrace_c,
        "learning_rate": appo.learning_rate, "adam_beta1": appo.adam_beta1, "adam_beta2": appo.adam_beta2,
        "adam_eps": appo.adam_eps, "gamma": appo.gamma, "gae_lambda": appo.gae_lambda,
        "ppo_clip_ratio": appo.ppo_clip_ratio, "ppo_clip_value": appo.ppo_clip_value,
        "value_loss_coeff": appo.value_loss_coeff, "exploration_loss": "entropy",
        "exploration_loss_coeff": appo.exploration_loss_coeff, "max_grad_norm": appo.max_grad_norm,
        "max_policy_lag": appo.max_policy_lag,
        # the network: the env module's encoder, then SF's GRU core and shared linear actor/critic heads
        "use_rnn": True, "rnn_type": "gru", "rnn_size": appo.rnn_size, "rnn_num_layers": 1,
        "nonlinearity": "elu", "policy_initialization": "orthogonal", "policy_init_gain": 1.0,
        "actor_critic_share_weights": True,
        # the env gives the method's total reward; categorical inputs must not be normalised
        "reward_scale": 1.0, "reward_clip": 1e6, "normalize_input": False, "normalize_returns": False,
        "save_every_sec": appo.save_every_sec, "keep_checkpoints": appo.keep_checkpoints,
        "with_wandb": False,
        # the trainer's plumbing, read in every process (explicitly: workers read no file for it)
        "appo_env_module": env_module, "appo_error_file": str(Path(run) / "errors.jsonl"),
        "appo_root_seed": root_seed, "appo_seed": seed,
        "appo_env_config": json.dumps(env_config, sort_keys=True), "appo_run_dir": str(run),
        "appo_report_every_sec": appo.report_every_sec, "appo_curve_names": ",".join(curve_names),
        "appo_curve_every_sec": appo.curve_every_sec,
        **env_args,
    }
    if appo.reproducible:
        a.update(serial_mode=True, async_rl=False, appo_reproducible=True)
    return [f"--{k}={v}" for k, v in a.items()] + list(appo.extra_sf_args)


def settings_hash(argv: list[str]) -> str:
    """Identifies the settings of a finished run (paths excluded), so a changed param reruns the stage."""
    keep = [x for x in argv if not x.startswith(("--appo_error_file=", "--train_dir=", "--appo_run_dir="))]
    return sha256_hex("\n".join(keep))


def check_resumable(run: Path) -> int:
    """Env steps of the checkpoint a resume starts from (0: fresh start). sample-factory swallows a failed
    checkpoint load and silently restarts from scratch, so check here that the latest one loads."""
    ckpts = checkpoints(run)
    if not ckpts:
        return 0
    import torch

    from benchmark.appo.patches import allow_checkpoint_globals

    allow_checkpoint_globals()
    try:
        torch.load(ckpts[-1], map_location="cpu")  # exactly as sample-factory will (default weights_only)
    except Exception as e:
        raise RuntimeError(
            f"cannot resume from {ckpts[-1]} ({type(e).__name__}: {e}); delete it to resume from an older "
            f"checkpoint, or delete {run} to start over"
        ) from e
    return checkpoint_env_steps(ckpts[-1])


def drop_rows_after(path: Path, env_steps: int) -> None:
    """Curve/progress rows logged at or after the step count of the checkpoint a resume starts from are
    logged again by the resumed run: drop them. At the checkpoint's count itself too: the resumed run's first
    window can end before its first training step, at that very count, and a curve must have one window per
    step count (tests/integration/test_train.py). A fresh start (0) drops every row."""
    rows = read_jsonl(path)
    kept = [r for r in rows if r.get("env_steps", 0) < env_steps]
    if len(kept) != len(rows) or (path.exists() and not path.read_bytes().endswith(b"\n")):
        write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))


def check_sizes(appo: APPOConfig) -> None:
    if appo.num_envs_per_worker % appo.worker_num_splits:
        raise ValueError(f"rl.num_envs_per_worker ({appo.num_envs_per_worker}) must be a multiple of "
                         f"rl.worker_num_splits ({appo.worker_num_splits})")
    if appo.batch_size % appo.recurrence:
        raise ValueError(f"rl.batch_size ({appo.batch_size}) must be a multiple of rl.recurrence "
                         f"({appo.recurrence})")


def train(run: Path, appo: APPOConfig, argv: list[str], *, seed: int, label: str,
          summary: dict | None = None, provenance: Callable[[int], dict] | None = None,
          before_start: Callable[[], None] | None = None, extra_env: dict | None = None) -> Path:
    """Train (or resume, or skip if finished) one run with the runner command line `argv` (appo_argv's,
    plus any flags appended: the last value of a flag wins); return the run dir.

    label: names the run in the progress bar and the log; summary: fields added to summary.json;
    provenance(env_steps): the run's provenance record (a failure there never fails the run);
    before_start(): the caller's input checks, run only when there is training to do."""
    from tqdm import tqdm

    from benchmark.appo.watchdog import Limits, supervise

    run = Path(run)
    digest = settings_hash(argv)
    summary_path = run / "summary.json"
    if summary_path.exists() and json.loads(summary_path.read_text()).get("settings_hash") == digest:
        log.info("%s already finished (%s); nothing to do", label, summary_path)
        return run
    summary_path.unlink(missing_ok=True)
    check_sizes(appo)
    if before_start is not None:
        before_start()
    start_steps = check_resumable(run)
    if start_steps:
        log.info("%s: resuming from env step %d", label, start_steps)
    for name in ("curve.jsonl", "progress.jsonl"):
        drop_rows_after(run / name, start_steps)

    env = {**os.environ, **(extra_env or {})}
    if appo.reproducible:
        # sample-factory walks sets of component names when it wires its event loop; with Python's per-process
        # string hashing the order (and with it which env gets which sampled action) changed between runs
        env["PYTHONHASHSEED"] = "0"
    cmd = [sys.executable, "-m", RUNNER, *argv]
    bar = tqdm(total=appo.train_for_env_steps, initial=start_steps, unit="step", desc=label, disable=None)
    last: dict[str, Any] = {}

    def on_progress(rec: dict) -> None:
        last.update(rec)
        bar.n = min(rec["env_steps"], appo.train_for_env_steps)
        bar.set_postfix(fps=f"{rec['fps']:.0f}")
        bar.refresh()
        log.info("%s: %d env steps, %.0f frames/s", label, rec["env_steps"], rec["fps"])

    def finished() -> bool:
        ck = checkpoints(run)
        return bool(ck) and checkpoint_env_steps(ck[-1]) >= appo.train_for_env_steps

    try:
        supervise(cmd, log_path=run / "train.log", error_file=run / "errors.jsonl",
                  progress_file=run / "progress.jsonl", env=env, on_progress=on_progress, finished=finished,
                  limits=Limits(startup_timeout=appo.startup_timeout_s, stall_timeout=appo.stall_timeout_s))
    finally:
        bar.close()
    final = checkpoints(run)
    if not final:
        raise RuntimeError(f"sample-factory finished without a checkpoint in {run / EXPERIMENT}; see "
                           f"{run / 'train.log'}")
    env_steps = checkpoint_env_steps(final[-1])
    write_json(summary_path, {
        "seed": seed, "env_steps": env_steps, "resumed_from_env_steps": start_steps,
        "checkpoint": str(final[-1].relative_to(run)), "fps_last_segment": last.get("fps"),
        "settings_hash": digest, **(summary or {}),
        "provenance": _provenance(provenance, env_steps),
    })
    log.info("%s done: %s", label, final[-1])
    return run


def _provenance(provenance: Callable[[int], dict] | None, env_steps: int) -> dict:
    if provenance is None:
        return {}
    try:
        return provenance(env_steps)
    except Exception as e:  # provenance must never fail a finished training run
        return {"error": f"{type(e).__name__}: {e}"}
