"""Stage `train_skills`: one skill-conditioned APPO network for all five skills, per skill seed.

    python -m maestromotif.rl.train                     (every params skill seed, fit_jobs at a time;
                                                         reads params.yaml, MM_PARAMS overrides the path)
    python -m maestromotif.rl.train --seed 0            (one seed)
    python -m maestromotif.rl.train --method maestromotif_oracle   (on the oracle-label rewards)

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

Seeds at once: each run is its own sample-factory process tree, so `fit_jobs` of them run side by side
(threads here only wait on them). With rl.reproducible (serial, synchronous, one core per run) that is
what fills 2 cores (docs/throughput.md, "Modes and concurrency"); a failed seed does not stop the others.

Resumable: rerunning after a kill continues from the last checkpoint (sample-factory's `resume`), with
env steps counting on from the checkpoint's; a finished run (summary.json present for the same settings)
returns at once. sample-factory runs in a child process under a watchdog, so a crashed worker or learner
ends the stage with an error instead of a hang: all of that is the shared trainer (benchmark.appo, which
the trained baselines use too); this module adds the skill env's settings and input checks.
"""
from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from benchmark.appo import trainer
from benchmark.appo.trainer import APPOConfig
from benchmark.config import ConfigError, load_params, root, section
from benchmark.env import env_settings
from benchmark.logs import setup_logging
from maestromotif import chain

log = logging.getLogger(__name__)

ENV_MODULE = "maestromotif.rl.sf_env"  # registers ENV_NAME and the skill network (benchmark.appo.runner)


@dataclass
class RLConfig(APPOConfig):
    """The `rl` section (values: conf/rl/default.yaml, the paper's; docs/method.md §7): the shared
    trainer's APPO settings (benchmark.appo.trainer.APPOConfig) and the skill network's own."""

    crop_mode: str  # "rgb" (the paper's rendered crop) or "embed" (cheap char/colour embeddings)
    # "shared" (the paper's: one-hot into the encoder only), "value" (a value head per skill) or
    # "policy_value" (a policy and a value head per skill); maestromotif.rl.heads
    skill_heads: str
    # the training policy over skills; "isolated" = the ablation without one; "skill_starts" = each env holds
    # one skill on the start made for it (maestromotif/skill_starts.py; docs/deviations.md, `rl.program`);
    # "skills_crossed" = every skill on every start (maestromotif.rl.sf_env.skills_crossed_with_starts)
    program: str
    held_steps: int  # skill_starts / skills_crossed: steps per episode of a held skill
    skill_starts: dict  # skill_starts: {skill: [start, ...]}, the starts each skill trains on
    codegen_dir: str  # <dir>/<program>/seed<code_seed>/program.py
    code_seed: int  # which generated training program, for every skill seed (one of codegen.code_seeds)
    # train() fills {suffix} for its method (maestromotif.chain)
    reward_dir: str


def run_dir(params, seed: int, method: str = chain.DEFAULT) -> Path:
    # every method's artefact lives in data/fit/<method>/seed<S> (benchmark.evaluate reads it there)
    return chain.run_dir(params, method, seed)


def sf_argv(rl: RLConfig, params, seed: int, run: Path, method: str = chain.DEFAULT,
            env_name: str | None = None) -> list[str]:
    """The runner command line for this run of MaestroMotif method `method` (whose reward models:
    maestromotif.chain): the shared trainer's APPO settings and the skill env's --mm_* settings."""
    from maestromotif.rl.sf_env import ENV_NAME

    top = root(params)
    env_args = {
        "mm_intrinsic": intrinsic_json(params), "mm_program": rl.program, "mm_held_steps": rl.held_steps,
        "mm_skill_starts": skill_starts_json(rl),
        "mm_codegen_dir": rl.codegen_dir, "mm_code_seed": rl.code_seed,
        "mm_reward_dir": str(chain.training_reward_root(params, method, rl.reward_dir)),
        "mm_skills": ",".join(top.skills), "mm_crop_mode": rl.crop_mode, "mm_skill_heads": rl.skill_heads,
    }
    return trainer.appo_argv(rl, run=run, seed=seed, root_seed=top.root_seed, env_module=ENV_MODULE,
                             env_name=env_name or ENV_NAME, env_config=env_settings(params),
                             env_args=env_args, curve_names=list(top.skills))


def skill_starts_json(rl: RLConfig) -> str:
    import json

    return json.dumps({k: list(v) for k, v in dict(rl.skill_starts).items()}, sort_keys=True)


def intrinsic_json(params) -> str:
    """The reward.intrinsic settings for the skills env, as the JSON the workers rebuild them from."""
    if "reward" not in params:
        return ""  # no reward section: the paper's defaults
    import dataclasses
    import json

    from maestromotif.reward.train import intrinsic_config

    return json.dumps(dataclasses.asdict(intrinsic_config(params)), sort_keys=True)


