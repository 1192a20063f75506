"""Stage `aggregate`: every evaluation record -> per-seed scores, mean ± standard error, IQM with CIs.

    python -m benchmark.aggregate

Reads data/evaluate/<method>/<task>/<run>/ for the methods, tasks and runs of params.yaml (a run is a seed
of `seeds`; for MaestroMotif a (skill seed, code seed) pair of `skill_seeds` x `code_seeds`, folder
seed<S>_code<C>) and writes
results/scores_per_seed.csv  one row per (method, task, run): the run's score = mean task value over episodes;
                             columns seed, code_seed (code-seeded methods), run, and fallback: the parts of
                             the policy that ran a reference stand-in for LLM-written code (e.g. "program"),
                             and progression: the run's mean BALROG progression (benchmark.progression)
results/summary.csv          one row per (method, task): mean ± standard error over runs (the paper's
                             numbers), and progression_mean / progression_stderr over the same runs
results/aggregate.json       IQM and mean with stratified-bootstrap 95% CIs per category, P(X > Y) per pair
results/provenance.json      this stage's provenance plus every evaluation's

Standard error as the paper computes it: every run is one seed, so MaestroMotif's 3 skill seeds x 3 code
seeds are 9 independent seeds (n = 9: sample std with ddof=1 over sqrt(9)), the code seeds' variance folded
into the seeds' spread; nothing is averaged per network first. Bootstrap CIs resample the same runs.

A task's value is what its tracker reports (1/0 success for navigation and composite tasks, a count for
interaction tasks). For the IQM across tasks the scores are put on one scale by `report.normalise`
(default: divided by the paper's MaestroMotif mean on that task, so 1.0 = the paper's result; the small
profile's variants have no paper numbers: divided by the scripted reference agent's mean in the same run).
All evaluations must come from the params' profile: tables never mix profiles.
"""
from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from benchmark import progression, provenance, stats
from benchmark.config import REPO_ROOT, ConfigError, root, section, stage_main
from benchmark.evaluate import (
    EPISODES_FILE,
    EvaluateConfig,
    finished_records,
    method_runs,
    method_spec,
    output_dir,
)
from benchmark.io import read_json, write_csv, write_json

log = logging.getLogger(__name__)

CATEGORIES = ("navigation", "interaction", "composite")


NORMALISATIONS = ("paper_maestromotif", "reference", "none")


@dataclass
class ReportConfig:
    """The `report` section (conf/report/default.yaml), read by the aggregate and report stages."""

    bootstrap_reps: int  # stratified-bootstrap replications
    ci: float
    bootstrap_seed: int  # the bootstrap's own seed, recorded in aggregate.json
    # how task scores share a scale for IQM: paper_maestromotif (the paper's MaestroMotif score on the task),
    # reference (the mean of method `normalise_method` on the task in this run, e.g. the scripted agent on the
    # small variants, which have no paper numbers) or none
    normalise: str
    normalise_method: str
    paper_results: str  # relative to the repository root
    paper_reference_method: str
    # Our task name -> the paper's task title (the join key with paper_results.csv); default: conf/task title.
    task_titles: dict[str, str]
    # Per-skill reward curves written by the train stage (maestromotif.rl.train: curve.jsonl), per method of
    # `curve_methods` ({method}); the report draws those in `methods`, the metrics stage writes each one's
    # plots files (dvc.yaml names them).
    curves_glob: str
    curve_methods: list[str]
    figure_formats: list[str]
    # Per-source event counts of the collected observations (stage collect_events): the report includes the
    # markdown table written beside this CSV when it exists.
    collect_events: str
    # Fig. 5: MaestroMotif against score-maximising agents (those of these methods that `methods` lists).
    score_comparison: list[str]


def report_config(params: DictConfig) -> ReportConfig:
    cfg = OmegaConf.to_object(section(params, "report", ReportConfig))
    if cfg.normalise not in NORMALISATIONS:
        raise ConfigError(f"report.normalise must be one of {list(NORMALISATIONS)}, got {cfg.normalise!r}")
    if cfg.bootstrap_reps < 1 or not 0 < cfg.ci < 1:
        raise ConfigError(f"report.bootstrap_reps must be >= 1 and 0 < report.ci < 1, got {cfg}")
    if "{method}" not in cfg.curves_glob and len(cfg.curve_methods) > 1:
        raise ConfigError(f"report.curves_glob={cfg.curves_glob!r} has no {{method}}: every method of "
                          f"report.curve_methods {cfg.curve_methods} would read the same curves; put "
                          "{method} where the method's folder goes (default: "
                          "{data_dir}/fit/{method}/seed*/curve.jsonl)")
    return cfg


