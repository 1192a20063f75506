"""Stage `calibrate`: how far above chance is a competent agent on each small task variant?

    python -m benchmark.calibrate                      # params.yaml's `calibrate` section
    python -m benchmark.calibrate --methods random scripted maestromotif --tasks buc_small

For every method (a conf/method/<name>.yaml, built by Hydra like in `evaluate`) and every small variant
(benchmark.variants) it plays `episodes` seeded episodes and writes
  data/calibrate/<method>/<task>/episodes.jsonl   one record per episode (resumable, like evaluate)
  results/calibration.csv                         per (method, task): n, mean, standard error, steps/s
  results/calibration.md                          the same as a table, with random vs scripted side by side

Episode k of task t plays the NetHack game of derive_seed(root_seed, "calibrate", t, k) for every method,
so the methods face the same games and a rerun gives the same numbers.

The scripted reference (benchmark/scripted.py, conf/method/scripted.yaml) is the "competent agent" of the
calibration: a variant is useful when it scores clearly above the uniform random policy
(conf/method/random.yaml) within the episode cap.
"""
from __future__ import annotations

import argparse
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from benchmark import provenance
from benchmark.config import ConfigError, load_params, root, section
from benchmark.env import EnvConfig, make
from benchmark.evaluate import EvaluateConfig, build_method, method_artefact, method_config_path, method_spec
from benchmark.io import read_json, write_json, write_text
from benchmark.logs import setup_logging
from benchmark.method import Method
from benchmark.playback import EPISODES_FILE, play_and_record
from benchmark.seeding import derive_seed, episode_seed
from benchmark.variants import VARIANTS, _fingerprint

log = logging.getLogger(__name__)


@dataclass
class CalibrateConfig:
    """The `calibrate` section of the params (conf/calibrate/default.yaml)."""

    tasks: list[str]
    methods: list[str]
    episodes: int  # per method x task; the standard error shrinks as 1/sqrt(episodes)
    num_envs: int  # envs stepped together (one process)
    max_episode_steps: int  # the small budget a competent agent must succeed in
    seed: int  # which training seed's fit() artefact a trained method loads
    # Methods that learn: each gets its own z against the baseline, and a variant is `trained_useful` when one
    # of them beats it with z >= 3. A per-task one without a fit() artefact for a variant is trained here,
    # under <data_dir>/<fit_dir> (not the pipeline's data/fit), for `train_for_env_steps` env steps.
    trained: list[str]
    # false: a trained method without an artefact for a variant is left out there
    train_missing: bool
    train_for_env_steps: int
    fit_dir: str
    reference: str  # the competent agent of the table's comparison column
    baseline: str  # the chance level
    out_dir: str  # data/<out_dir>/<method>/<task>/
    csv: str  # under results_dir
    markdown: str


# ----- the scripted reference agent ---------------------------------------------------------------------
# ----- the stage ----------------------------------------------------------------------------------------
def standard_error(values: Sequence[float]) -> float:
    """Standard error of the mean (sample standard deviation / sqrt(n)); 0 for n < 2."""
    v = np.asarray(values, dtype=float)
    return float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0


def variant_fit_params(params: DictConfig, method_name: str, tasks: Sequence[str], train_for_env_steps: int,
                       fit_dir: str | None = None) -> DictConfig:
    """`params` for fitting `method_name` on small variants: the variants added to `tasks` (fit() trains only
    listed tasks), the method's trainer budget set, and optionally another fit folder under data_dir."""
    overrides: dict = {"tasks": list(dict.fromkeys([*params.tasks, *tasks])),
                       method_name: {"trainer": {"train_for_env_steps": int(train_for_env_steps)}}}
    if fit_dir is not None:
        overrides["evaluate"] = {"fit_dir": fit_dir}
    return OmegaConf.merge(params, overrides)


def _artefact(method: Method, method_name: str, task: str, seed: int, params: DictConfig) -> Path | None:
    eval_cfg: EvaluateConfig = OmegaConf.to_object(section(params, "evaluate", EvaluateConfig))
    return method_artefact(method_spec(method_name), method, method_name, task, seed, params, eval_cfg)


def trained_artefact_exists(method_name: str, task: str, seed: int, params: DictConfig) -> bool:
    artefact = _artefact(build_method(method_name), method_name, task, seed, params)
    return artefact is None or artefact.exists()


def fit_if_missing(method_name: str, task: str, seed: int, params: DictConfig) -> Path | None:
    """The method's fit() artefact for `task` and training seed `seed`, trained first when missing."""
    from benchmark.fit import fit

    method = build_method(method_name)
    artefact = _artefact(method, method_name, task, seed, params)
    if artefact is not None and not artefact.exists():
        log.info("%s: no fit() artefact at %s; fitting it now (seed %d)", method_name, artefact, seed)
        fit(method_name, seed, params, task=task if method.per_task else None)
    return artefact


