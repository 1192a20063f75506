"""Stage `fit`: run a method's own `fit()` for one seed (every task, for per-task methods).

    python -m benchmark.fit --method random --seed 0
    python -m benchmark.fit --method motif --seed 0 --task gnomish     (per-task methods: one task)

Writes data/fit/<method>/seed<S>/ (per-task methods: .../seed<S>/<task>/), the artefact that
`benchmark.evaluate` hands to `Method.policy`. Methods whose training is a pipeline of its own
(MaestroMotif: collect -> ... -> train_skills) write that folder from their last stage instead.
"""
from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig, OmegaConf

from benchmark import provenance
from benchmark.config import ConfigError, load_params, root, section
from benchmark.evaluate import EvaluateConfig, build_method, method_artefact, method_spec
from benchmark.io import write_json
from benchmark.jobs import gather
from benchmark.logs import setup_logging
from benchmark.seeding import derive_seed, seed_everything

log = logging.getLogger(__name__)


def fit(method_name: str, seed: int, params: DictConfig, task: str | None = None,
        jobs: int | None = None) -> Path:
    """Fit `method_name` for `seed` (per-task methods: `task`, or every task of the params, `jobs` at a time;
    default: the params' fit_jobs)."""
    top = root(params)
    jobs = top.fit_jobs if jobs is None else jobs
    if jobs < 1:
        raise ConfigError(f"fit_jobs must be >= 1, got {jobs}")
    cfg: EvaluateConfig = OmegaConf.to_object(section(params, "evaluate", EvaluateConfig))
    spec, method = method_spec(method_name), build_method(method_name)
    if task is not None and task not in top.tasks:
        raise ConfigError(f"--task {task!r} is not in the params' task list {list(top.tasks)}")
    if not method.per_task:
        task = None  # one artefact for all tasks: --task (from a method x task matrix) changes nothing
    tasks = [task] if task is not None else list(top.tasks) if method.per_task else [None]
    if jobs > 1 and len(tasks) > 1:
        return _fit_tasks_in_parallel(method_name, seed, params, tasks, jobs)
    for task in tasks:
        out = method_artefact(spec, method, method_name, task or "", seed, params, cfg)
        if out is None:
            log.info("%s has no fit artefact (benchmark.artefact: null); nothing to do", method_name)
            return Path()
        if (out / "provenance.json").exists():
            log.info("%s exists; skipping (delete it to refit)", out)
            continue
        seed_everything(derive_seed(top.root_seed, "fit", method_name, seed, task or ""))
        # fit() writes into a staging folder that is renamed when it returns: no half artefact survives.
        # Its name is fixed, not random: trainers record their run folder (sample-factory's config.json), so
        # a random name made two identical fits differ in content and digest; and a killed fit's leftover
        # (outside DVC's output for the methods fitted once for all tasks) is found and removed here.
        tmp = out.parent / f".{out.name}.partial"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        try:
            method.fit(params, tmp, seed, task)
            write_json(tmp / "provenance.json", provenance.record(
                stage="fit", profile=top.profile, root_seed=top.root_seed, method=method_name, task=task,
                seed=seed))
            if out.exists():
                shutil.rmtree(out)  # a half artefact without provenance.json, from an interrupted run
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("fitted %s (seed %d%s) -> %s", method_name, seed, f", task {task}" if task else "", out)
    return out.parent if method.per_task and task is None else out


def _fit_tasks_in_parallel(method_name: str, seed: int, params: DictConfig, tasks: list, jobs: int) -> Path:
    """Each task's fit in its own fresh process (its own global seeding), `jobs` at a time. A failed task
    does not stop the others: every finished artefact is kept, and the failures are raised together."""
    ctx = multiprocessing.get_context("spawn")
    log.info("%s seed %d: fitting %d tasks, %d at a time", method_name, seed, len(tasks), jobs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=setup_logging) as pool:
        done = gather([(t, pool.submit(fit, method_name, seed, params, t, 1)) for t in tasks],
                      f"{method_name} seed {seed}", "task fits")
    return done[0].parent  # the seed's folder, as the one-at-a-time loop returns


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", required=True)
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--task", default=None,
                        help="per-task methods: fit this task only (default: every task)")
    parser.add_argument("--params", default=None)
    parser.add_argument("--jobs", type=int, default=None,
                        help="per-task methods: tasks trained at once (default: the params' fit_jobs)")
    args = parser.parse_args(argv)
    setup_logging()
    fit(args.method, args.seed, load_params(args.params), task=args.task, jobs=args.jobs)


if __name__ == "__main__":
    main()