def curves_pattern(cfg: ReportConfig, data_dir: str, method: str) -> str:
    """The glob of `method`'s per-skill training curves."""
    return cfg.curves_glob.format(data_dir=data_dir, method=method)


def task_title(task: str, cfg: ReportConfig) -> str:
    if task in cfg.task_titles:
        return cfg.task_titles[task]
    from benchmark.tasks import load_task_config

    return load_task_config(task).title


def load_paper_results(path: str | Path) -> pd.DataFrame:
    """The paper's Tables 1 and 2 (benchmark/paper_results.csv) with values as fractions for success rates."""
    path = Path(path)
    df = pd.read_csv(path if path.is_absolute() else REPO_ROOT / path)
    scale = np.where(df["unit"] == "percent", 0.01, 1.0)
    return df.assign(mean=df["mean"] * scale, stderr=df["stderr"] * scale)


def fallback_parts(record: dict) -> str:
    """The parts of a record's policy_provenance that ran a reference stand-in (e.g. "program"), joined by
    ","."""
    parts = record.get("policy_provenance") or {}
    return ",".join(sorted(k for k, v in parts.items() if isinstance(v, dict) and v.get("fallback")))


def collect_scores(params: DictConfig) -> tuple[pd.DataFrame, list[dict]]:
    """Per-run scores of every (method, task, run) in the params, and the evaluations' provenance."""
    top = root(params)
    ev = OmegaConf.to_object(section(params, "evaluate", EvaluateConfig))
    rows, provs, missing = [], [], []
    runs = {m: method_runs(method_spec(m), top) for m in top.methods}
    for method, task, run in [(m, t, r) for m in top.methods for t in top.tasks for r in runs[m]]:
        seed = run.seed
        out = output_dir(params, ev, method, task, run.seed, run.code_seed)
        if not (out / "provenance.json").exists():
            missing.append(str(out))
            continue
        prov = read_json(out / "provenance.json")
        records = finished_records(out, prov["run_key"])
        if prov["profile"] != top.profile:
            raise ConfigError(f"{out} was evaluated under profile {prov['profile']!r}, but the params say "
                              f"{top.profile!r}; tables never mix profiles: rerun `dvc repro` (or the "
                              "evaluate stage)")
        if len(records) < ev.episodes:
            code = "" if run.code_seed is None else f" --code-seed {run.code_seed}"
            raise ConfigError(f"{out}/{EPISODES_FILE} has {len(records)} of {ev.episodes} episodes; finish "
                              f"it with `python -m benchmark.evaluate --method {method} --task {task} --seed "
                              f"{seed}{code}`")
        records = records[: ev.episodes]
        run_progression = progression.mean_progression(records)
        if np.isnan(run_progression):
            log.warning("%s/%s: records without max_xlvl (written before evaluate recorded it): no "
                        "progression for this run; delete the file and rerun the evaluate stage to get one",
                        out, EPISODES_FILE)
        successes = [r["success"] for r in records if r["success"] is not None]
        rows.append({
            "method": method, "task": task, "seed": seed, "code_seed": run.code_seed, "run": run.name,
            "fallback": ",".join(sorted({p for r in records for p in fallback_parts(r).split(",") if p})),
            "profile": prov["profile"],
            "category": records[0]["category"], "metric": records[0]["metric"],
            "score": float(np.mean([r["value"] for r in records])),
            "success_rate": float(np.mean(successes)) if successes else np.nan,
            "episodes": len(records), "mean_steps": float(np.mean([r["steps"] for r in records])),
            "mean_game_score": float(np.mean([r["score"] for r in records])),
            "max_depth_mean": float(np.mean([r["max_depth"] for r in records])),
            "max_xlvl_mean": float(np.mean([r.get("max_xlvl", np.nan) for r in records])),
            "progression": run_progression,
        })
        provs.append(prov)
    if missing:
        raise ConfigError(f"{len(missing)} evaluation(s) missing, e.g. {missing[:3]}; run `dvc repro` "
                          "(or benchmark.evaluate for each) first. DVC evaluates the methods of "
                          "`fit_methods` per seed (stage evaluate) and the MaestroMotif methods per skill x "
                          "code seed (evaluate_maestromotif, evaluate_maestromotif_oracle): a method in "
                          "`methods` must be in one of them")
    scores = pd.DataFrame(rows)
    if len(scores):
        scores["code_seed"] = scores["code_seed"].astype("Int64")  # empty for methods without code seeds
    return scores, provs


