"""Stage `metrics`: small JSON and CSV files for `dvc metrics show/diff`, `dvc exp show` and `dvc plots`.

    python -m benchmark.metrics

Nothing here is computed anew: it gathers what the stages already wrote, in flat files that DVC tables
and diffs well.
  results/<profile>/metrics/<method>.json   one per method of `methods`:
      tasks.<task>.{mean, stderr, n}   the aggregate stage's summary.csv (mean ± standard error over n runs)
      evaluate.wall_s                  seconds the evaluations took (their summary.json; the last invocation
                                       of each, so a resumed evaluation counts its last part only)
      fit.{frames_per_s, env_steps, wall_s}   the method's training runs (progress.jsonl and summary.json of
                                       every run under data/fit/<method>/): frames/s averaged over runs
  results/<profile>/metrics/reward_models.json   per method with skill reward models (the
                                       benchmark.reward_models folder of its conf/method file: MaestroMotif
                                       and its oracle-label variant): <method>.<skill>.{heldout_accuracy,
                                       train_accuracy} of each reward model, and <method>.wall_s, the
                                       reward stage's training seconds
                                       (<reward_models>/<skill>/metrics.json)
  results/<profile>/plots/skill_reward_<method>.csv, skill_frequency_<method>.csv   per method of
                                       report.curve_methods, its per-skill training curves: env_steps and one
                                       column per skill, the mean over seeds on one env-step grid
                                       (benchmark.plots.curves_on_grid; dvc plots: linear)
  results/<profile>/plots/task_scores.csv   one row per (task, method): mean, stderr, n (dvc plots: bars)
"""
from __future__ import annotations

import glob
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from benchmark import plots
from benchmark.aggregate import curves_pattern, report_config
from benchmark.config import ConfigError, root, section, stage_main
from benchmark.evaluate import EvaluateConfig, method_spec
from benchmark.io import read_json, read_jsonl, write_csv, write_json

log = logging.getLogger(__name__)

METRICS_DIR, PLOTS_DIR = "metrics", "plots"


def _number(x) -> float | None:
    """A JSON-friendly float (None for a missing or NaN value, which `dvc metrics` shows as '-')."""
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)


def task_metrics(summary: pd.DataFrame, method: str) -> dict:
    rows = summary[summary["method"] == method]
    return {r.task: {"mean": _number(r.mean), "stderr": _number(r.stderr), "n": int(r.n_seeds)}
            for r in rows.itertuples()}


def training_runs(fit_root: Path) -> list[dict]:
    """Every training run under `fit_root` (a folder with progress.jsonl): env steps, frames/s, wall
    seconds."""
    runs = []
    for progress in sorted(fit_root.rglob("progress.jsonl")):
        records = read_jsonl(progress)
        if not records:
            continue
        summary = progress.parent / "summary.json"
        done = read_json(summary) if summary.exists() else {}
        last = records[-1]
        runs.append({"env_steps": done.get("env_steps", last.get("env_steps")),
                     "frames_per_s": done.get("fps_last_segment", last.get("fps")),
                     "wall_s": training_seconds(records)})
    return runs


def training_seconds(records: list[dict]) -> float:
    """Seconds spent training: a resumed run logs several segments, each counting its own seconds from 0;
    the sum of each segment's last count leaves out the time the run lay stopped between them."""
    counts = [float(r.get("seconds_since_first_iteration", 0.0)) for r in records]
    return sum(c for c, after in zip(counts, [*counts[1:], -1.0]) if after < c)


def fit_metrics(fit_root: Path) -> dict:
    runs = training_runs(fit_root)
    if not runs:
        return {}
    fps = [r["frames_per_s"] for r in runs if r["frames_per_s"] is not None]
    return {"runs": len(runs), "frames_per_s": _number(np.mean(fps)) if fps else None,
            "env_steps": int(sum(r["env_steps"] or 0 for r in runs)),
            "wall_s": round(sum(r["wall_s"] for r in runs), 1)}