def train(params, seed: int, method: str = chain.DEFAULT, run: Path | None = None,
          env_name: str | None = None, extra_args: list[str] | None = None,
          extra_env: dict | None = None) -> Path:
    """Train (or resume, or skip if finished) the skills of `seed` for MaestroMotif method `method` (its
    reward models and default run dir: maestromotif.chain) with the shared trainer; return the run dir.
    env_name / extra_args: the tests' crash env and flags (appended; the last value of a flag wins)."""
    rl: RLConfig = section(params, "rl", RLConfig)
    top = root(params)
    run = Path(run) if run is not None else run_dir(params, seed, method)
    argv = sf_argv(rl, params, seed, run, method, env_name) + list(extra_args or [])
    rl.reward_dir = str(chain.training_reward_root(params, method, rl.reward_dir))  # as in the argv
    summary = {
        "root_seed": top.root_seed, "profile": top.profile, "skills": list(top.skills),
        "crop_mode": rl.crop_mode, "program": rl.program, "method": method, "reward_dir": rl.reward_dir,
        "rl": OmegaConf.to_container(params["rl"], resolve=True),
    }
    return trainer.train(run, rl, argv, seed=seed, label=f"train_skills seed{seed}", summary=summary,
                         provenance=lambda steps: _provenance(top, seed, method, steps),
                         before_start=lambda: _check_inputs(rl, top), extra_env=extra_env)


def train_seeds(params, seeds: list[int], method: str = chain.DEFAULT, jobs: int = 1) -> list[Path]:
    """train() for every seed of `seeds`, `jobs` at a time; return the run dirs in `seeds`' order. Every
    finished run is kept when another fails; the failures are raised together (benchmark.jobs.gather)."""
    if jobs < 1:
        raise ConfigError(f"fit_jobs must be >= 1, got {jobs} (conf/config.yaml)")
    if jobs == 1 or len(seeds) == 1:
        return [train(params, s, method=method) for s in seeds]
    from concurrent.futures import ThreadPoolExecutor

    from benchmark.jobs import gather

    log.info("%s: training skill seeds %s, %d at a time", method, seeds, jobs)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return gather([(f"seed {s}", pool.submit(train, params, s, method)) for s in seeds], method,
                      "skill seeds")


def _check_inputs(rl: RLConfig, top) -> None:
    from maestromotif.prompts import check_skills
    from maestromotif.rl.sf_env import NO_PROGRAM, SKILL_STARTS, skill_index_order, training_starts

    from maestromotif.rl.heads import SKILL_HEADS

    check_skills(top.skills)
    if rl.skill_heads not in SKILL_HEADS:
        raise ConfigError(f"rl.skill_heads={rl.skill_heads!r}: use one of {list(SKILL_HEADS)} "
                          "(maestromotif/rl/heads.py; conf/rl/default.yaml)")
    try:
        skill_index_order(list(top.skills))
    except ValueError as e:
        raise ConfigError(f"params `skills`: {e}; list all five skills (conf/config.yaml)") from e
    if rl.program in NO_PROGRAM and rl.num_workers * rl.num_envs_per_worker < len(top.skills):
        raise ValueError(f"rl.program={rl.program}: rl.num_workers x rl.num_envs_per_worker must be at least "
                         f"{len(top.skills)}, one env per skill")
    if rl.program == SKILL_STARTS:
        training_starts(skill_starts_json(rl))  # a bad table fails here, not in every rollout worker
    if rl.program not in NO_PROGRAM and rl.code_seed not in top.code_seeds:
        raise ValueError(f"rl.code_seed={rl.code_seed} (the training program's code seed) is not one of the "
                         f"params code_seeds {list(top.code_seeds)}: codegen writes no program for it; set "
                         "rl.code_seed to one of codegen.code_seeds")
    missing = [s for s in top.skills if not (Path(rl.reward_dir) / s / "model.pt").exists()]
    if missing:
        raise FileNotFoundError(
            f"no reward model for skill(s) {missing} under {rl.reward_dir}/<skill>/model.pt: run the reward "
            "stage first (python -m maestromotif.reward.train)"
        )
    from maestromotif.reward.model import load_checkpoint

    for s in top.skills:  # load each model here: a corrupt file fails now with its name, not in every worker
        load_checkpoint(Path(rl.reward_dir) / s / "model.pt", skill=s)


def _provenance(top, seed: int, method: str, env_steps: int) -> dict:
    from benchmark.provenance import record

    return record(stage="train_skills", profile=top.profile, root_seed=top.root_seed, seed=seed,
                  method=method, env_steps=env_steps)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the skill-conditioned APPO network of each skill "
                                                 "seed")
    parser.add_argument("--seed", type=int, default=None,
                        help="one skill seed (default: every params skill seed)")
    parser.add_argument("--method", default=chain.DEFAULT, choices=chain.METHODS,
                        help="whose reward models and run dir (maestromotif.chain): maestromotif (the "
                             "annotate stage's labels) or maestromotif_oracle (the rule oracle's)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="skill seeds trained at once (default: the params' fit_jobs)")
    parser.add_argument("--params", default=None, help="params file (default: params.yaml or $MM_PARAMS)")
    args = parser.parse_args(argv)
    setup_logging()
    if args.params:
        os.environ["MM_PARAMS"] = str(Path(args.params).resolve())
    params = load_params(args.params)
    top = root(params)
    if args.seed is not None and args.seed not in top.skill_seeds:
        raise SystemExit(f"--seed {args.seed} is not one of the params skill_seeds "
                         f"{list(top.skill_seeds)} (one skill network per skill seed; set "
                         "skill_seeds in conf/ or the profile)")
    seeds = [args.seed] if args.seed is not None else list(top.skill_seeds)
    train_seeds(params, seeds, method=args.method, jobs=top.fit_jobs if args.jobs is None else args.jobs)


if __name__ == "__main__":
    main()