def calibrate_one(method_name: str, task: str, params: DictConfig, cfg: CalibrateConfig,
                  progress: bool = True) -> dict | None:
    """Play (or resume) `cfg.episodes` episodes of `method_name` on `task`; return its summary row (None: a
    trained method left untrained because `train_missing` is false)."""
    if method_name in cfg.trained:
        params = variant_fit_params(params, method_name, [task], cfg.train_for_env_steps, cfg.fit_dir)
        if not cfg.train_missing and not trained_artefact_exists(method_name, task, cfg.seed, params):
            log.warning("%s has no fit() artefact for %s and calibrate.train_missing is false: left out",
                        method_name, task)
            return None
        fit_if_missing(method_name, task, cfg.seed, params)
    top = root(params)
    env_cfg: EnvConfig = OmegaConf.to_object(section(params, "env", EnvConfig))
    env_cfg.max_episode_steps = cfg.max_episode_steps
    eval_cfg: EvaluateConfig = OmegaConf.to_object(section(params, "evaluate", EvaluateConfig))
    spec = method_spec(method_name)
    method = build_method(method_name)
    artefact = method_artefact(spec, method, method_name, task, cfg.seed, params, eval_cfg)
    if artefact is not None and not artefact.exists():
        log.warning("%s: no fit() artefact at %s; calling its policy without one", method_name, artefact)
        artefact = None
    out = Path(params.data_dir) / cfg.out_dir / method_name / task
    run_key = provenance.fingerprint({
        "method": method_name,
        "method_conf": OmegaConf.to_container(OmegaConf.load(method_config_path(method_name))),
        "task": task, "root_seed": top.root_seed, "seed": cfg.seed, "env": asdict(env_cfg),
        "artefact": provenance.tree_digest(artefact), "levels": _level_digest(task),
    })
    meta = {"method": method_name, "task": task, "profile": top.profile, "run_key": run_key}
    policy = method.policy(artefact, task, params)
    # Policies that sample from a global RNG (torch) repeat too: seeded by where this run starts, as evaluate.
    played = play_and_record(
        policy, lambda: make(task=task, cfg=env_cfg), cfg.episodes, cfg.num_envs,
        lambda k: episode_seed(top.root_seed, "calibrate", task, episode=k),
        records_file=out / EPISODES_FILE, run_key=run_key, fields=meta, progress=progress,
        process_seed=lambda first: derive_seed(top.root_seed, "calibrate-policy", method_name, task, first))
    steps, seconds, records = played.steps, played.seconds, played.records
    if played.played:
        log.info("%s on %s: %d episodes, %d steps in %.1f s (%.0f steps/s)", method_name, task, played.played,
                 steps, seconds, steps / max(seconds, 1e-9))
    values = [r["value"] for r in records]
    steps_per_s = round(steps / seconds, 1) if played.played and seconds > 0 else None
    previous = out / "summary.json"
    if steps_per_s is None and previous.exists():  # all played before: keep the throughput of that run
        old = read_json(previous)
        steps_per_s = old.get("steps_per_s") if old.get("run_key") == run_key else None
    row = {
        "task": task, "base_task": VARIANTS[task].base_task,
        "category": records[0]["category"] if records else None,
        "metric": records[0]["metric"] if records else None, "method": method_name, "label": spec.label,
        "n": len(records), "mean": float(np.mean(values)) if values else float("nan"),
        "se": standard_error(values),
        "mean_steps": float(np.mean([r["steps"] for r in records])) if records else None,
        "deaths": sum(r["end_reason"] == "death" for r in records),
        "steps_per_s": steps_per_s,
        "max_episode_steps": cfg.max_episode_steps, "profile": top.profile,
        "first_episode_seed": episode_seed(top.root_seed, "calibrate", task, episode=0),
    }
    write_json(previous, {**row, "run_key": run_key})
    return row


def _level_digest(task: str) -> str:
    return _fingerprint(VARIANTS[task])


def z_score(better, worse) -> float:
    """(better - worse) / combined standard error; inf for a gap with no spread at all."""
    gap, se = better.mean - worse.mean, math.hypot(better.se, worse.se)
    return gap / se if se > 0 else (math.inf if gap > 0 else 0.0)