def evaluate_wall_s(evaluate_root: Path) -> float | None:
    seconds = [read_json(Path(p)).get("this_run", {}).get("seconds", 0.0)
               for p in glob.glob(str(evaluate_root / "*" / "*" / "summary.json"))]
    return round(float(sum(seconds)), 1) if seconds else None


def reward_metrics(reward_root: Path, skills: Sequence[str]) -> dict:
    out, wall = {}, 0.0
    for skill in skills:
        path = reward_root / skill / "metrics.json"
        if not path.exists():
            continue
        m = read_json(path)
        out[skill] = {"heldout_accuracy": _number(m.get("heldout_accuracy")),
                      "train_accuracy": _number(m.get("train_accuracy"))}
        wall += sum(h.get("train_seconds", 0.0) for h in m.get("history", []))
    if out:
        out["wall_s"] = round(wall, 1)
    return out


def curve_tables(curves: pd.DataFrame | None, skills: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Wide per-skill curve tables (env_steps, one column per skill) for dvc plots, one per logged value.
    Every skill has its column, empty where it has no value (a skill never chosen has no reward): dvc.yaml
    names all five, and a missing column fails the whole plot."""
    tables = {}
    for value, name in (("normalised_reward", "skill_reward"), ("frequency", "skill_frequency")):
        grid = plots.curves_on_grid(curves, value) if curves is not None and value in curves else None
        if grid is None or grid.empty:
            tables[name] = pd.DataFrame(columns=["env_steps", *skills])
            continue
        wide = grid.pivot(index="env_steps", columns="skill", values="mean").reset_index()
        tables[name] = wide.reindex(columns=["env_steps", *skills])
    return tables


def metrics(params: DictConfig) -> Path:
    from benchmark.report import load_curves

    top = root(params)
    ev = OmegaConf.to_object(section(params, "evaluate", EvaluateConfig))
    results, data = Path(params.results_dir), Path(params.data_dir)
    summary_path = results / "summary.csv"
    if not summary_path.exists():
        raise ConfigError(f"{summary_path} does not exist: run the aggregate stage first "
                          "(`dvc repro aggregate`, or `python -m benchmark.aggregate`)")
    summary = pd.read_csv(summary_path)
    if set(summary["profile"]) != {top.profile}:
        raise ConfigError(f"{summary_path} holds profile(s) {sorted(set(summary['profile']))}, the params "
                          f"say {top.profile!r}: rerun the aggregate stage")
    reward_models = {}
    for method in top.methods:
        spec = method_spec(method)
        entry = {"label": spec.label, "tasks": task_metrics(summary, method),
                 "evaluate": {"wall_s": evaluate_wall_s(data / ev.out_dir / method)},
                 "fit": fit_metrics(data / ev.fit_dir / method)}
        write_json(results / METRICS_DIR / f"{method}.json", entry)
        if spec.reward_models:  # the method's own folder of per-skill reward models (its conf/method file)
            reward_models[method] = reward_metrics(Path(spec.reward_models.format(data_dir=top.data_dir)),
                                                   list(top.skills))
    write_json(results / METRICS_DIR / "reward_models.json", reward_models)

    cfg = report_config(params)
    for method in cfg.curve_methods:  # its files, header only without curves: dvc.yaml's plots name them
        curves = load_curves(curves_pattern(cfg, params.data_dir, method))
        for name, table in curve_tables(curves, list(top.skills)).items():
            write_csv(results / PLOTS_DIR / f"{name}_{method}.csv", table)
    scores = summary.assign(n=summary["n_seeds"])[["task", "method", "mean", "stderr", "n"]]
    scores.insert(0, "task_method", scores["task"] + " | " + scores["method"])  # one bar label per row
    write_csv(results / PLOTS_DIR / "task_scores.csv", scores)
    log.info("wrote %s/{%s,%s}", results, METRICS_DIR, PLOTS_DIR)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    stage_main(metrics, __doc__.split("\n")[0], argv)


if __name__ == "__main__":
    main()
