"""Stage `train_skills`: one skill-conditioned APPO network for all five skills, per seed.

    python -m maestromotif.rl.train --seed 0            (reads params.yaml; MM_PARAMS overrides the path)
    python -m maestromotif.rl.train --method maestromotif_oracle --seed 0   (on the oracle-label rewards)

Reads   params `rl` (hyperparameters, sizes), `env`, `skills`, `root_seed`, `profile`;
        data/reward/<skill>/model.pt (frozen reward models); the training program over skills.
Writes  data/fit/maestromotif/seed<k>/sf/checkpoint_p0/checkpoint_*.pth   sample-factory checkpoints (latest
        kept)
        data/fit/maestromotif/seed<k>/sf/config.json                      sample-factory's full configuration
        data/fit/maestromotif/seed<k>/curve.jsonl      env_steps, skill, mean normalised reward, frequency
                                                       (Fig. 8b/c)
        data/fit/maestromotif/seed<k>/progress.jsonl   env steps and frames/s over time
        data/fit/maestromotif/seed<k>/summary.json     written last: env steps, frames/s, checkpoint, seeds,
                                                       provenance

--method maestromotif_oracle (maestromotif.chain) trains on data/reward_oracle/ into
data/fit/maestromotif_oracle/seed<k>/, with the same settings, program and seed as maestromotif's network.

Resumable: rerunning after a kill continues from the last checkpoint (sample-factory's `resume`), with
env steps counting on from the checkpoint's; a finished run (summary.json present for the same settings)
returns at once. sample-factory runs in a child process under a watchdog (maestromotif.rl.watchdog), so a
crashed worker or learner ends the stage with an error instead of a hang.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from benchmark.config import ConfigError, load_params, root, section
from benchmark.io import read_jsonl, write_json, write_text
from benchmark.logs import setup_logging
from benchmark.provenance import sha256_hex
from maestromotif import chain

log = logging.getLogger(__name__)

EXPERIMENT = "sf"  # sample-factory's experiment folder inside the run dir
CHECKPOINT_RE = re.compile(r"checkpoint_(\d+)_(\d+)\.pth$")


@dataclass
class RLConfig:
    """The `rl` section (values: conf/rl/default.yaml, the paper's; docs/method.md §7)."""

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
    # network
    rnn_size: int
    crop_mode: str  # "rgb" (the paper's rendered crop) or "embed" (cheap char/colour embeddings)
    # skills
    # the training policy over skills; "isolated" = the ablation without one; "skill_starts" = each env holds
    # one skill on the start made for it (maestromotif/skill_starts.py; docs/deviations.md, `rl.program`);
    # "skills_crossed" = every skill on every start (maestromotif.rl.sf_env.skills_crossed_with_starts)
    program: str
    held_steps: int  # skill_starts: steps per episode of a held skill
    codegen_dir: str  # <dir>/<program>/seed<code_seed>/program.py
    code_seed: int  # which generated training program, for every skill seed (one of codegen.code_seeds)
    # train() fills {suffix} for its method (maestromotif.chain)
    reward_dir: str
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


def run_dir(params, seed: int, method: str = chain.DEFAULT) -> Path:
    # every method's artefact lives in data/fit/<method>/seed<S> (benchmark.evaluate reads it there)
    return chain.run_dir(params, method, seed)


def checkpoints(run: Path) -> list[Path]:
    """sample-factory's 'latest' checkpoints of policy 0, oldest first."""
    folder = run / EXPERIMENT / "checkpoint_p0"
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


def sf_argv(rl: RLConfig, params, seed: int, run: Path, env_name: str = "mm_skills",
            method: str = chain.DEFAULT) -> list[str]:
    """The sample-factory command line for this run of MaestroMotif method `method` (whose reward models:
    maestromotif.chain; everything explicit, so a resume cannot drift)."""
    top = root(params)
    env_cfg = OmegaConf.to_container(params["env"], resolve=True) if "env" in params else {}
    a = {
        "env": env_name, "experiment": EXPERIMENT, "train_dir": str(run), "restart_behavior": "resume",
        "device": resolve_device(rl.device), "seed": seed,
        "num_workers": rl.num_workers, "num_envs_per_worker": rl.num_envs_per_worker,
        "worker_num_splits": rl.worker_num_splits, "batch_size": rl.batch_size,
        "train_for_env_steps": rl.train_for_env_steps, "rollout": rl.rollout, "recurrence": rl.recurrence,
        "num_epochs": rl.num_epochs, "num_batches_per_epoch": rl.num_batches_per_epoch,
        "with_vtrace": rl.with_vtrace, "vtrace_rho": rl.vtrace_rho, "vtrace_c": rl.vtrace_c,
        "learning_rate": rl.learning_rate, "adam_beta1": rl.adam_beta1, "adam_beta2": rl.adam_beta2,
        "adam_eps": rl.adam_eps, "gamma": rl.gamma, "gae_lambda": rl.gae_lambda,
        "ppo_clip_ratio": rl.ppo_clip_ratio, "ppo_clip_value": rl.ppo_clip_value,
        "value_loss_coeff": rl.value_loss_coeff, "exploration_loss": "entropy",
        "exploration_loss_coeff": rl.exploration_loss_coeff, "max_grad_norm": rl.max_grad_norm,
        "max_policy_lag": rl.max_policy_lag,
        # the network: our encoder, then SF's GRU core and shared linear actor/critic heads
        "use_rnn": True, "rnn_type": "gru", "rnn_size": rl.rnn_size, "rnn_num_layers": 1,
        "nonlinearity": "elu", "policy_initialization": "orthogonal", "policy_init_gain": 1.0,
        "actor_critic_share_weights": True,
        # the env wrapper already gives the paper's total reward; categorical inputs must not be normalised
        "reward_scale": 1.0, "reward_clip": 1e6, "normalize_input": False, "normalize_returns": False,
        "save_every_sec": rl.save_every_sec, "keep_checkpoints": rl.keep_checkpoints, "with_wandb": False,
        # our settings, read by the env factory in every worker (explicitly: workers read no file for them)
        "mm_intrinsic": intrinsic_json(params, env_name), "mm_error_file": str(run / "errors.jsonl"),
        "mm_root_seed": top.root_seed, "mm_seed": seed,
        "mm_program": rl.program, "mm_held_steps": rl.held_steps, "mm_codegen_dir": rl.codegen_dir,
        "mm_code_seed": rl.code_seed,
        "mm_reward_dir": str(chain.training_reward_root(params, method, rl.reward_dir)),
        "mm_skills": ",".join(top.skills),
        "mm_crop_mode": rl.crop_mode, "mm_env_config": json.dumps(env_cfg, sort_keys=True),
        "mm_run_dir": str(run), "mm_report_every_sec": rl.report_every_sec,
        "mm_curve_every_sec": rl.curve_every_sec,
    }
    if rl.reproducible:
        a.update(serial_mode=True, async_rl=False, mm_reproducible=True)
    return [f"--{k}={v}" for k, v in a.items()] + list(rl.extra_sf_args)


def intrinsic_json(params, env_name: str) -> str:
    """The reward.intrinsic settings for the skills env, as the JSON the workers rebuild them from."""
    if env_name == "mm_factory" or "reward" not in params:
        return ""  # the baselines bring their own reward; no reward section: the paper's defaults
    import dataclasses

    from maestromotif.reward.train import intrinsic_config

    return json.dumps(dataclasses.asdict(intrinsic_config(params)), sort_keys=True)


def settings_hash(argv: list[str]) -> str:
    """Identifies the settings of a finished run (paths excluded), so a changed param reruns the stage."""
    keep = [x for x in argv if not x.startswith(("--mm_error_file=", "--train_dir=", "--mm_run_dir="))]
    return sha256_hex("\n".join(keep))


def check_resumable(run: Path) -> int:
    """Env steps of the checkpoint a resume starts from (0: fresh start). sample-factory swallows a failed
    checkpoint load and silently restarts from scratch, so check here that the latest one loads."""
    ckpts = checkpoints(run)
    if not ckpts:
        return 0
    import torch

    from maestromotif.rl.patches import allow_checkpoint_globals

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
    """Curve/progress rows logged after the checkpoint a resume starts from are replayed: drop them."""
    rows = read_jsonl(path)
    kept = [r for r in rows if r.get("env_steps", 0) <= env_steps]
    if len(kept) != len(rows) or (path.exists() and not path.read_bytes().endswith(b"\n")):
        write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))