def comparison_table(rows: pd.DataFrame, reference: str, baseline: str,
                     trained: Sequence[str] = ()) -> pd.DataFrame:
    """One line per task: every method's mean ± se (n); the reference's gap to the baseline and its z-score;
    each trained method's z against the baseline, and whether one of them is clearly above it."""
    lines = []
    for task, group in rows.groupby("task", sort=False):
        by = {r.method: r for r in group.itertuples()}
        line = {"task": task, "category": group["category"].iloc[0], "metric": group["metric"].iloc[0]}
        for name in group["method"]:
            r = by[name]
            line[name] = f"{r.mean:.3f} ± {r.se:.3f} (n={r.n})"
        if reference in by and baseline in by:
            ref, base = by[reference], by[baseline]
            line["gap"] = round(ref.mean - base.mean, 3)
            z = z_score(ref, base)
            line["z"], line["useful"] = round(z, 1), bool(z >= 3)
        learners = [m for m in trained if m in by and baseline in by]
        zs = {m: z_score(by[m], by[baseline]) for m in learners}
        for m, z in zs.items():
            line[f"z {m}"] = round(z, 1)
        if learners:
            line["trained_useful"] = any(z >= 3 for z in zs.values())
        lines.append(line)
    return pd.DataFrame(lines)


def calibrate(params: DictConfig, cfg: CalibrateConfig, progress: bool = True) -> pd.DataFrame:
    top = root(params)
    unknown = [t for t in cfg.tasks if t not in VARIANTS]
    if unknown:
        raise ConfigError(f"calibrate.tasks {unknown} are not small variants; valid: {list(VARIANTS)}")
    if cfg.episodes <= 0 or cfg.num_envs <= 0 or cfg.max_episode_steps <= 0:
        raise ConfigError(f"calibrate.episodes, num_envs and max_episode_steps must be positive, got {cfg}")
    for name in cfg.methods:
        method_config_path(name)  # a missing conf/method file fails before any episode is played
    rows = [calibrate_one(m, t, params, cfg, progress) for t in cfg.tasks for m in cfg.methods]
    table = pd.DataFrame([r for r in rows if r is not None])
    results = Path(top.results_dir)
    csv = results / cfg.csv
    write_text(csv, table.to_csv(index=False))
    comparison = comparison_table(table, cfg.reference, cfg.baseline, cfg.trained)
    prov = provenance.record(stage="calibrate", profile=top.profile, root_seed=top.root_seed,
                             methods=list(cfg.methods), tasks=list(cfg.tasks), episodes=cfg.episodes,
                             max_episode_steps=cfg.max_episode_steps,
                             episode_seeds="derive_seed(root_seed, 'calibrate', task, episode)")
    write_text(results / cfg.markdown, _markdown(table, comparison, cfg, prov))
    write_json(results / "calibration_provenance.json", prov)
    return table


def _markdown(table: pd.DataFrame, comparison: pd.DataFrame, cfg: CalibrateConfig, prov: dict) -> str:
    lines = [
        "# Calibration of the small task variants",
        "",
        f"Profile `{prov.get('profile')}`, {cfg.episodes} seeded episodes per method and task, episode cap "
        f"{cfg.max_episode_steps} steps. Value = the task's metric per episode (success 0/1, or a count); "
        "mean ± standard error over episodes (n episodes). `z` = (reference − baseline) / combined "
        "standard error; "
        f"a variant is *useful* when `{cfg.reference}` beats `{cfg.baseline}` with z ≥ 3, and "
        f"*trained_useful* when a trained method ({', '.join(cfg.trained) or 'none listed'}) does. A trained "
        f"method plays its training seed {cfg.seed}; per-task ones are trained on each variant for "
        f"{cfg.train_for_env_steps:,} env steps"
        + ("." if cfg.train_missing
           else ", and left out of a variant where no such run existed (`--no-train`)."),
        "",
        comparison.astype(object).where(comparison.notna(), "not run").to_markdown(index=False),
        "",
        "Throughput (env + policy, one process): " + ", ".join(
            f"{r.method}/{r.task} {r.steps_per_s:,.0f} steps/s" for r in table.itertuples()
            if pd.notna(r.steps_per_s)),
        "",
        f"Generated by `python -m benchmark.calibrate` (code {prov.get('git_describe')}, "
        f"NLE {prov.get('nle_version')}).",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", default=None, help="params file (default: $MM_PARAMS or params.yaml)")
    parser.add_argument("--methods", nargs="+", help="override calibrate.methods (conf/method/<name>.yaml)")
    parser.add_argument("--tasks", nargs="+", help="override calibrate.tasks (small variant names)")
    parser.add_argument("--trained", nargs="+", help="override calibrate.trained (methods that learn)")
    parser.add_argument("--no-train", action="store_true",
                        help="train nothing: a trained method without an artefact for a variant is left out "
                             "there")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params(args.params)
    cfg: CalibrateConfig = OmegaConf.to_object(section(params, "calibrate", CalibrateConfig))
    if args.methods:
        cfg.methods = list(args.methods)
    if args.tasks:
        cfg.tasks = list(args.tasks)
    if args.trained:
        cfg.trained = list(args.trained)
    if args.no_train:
        cfg.train_missing = False
    table = calibrate(params, cfg, progress=not args.no_progress)
    columns = ["task", "method", "n", "mean", "se", "steps_per_s"]
    log.info("calibration:\n%s", table[columns].to_string(index=False))


if __name__ == "__main__":
    main()