def summarise(scores: pd.DataFrame, random_method: str = "random") -> pd.DataFrame:
    """Mean ± standard error over runs per (method, task), as the paper reports them: each run (a seed, or
    a skill seed x code seed pair) is one independent seed. n_fallback_runs: runs whose policy ran a
    reference stand-in for LLM-written code (the tables mark those cells). z_vs_random: the difference from
    `random_method` on the task in standard errors over runs (stats.z_difference; NaN when that method is
    not in the run)."""
    rows = []
    for (method, task), g in scores.groupby(["method", "task"], sort=False):
        mean, se = stats.mean_stderr(g["score"])
        fallback = g["fallback"].fillna("") if "fallback" in g else pd.Series([""] * len(g))
        parts = sorted({p for f in fallback for p in str(f).split(",") if p})
        prog = g["progression"] if "progression" in g else pd.Series([np.nan] * len(g))
        prog_mean, prog_se = stats.mean_stderr(prog) if prog.notna().all() else (np.nan, np.nan)
        rows.append({"method": method, "task": task, "category": g["category"].iloc[0],
                     "metric": g["metric"].iloc[0], "mean": mean, "stderr": se, "n_seeds": len(g),
                     "episodes_per_seed": int(g["episodes"].iloc[0]), "profile": g["profile"].iloc[0],
                     "n_fallback_runs": int((fallback != "").sum()), "fallback_parts": ",".join(parts),
                     "progression_mean": prog_mean, "progression_stderr": prog_se})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    random = out[out["method"] == random_method].set_index("task")
    out["z_vs_random"] = [
        stats.z_difference(r.mean, r.stderr, random.at[r.task, "mean"], random.at[r.task, "stderr"])
        if r.task in random.index and r.method != random_method else math.nan for r in out.itertuples()]
    return out


def normalised(scores: pd.DataFrame, cfg: ReportConfig, paper: pd.DataFrame) -> pd.DataFrame:
    """`scores` with a column `normalised`: the score divided by the paper's reference method on that task."""
    out = scores.copy()
    if cfg.normalise == "none":
        out["normalised"] = out["score"]
        return out
    if cfg.normalise == "reference":
        ref = out[out["method"] == cfg.normalise_method].groupby("task")["score"].mean()
        denominators = out["task"].map(ref)
        unknown = sorted(set(out.loc[denominators.isna() | (denominators <= 0), "task"]))
        if unknown:
            raise ConfigError(f"report.normalise=reference: method {cfg.normalise_method!r} "
                              f"(report.normalise_method) has no positive score on task(s) {unknown}; add it "
                              "to `methods`, or choose another report.normalise_method or report.normalise")
        out["normalised"] = out["score"] / denominators.to_numpy()
        return out
    ref = paper[paper["method"] == cfg.paper_reference_method].set_index("task")["mean"]
    titles = out["task"].map(lambda t: task_title(t, cfg))
    denominators = titles.map(ref)
    unknown = sorted(set(out.loc[denominators.isna() | (denominators <= 0), "task"]))
    if unknown:
        raise ConfigError(f"no positive paper value of {cfg.paper_reference_method} for task(s) {unknown}: "
                          "add them to report.task_titles / the paper results, or set report.normalise to "
                          "reference (a method of this run) or none")
    out["normalised"] = out["score"] / denominators.to_numpy()
    return out


def score_matrix(scores: pd.DataFrame, method: str, tasks: Sequence[str],
                 column: str = "normalised") -> np.ndarray:
    """(runs, tasks) matrix of one method, runs in the order of the scores (seed, then code seed)."""
    mine = scores[scores["method"] == method]
    key = "run" if "run" in mine else "seed"
    table = mine.pivot(index=key, columns="task", values=column)
    return table.reindex(index=list(dict.fromkeys(mine[key])), columns=list(tasks)).to_numpy()