def train(params, seed: int, env_name: str = "mm_skills", extra_env: dict | None = None,
          run: Path | None = None, rl_overrides: dict | None = None, extra_args: list[str] | None = None,
          method: str = "maestromotif") -> Path:
    """Train (or resume, or skip if finished) the skills of `seed` for MaestroMotif method `method` (its
    reward models and run dir: maestromotif.chain); return the run dir.

    The baselines reuse this trainer: `run` (default run_dir()), `rl_overrides` (fields of the `rl` section,
    e.g. their own train_for_env_steps), `extra_args` (appended sample-factory/--mm_* flags; the last
    value of a flag wins), env_name "mm_factory" (maestromotif.rl.sf_env.make_factory_env) and their own
    `method` name (their env reads no skill reward model)."""
    from tqdm import tqdm

    from maestromotif.rl.watchdog import Limits, supervise

    rl: RLConfig = section(params, "rl", RLConfig)
    if rl_overrides:
        rl = OmegaConf.merge(rl, rl_overrides)  # validated against RLConfig like the section itself
    # the baselines' env reads no skill reward model: they keep maestromotif's folder in their command line
    skills_method = method if method in chain.METHODS else chain.DEFAULT
    top = root(params)
    run = Path(run) if run is not None else run_dir(params, seed, skills_method)
    argv = sf_argv(rl, params, seed, run, env_name, skills_method) + list(extra_args or [])
    rl.reward_dir = str(chain.training_reward_root(params, skills_method, rl.reward_dir))  # as in the argv
    digest = settings_hash(argv)
    summary_path = run / "summary.json"
    if summary_path.exists() and json.loads(summary_path.read_text()).get("settings_hash") == digest:
        log.info("train_skills seed %d already finished (%s); nothing to do", seed, summary_path)
        return run
    summary_path.unlink(missing_ok=True)
    _check_inputs(rl, top, skill_rewards=env_name != "mm_factory")
    start_steps = check_resumable(run)
    if start_steps:
        log.info("resuming seed %d from env step %d", seed, start_steps)
    for name in ("curve.jsonl", "progress.jsonl"):
        drop_rows_after(run / name, start_steps)

    env = {**os.environ, **(extra_env or {})}
    if rl.reproducible:
        # sample-factory walks sets of component names when it wires its event loop; with Python's per-process
        # string hashing the order (and with it which env gets which sampled action) changed between runs
        env["PYTHONHASHSEED"] = "0"
    cmd = [sys.executable, "-m", "maestromotif.rl.sf_run", *argv]
    bar = tqdm(total=rl.train_for_env_steps, initial=start_steps, unit="step",
               desc=f"{'train_skills' if method in chain.METHODS else method} seed{seed}", disable=None)
    last: dict[str, Any] = {}

    def on_progress(rec: dict) -> None:
        last.update(rec)
        bar.n = min(rec["env_steps"], rl.train_for_env_steps)
        bar.set_postfix(fps=f"{rec['fps']:.0f}")
        bar.refresh()
        log.info("seed %d: %d env steps, %.0f frames/s", seed, rec["env_steps"], rec["fps"])

    def finished() -> bool:
        ck = checkpoints(run)
        return bool(ck) and checkpoint_env_steps(ck[-1]) >= rl.train_for_env_steps

    try:
        supervise(cmd, log_path=run / "train.log", error_file=run / "errors.jsonl",
                  progress_file=run / "progress.jsonl", env=env, on_progress=on_progress, finished=finished,
                  limits=Limits(startup_timeout=rl.startup_timeout_s, stall_timeout=rl.stall_timeout_s))
    finally:
        bar.close()
    final = checkpoints(run)
    if not final:
        raise RuntimeError(f"sample-factory finished without a checkpoint in {run / EXPERIMENT}; see "
                           f"{run / 'train.log'}")
    write_json(summary_path, {
        "seed": seed, "root_seed": top.root_seed, "profile": top.profile, "skills": list(top.skills),
        "env_steps": checkpoint_env_steps(final[-1]), "resumed_from_env_steps": start_steps,
        "checkpoint": str(final[-1].relative_to(run)), "fps_last_segment": last.get("fps"),
        "crop_mode": rl.crop_mode, "program": rl.program, "method": method, "reward_dir": rl.reward_dir,
        "settings_hash": digest,
        "rl": OmegaConf.to_container(params["rl"], resolve=True),
        "provenance": _provenance(top, seed, run, method),
    })
    log.info("train_skills seed %d done: %s", seed, final[-1])
    return run