def interval_summary(scores: pd.DataFrame, methods: Sequence[str], cfg: ReportConfig) -> dict:
    """IQM and mean with bootstrap CIs, per category and over all tasks, and pairwise P(X > Y) over all
    tasks."""
    groups = {c: list(scores.loc[scores["category"] == c, "task"].unique()) for c in CATEGORIES}
    groups = {"all": list(scores["task"].unique()), **{c: t for c, t in groups.items() if t}}
    out: dict = {"iqm": {}, "mean": {}, "probability_of_improvement": {}}
    for name, tasks in groups.items():
        mats = {m: score_matrix(scores, m, tasks) for m in methods}
        for agg in ("iqm", "mean"):
            est = stats.interval_estimates(mats, agg, reps=cfg.bootstrap_reps, seed=cfg.bootstrap_seed,
                                           ci=cfg.ci)
            out[agg][name] = {m: {"point": p, "low": lo, "high": hi, "tasks": tasks}
                              for m, (p, lo, hi) in est.items()}
    all_tasks = groups["all"]
    for x, y in itertools.permutations(methods, 2):
        p, lo, hi = stats.probability_of_improvement_ci(
            score_matrix(scores, x, all_tasks), score_matrix(scores, y, all_tasks),
            reps=cfg.bootstrap_reps, seed=cfg.bootstrap_seed, ci=cfg.ci)
        out["probability_of_improvement"][f"{x} > {y}"] = {"point": p, "low": lo, "high": hi}
    return out


def aggregate(params: DictConfig) -> Path:
    top = root(params)
    cfg = report_config(params)
    paper = load_paper_results(cfg.paper_results)
    scores, provs = collect_scores(params)
    scores = normalised(scores, cfg, paper)
    log.info("aggregating %d (method, task, seed) scores of profile %s", len(scores), top.profile)
    results = Path(params.results_dir)
    labels = {m: method_spec(m).label for m in top.methods}
    scores.insert(1, "method_label", scores["method"].map(labels))
    write_csv(results / "scores_per_seed.csv", scores)
    summary = summarise(scores)
    summary.insert(1, "method_label", summary["method"].map(labels))
    write_csv(results / "summary.csv", summary)
    intervals = interval_summary(scores, list(top.methods), cfg)
    write_json(results / "aggregate.json", {
        "profile": top.profile, "seeds": list(top.seeds), "skill_seeds": list(top.skill_seeds),
        "code_seeds": list(top.code_seeds), "methods": labels,
        "runs": {m: list(dict.fromkeys(scores.loc[scores["method"] == m, "run"])) for m in top.methods},
        "standard_error": "over runs, each run one independent seed (MaestroMotif: skill seed x code seed "
                          "pairs), sample std (ddof=1) / sqrt(runs), as the paper",
        "normalisation": ("score / the paper's MaestroMotif mean on the task (1.0 = the paper's result)"
                          if cfg.normalise == "paper_maestromotif" else "raw task value"),
        "bootstrap": {"reps": cfg.bootstrap_reps, "ci": cfg.ci, "seed": cfg.bootstrap_seed,
                      "kind": "stratified over runs (rliable 1.2.0)"},
        **intervals,
    })
    write_json(results / "provenance.json", {
        "aggregate": provenance.record(stage="aggregate", profile=top.profile, root_seed=top.root_seed,
                                       methods=list(top.methods), tasks=list(top.tasks),
                                       seeds=list(top.seeds), skill_seeds=list(top.skill_seeds),
                                       code_seeds=list(top.code_seeds),
                                       episodes_per_seed=int(scores["episodes"].min())),
        "evaluations": sorted(provs, key=lambda p: (p["method"], p["task"], p["seed"],
                                                     -1 if p.get("code_seed") is None else p["code_seed"])),
    })
    log.info("wrote %s/{scores_per_seed.csv, summary.csv, aggregate.json, provenance.json}", results)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    stage_main(aggregate, __doc__.split("\n")[0], argv)


if __name__ == "__main__":
    main()