def _check_inputs(rl: RLConfig, top, skill_rewards: bool = True) -> None:
    if skill_rewards:
        from maestromotif.prompts import check_skills

        check_skills(top.skills)
        from maestromotif.rl.sf_env import skill_index_order

        try:
            skill_index_order(list(top.skills))
        except ValueError as e:
            raise ConfigError(f"params `skills`: {e}; list all five skills (conf/config.yaml)") from e
    from maestromotif.rl.sf_env import NO_PROGRAM

    if rl.program in NO_PROGRAM and rl.num_workers * rl.num_envs_per_worker < len(top.skills):
        raise ValueError(f"rl.program={rl.program}: rl.num_workers x rl.num_envs_per_worker must be at least "
                         f"{len(top.skills)}, one env per skill")
    if skill_rewards and rl.program not in NO_PROGRAM and rl.code_seed not in top.code_seeds:
        raise ValueError(f"rl.code_seed={rl.code_seed} (the training program's code seed) is not one of the "
                         f"params code_seeds {list(top.code_seeds)}: codegen writes no program for it; set "
                         "rl.code_seed to one of codegen.code_seeds")
    missing = [s for s in top.skills if skill_rewards and not (Path(rl.reward_dir) / s / "model.pt").exists()]
    if missing:
        raise FileNotFoundError(
            f"no reward model for skill(s) {missing} under {rl.reward_dir}/<skill>/model.pt: run the reward "
            "stage first (python -m maestromotif.reward.train)"
        )
    if skill_rewards:  # load each model here: a corrupt file fails now with its name, not in every env worker
        from maestromotif.reward.model import load_checkpoint

        for s in top.skills:
            load_checkpoint(Path(rl.reward_dir) / s / "model.pt", skill=s)
    if rl.num_envs_per_worker % rl.worker_num_splits:
        raise ValueError(f"rl.num_envs_per_worker ({rl.num_envs_per_worker}) must be a multiple of "
                         f"rl.worker_num_splits ({rl.worker_num_splits})")
    if rl.batch_size % rl.recurrence:
        raise ValueError(f"rl.batch_size ({rl.batch_size}) must be a multiple of rl.recurrence "
                         f"({rl.recurrence})")


def _provenance(top, seed: int, run: Path, method: str = "maestromotif") -> dict:
    try:
        from benchmark.provenance import record

        return record(stage="train_skills" if method in chain.METHODS else "fit", profile=top.profile,
                      root_seed=top.root_seed, seed=seed, method=method,
                      env_steps=checkpoint_env_steps(checkpoints(run)[-1]))
    except Exception as e:  # provenance must never fail a finished training run
        return {"error": f"{type(e).__name__}: {e}"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the skill-conditioned APPO network for one seed")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--method", default=chain.DEFAULT, choices=chain.METHODS,
                        help="whose reward models and run dir (maestromotif.chain): maestromotif (the "
                             "annotate stage's labels) or maestromotif_oracle (the rule oracle's)")
    parser.add_argument("--params", default=None, help="params file (default: params.yaml or $MM_PARAMS)")
    args = parser.parse_args(argv)
    setup_logging()
    if args.params:
        os.environ["MM_PARAMS"] = str(Path(args.params).resolve())
    params = load_params(args.params)
    if args.seed not in root(params).skill_seeds:
        raise SystemExit(f"--seed {args.seed} is not one of the params skill_seeds "
                         f"{list(root(params).skill_seeds)} (one skill network per skill seed; set "
                         "skill_seeds in conf/ or the profile)")
    train(params, args.seed, method=args.method)


if __name__ == "__main__":
    main()
