"""Stage `evaluate`: play a method on its tasks for its runs, and record every episode.

    python -m benchmark.evaluate --method random --task gnomish --seed 0
    python -m benchmark.evaluate --method maestromotif --task gnomish --seed 0 --code-seed 1
    python -m benchmark.evaluate --method random --task all      # every task x every run, in one process

The DVC stages use the last form, one stage per method: the lock then holds a handful of evaluate entries
instead of one per (method, task, seed), and a method's tasks share one process (its imports, its LLM).
Records stay one folder per (task, run), so resuming and the aggregate read them exactly as before.

A run is a fit seed (`seeds`; MaestroMotif: its skill seed, from `skill_seeds`) and, for a method whose
`benchmark.code_seeds` is true (MaestroMotif), a code seed (`code_seeds`): the paper deploys each of its 3
skill networks with each of 3 code seeds' task programs, 9 runs. Writes
data/evaluate/<method>/<task>/seed<S>/ (code-seeded runs: .../seed<S>_code<C>/):
  episodes.jsonl   one record per finished episode (success, value, steps, return, score, depth, end reason;
                   code-seeded runs add skill_seed and code_seed; `policy_provenance` names what the
                   policy ran beyond its artefact, e.g. MaestroMotif's program over skills)
  provenance.json  who/what/where: method, task, seed, profile, LLM model ids, NLE version, git describe, ...
  summary.json     the run's mean task value, success rate and throughput

Repeatable: episode k of (task, seed) plays the NetHack game of seed derive_seed(root_seed, "evaluate",
task, seed, k), whatever the method and code seed, so every method faces the same games (and the code seeds
of one network differ only by their programs). Resumable: records are appended as episodes finish; a rerun
skips finished episodes, and drops records written under other settings (their `run_key` differs), so a
changed config or program never pools with old numbers.

Size (~410 lines, above the suite's ~400): the method registry (conf/method lookup, MethodSpec, budgets)
and the evaluation's run bookkeeping; the play loop itself is benchmark/playback.py.
"""
from __future__ import annotations

import argparse
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
from omegaconf import DictConfig, OmegaConf

from benchmark import provenance
from benchmark.config import CONF_DIR, ConfigError, did_you_mean, load_params, root, section
from benchmark.env import EnvConfig, make
from benchmark.io import write_json
from benchmark.logs import setup_logging
from benchmark.method import Method
from benchmark.playback import EPISODES_FILE, finished_records, play, play_and_record  # noqa: F401  re-exported
from benchmark.seeding import derive_seed, episode_seed

log = logging.getLogger(__name__)



@dataclass
class EvaluateConfig:
    """The `evaluate` section of the params (values: conf/evaluate/default.yaml, the paper's)."""

    episodes: int  # per method x task x seed
    num_envs: int  # envs stepped together; the policy acts on the whole batch at once
    max_episode_steps: int  # episode cap
    out_dir: str  # under data_dir
    # under data_dir: where methods' fit() artefacts live (see method_artefact)
    fit_dir: str
    device: str  # trained networks: auto (cuda if there is a GPU, else cpu) | cpu | cuda:N
    torch_threads: int  # torch threads while playing (0: torch's default)


@dataclass
class MethodSpec:
    """The optional `benchmark:` block of conf/method/<name>.yaml: how tables and figures treat the method."""

    label: str = ""                 # display name (default: the file name)
    paper_label: str | None = None  # its row in benchmark/paper_results.csv, if the paper reports it
    group: str = "reference"        # zero-shot | task-specific | score | reference
    # fit() output; per-task methods add /<task>
    artefact: str | None = "{data_dir}/{fit_dir}/{method}/seed{seed}"
    # params sections (e.g. coder_llm) whose `model` it uses
    llm_models: list[str] = field(default_factory=list)
    fit_seeds: str = "seeds"        # the params list its fit() runs for: seeds, or skill_seeds (MaestroMotif)
    # True: each fit seed is deployed once per params `code_seeds` entry (the constructor gets `code_seed`)
    code_seeds: bool = False
    # training budget, shown in the tables' column headers: dotted keys of its env steps per seed, looked up
    # in turn in the params and then in this method file (null: the method does not train), and whether that
    # budget is per run (one fit plays every task) or per task (one fit per task)
    budget: list[str] = field(default_factory=list)
    budget_scope: str = "run"
    # its per-skill reward models, <dir>/<skill>/metrics.json ({data_dir}); the metrics stage gathers their
    # held-out accuracy. None: it has none
    reward_models: str | None = None


FIT_SEED_LISTS = ("seeds", "skill_seeds")
BUDGET_SCOPES = ("run", "task")


def budget_text(name: str, params) -> str:
    """'300k steps' / '43k steps per task' / 'no training' for method `name`: the first of its spec's
    `budget` keys that the params set, else that the method file sets (the paper profile keeps the file's
    sizes)."""
    spec = method_spec(name)
    if not spec.budget:
        return "no training"
    steps = next((v for v in (OmegaConf.select(params, k) for k in spec.budget) if v is not None), None)
    if steps is None:
        conf = OmegaConf.load(method_config_path(name))
        steps = next((v for v in (OmegaConf.select(conf, k) for k in spec.budget) if v is not None), None)
    if steps is None:
        raise ConfigError(f"conf/method/{name}.yaml: none of the benchmark.budget keys {spec.budget} is set "
                          "in the params or in that file; fix the keys")
    steps = int(steps)
    text = next((f"{steps / scale:.3g}{unit} steps" for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k"))
                 if steps >= scale), f"{steps} steps")
    return text + (" per task" if spec.budget_scope == "task" else "")




@dataclass(frozen=True)
class Run:
    """One evaluated run of a method: its fit seed, and its code seed for a code-seeded method."""

    seed: int
    code_seed: int | None = None

    @property
    def name(self) -> str:
        """Its folder under data/evaluate/<method>/<task>/ and its row key in the results."""
        return f"seed{self.seed}" + ("" if self.code_seed is None else f"_code{self.code_seed}")


def method_runs(spec: MethodSpec, top) -> list[Run]:
    """Every run of a method under the params: its fit seeds, crossed with the code seeds if it has them."""
    seeds = list(getattr(top, spec.fit_seeds))
    if spec.code_seeds:
        return [Run(s, c) for s in seeds for c in top.code_seeds]
    return [Run(s) for s in seeds]


METHOD_DIRS_ENV = "MM_METHOD_DIRS"  # extra folders of <name>.yaml method files (os.pathsep-separated)


def method_dirs() -> list[Path]:
    """Where method files are looked up: $MM_METHOD_DIRS first (methods kept outside the repo), then
    conf/method."""
    extra = [Path(d) for d in os.environ.get(METHOD_DIRS_ENV, "").split(os.pathsep) if d]
    return [*extra, CONF_DIR / "method"]


def method_config_path(name: str) -> Path:
    for folder in method_dirs():
        if (folder / f"{name}.yaml").is_file():
            return folder / f"{name}.yaml"
    known = sorted({p.stem for folder in method_dirs() for p in folder.glob("*.yaml")})
    raise ConfigError(f"no method {name!r}{did_you_mean(name, known)}: conf/method/{name}.yaml does not "
                      f"exist, nor {name}.yaml in ${METHOD_DIRS_ENV} (known: {known})")


def method_spec(name: str) -> MethodSpec:
    raw = OmegaConf.load(method_config_path(name)).get("benchmark", {}) or {}
    try:
        spec = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(MethodSpec), raw))
    except Exception as e:  # omegaconf validation errors
        raise ConfigError(f"bad 'benchmark:' block in conf/method/{name}.yaml: {e}") from e
    spec.label = spec.label or name
    if spec.fit_seeds not in FIT_SEED_LISTS:
        raise ConfigError(f"conf/method/{name}.yaml: benchmark.fit_seeds must be one of {FIT_SEED_LISTS}, "
                          f"got {spec.fit_seeds!r}")
    if spec.budget_scope not in BUDGET_SCOPES:
        raise ConfigError(f"conf/method/{name}.yaml: benchmark.budget_scope must be one of {BUDGET_SCOPES}, "
                          f"got {spec.budget_scope!r}")
    return spec


def build_method(name: str, **overrides: Any) -> Method:
    """Instantiate conf/method/<name>.yaml (Hydra `_target_`): the method registry is the conf folder.
    `overrides` are constructor arguments on top of the file's (the evaluate stage's `code_seed`)."""
    from hydra.utils import instantiate

    conf = OmegaConf.load(method_config_path(name))
    conf.pop("benchmark", None)
    path = method_config_path(name)
    if "_target_" not in conf:
        raise ConfigError(f"{path} has no `_target_` naming the Method class")
    target = conf["_target_"]
    try:
        method = instantiate(conf, **overrides)
    except Exception as e:  # hydra wraps import and constructor errors in InstantiationException
        raise ConfigError(f"{path}: cannot build `_target_: {target}` ({type(e).__name__}: {e}). Fix "
                          "`_target_` to an importable Method class as module.Class (its module on the "
                          "Python path), or the constructor arguments in that file") from e
    if not isinstance(method, Method):
        raise ConfigError(f"{path} built {type(method).__name__}, not a benchmark.method.Method")
    return method


def resolve_device(name: str) -> str:
    """The torch device of an `evaluate.device` setting: "auto" is cuda when torch sees a GPU, else cpu."""
    import torch

    name = str(name).strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            raise ConfigError(f"evaluate.device={name} but torch sees no CUDA GPU here: set "
                              "evaluate.device=auto (or cpu)")
        return name
    raise ConfigError(f"evaluate.device={name!r}: choose auto, cpu, cuda or cuda:<index>")


def policy_device(params: Any) -> str:
    """Where a trained policy's network runs during evaluation: the params' `evaluate.device`, resolved."""
    if params is None or "evaluate" not in params:
        return resolve_device(EvaluateConfig.device)
    return resolve_device(section(params, "evaluate", EvaluateConfig).device)


def method_artefact(spec: MethodSpec, method: Method, name: str, task: str, seed: int, params: DictConfig,
                    cfg: EvaluateConfig) -> Path | None:
    if spec.artefact is None:
        return None
    path = Path(spec.artefact.format(data_dir=params.data_dir, fit_dir=cfg.fit_dir, method=name, seed=seed,
                                     task=task))
    return path / task if method.per_task and "{task}" not in spec.artefact else path


def task_metadata(task: str) -> dict[str, Any]:
    """Title, category and metric of a task from conf/task/<task>.yaml (via benchmark.tasks)."""
    from benchmark.tasks import load_task_config

    tc = load_task_config(task)
    get = (lambda k: tc.get(k)) if isinstance(tc, dict) else (lambda k: getattr(tc, k, None))
    return {k: get(k) for k in ("name", "title", "category", "metric")}


def output_dir(params: DictConfig, cfg: EvaluateConfig, method: str, task: str, seed: int,
               code_seed: int | None = None) -> Path:
    return Path(params.data_dir) / cfg.out_dir / method / task / Run(seed, code_seed).name


def check_run(spec: MethodSpec, name: str, top, code_seed: int | None) -> None:
    """A code-seeded method needs a code seed of the params' `code_seeds`; any other method takes none."""
    if spec.code_seeds and code_seed is None:
        raise ConfigError(f"{name} is deployed once per code seed (benchmark.code_seeds in "
                          f"conf/method/{name}.yaml): pass --code-seed, one of the params code_seeds "
                          f"{list(top.code_seeds)}")
    if not spec.code_seeds and code_seed is not None:
        raise ConfigError(f"{name} has no code seeds (benchmark.code_seeds is false in "
                          f"conf/method/{name}.yaml): drop --code-seed")
    if code_seed is not None and code_seed not in top.code_seeds:
        raise ConfigError(f"code seed {code_seed} is not one of the params code_seeds {list(top.code_seeds)} "
                          "(codegen.code_seeds): codegen wrote no programs for it")


def evaluate(method_name: str, task: str, seed: int, params: DictConfig,
             make_env: Callable[..., gym.Env] = make,
             progress: bool = True, code_seed: int | None = None) -> Path:
    """Evaluate `method_name` on `task` for fit seed `seed` (and `code_seed`, for a code-seeded method) under
    `params`; return the output folder."""
    top = root(params)
    cfg: EvaluateConfig = OmegaConf.to_object(section(params, "evaluate", EvaluateConfig))
    env_cfg: EnvConfig = OmegaConf.to_object(section(params, "env", EnvConfig))
    if task not in top.tasks:
        raise ConfigError(f"task {task!r} is not in the params' task list {list(top.tasks)}"
                          f"{did_you_mean(task, list(top.tasks))}")
    if cfg.episodes <= 0 or cfg.num_envs <= 0 or cfg.max_episode_steps <= 0:
        raise ConfigError(f"evaluate.episodes, num_envs and max_episode_steps must be positive, got {cfg}")
    if cfg.torch_threads < 0:
        raise ConfigError(f"evaluate.torch_threads={cfg.torch_threads}: use a positive count, or 0 for "
                          "torch's default")
    env_cfg.max_episode_steps = cfg.max_episode_steps

    spec = method_spec(method_name)
    check_run(spec, method_name, top, code_seed)
    method = build_method(method_name, **({} if code_seed is None else {"code_seed": code_seed}))
    artefact = method_artefact(spec, method, method_name, task, seed, params, cfg)
    if artefact is not None and not artefact.exists():
        raise FileNotFoundError(
            f"{method_name} needs its fit() artefact at {artefact}; run its training stage first "
            f"(`dvc repro` does), or set benchmark.artefact: null in conf/method/{method_name}.yaml"
        )
    llm_models = {key: str(params[key].get("model")) for key in spec.llm_models if key in params}
    method_conf = OmegaConf.to_container(OmegaConf.load(method_config_path(method_name)))
    out = output_dir(params, cfg, method_name, task, seed, code_seed)
    policy = method.policy(artefact, task, params)
    ran = policy.provenance()  # e.g. MaestroMotif's program over skills: path, sha256, llm or reference

    # Settings that must match before records from two runs may sit in one file.
    keyed = {
        "method": method_name, "method_conf": method_conf, "task": task, "seed": seed,
        "root_seed": top.root_seed, "profile": top.profile, "env": asdict(env_cfg),
        "artefact": provenance.tree_digest(artefact), "llm_models": llm_models,
    }
    if code_seed is not None:
        keyed["code_seed"] = code_seed
    if ran:  # a regenerated program is a new run, never pooled with the old one's episodes
        keyed["policy_provenance"] = ran
    run_key = provenance.fingerprint(keyed)

    def seeds(k: int) -> int:  # independent of the method: every method plays the same games
        return episode_seed(top.root_seed, "evaluate", task, seed, episode=k)

    meta = {"method": method_name, "method_label": spec.label, "task": task, "seed": seed}
    if code_seed is not None:
        meta.update(skill_seed=seed, code_seed=code_seed)
    try:
        meta.update({f"task_{k}": v for k, v in task_metadata(task).items() if k != "name"})
    except (ImportError, FileNotFoundError, KeyError) as e:
        log.warning("no task metadata for %s (%s); records still carry category and metric", task, e)
    prov = provenance.record(
        stage="evaluate", profile=top.profile, root_seed=top.root_seed, **meta, run_key=run_key,
        llm_models=llm_models, artefact=str(artefact) if artefact else None,
        artefact_digest=provenance.tree_digest(artefact), episodes_requested=cfg.episodes,
        num_envs=cfg.num_envs, max_episode_steps=cfg.max_episode_steps,
        episode_seeds={"derivation": "derive_seed(root_seed, 'evaluate', task, seed, episode)",
                       "first": seeds(0)},
        policy_provenance=ran,
        policy_device=str(getattr(policy, "device", "cpu")),  # recorded, not keyed: a resume may move device
    )
    log.info("evaluate %s on %s, %s (%s profile): %d episodes in %s", method_name, task,
             Run(seed, code_seed).name, top.profile, cfg.episodes, out)

    # Policies with global RNG (torch sampling) repeat too; seeded by where this run starts, so a resume is
    # seeded.
    run_id = (seed,) if code_seed is None else (seed, "code", code_seed)
    extra = {"policy_provenance": ran} if ran else {}
    played = play_and_record(
        policy, lambda: make_env(task=task, cfg=env_cfg), cfg.episodes, cfg.num_envs, seeds,
        records_file=out / EPISODES_FILE, run_key=run_key, fields=meta,
        after={**extra, "profile": top.profile, "run_key": run_key}, progress=progress,
        threads=cfg.torch_threads,
        process_seed=lambda first: derive_seed(top.root_seed, "evaluate-policy", method_name, task, *run_id,
                                               first))
    steps, elapsed, records = played.steps, played.seconds, played.records
    if played.played:
        log.info("played %d episodes, %d env steps in %.1f s: %.0f steps/s, %.2f s/episode",
                 played.played, steps, elapsed, steps / max(elapsed, 1e-9), elapsed / played.played)

    write_json(out / "provenance.json", {**prov, "episodes": len(records)})
    write_json(out / "summary.json", summarise(records, {**meta, "profile": top.profile},
                                               steps=steps, seconds=elapsed))
    return out


def evaluate_method(method_name: str, params: DictConfig, tasks: Sequence[str] | None = None,
                    seeds: Sequence[int] | None = None, code_seeds: Sequence[int] | None = None,
                    make_env: Callable[..., gym.Env] = make, progress: bool = True) -> list[Path]:
    """Evaluate `method_name` on each of `tasks` (default: the params' tasks) for each of its runs (default:
    every fit seed, crossed with every code seed for a code-seeded method; `seeds`/`code_seeds` narrow
    them), one after another in this process; return the output folders."""
    top = root(params)
    spec = method_spec(method_name)
    runs = [r for r in method_runs(spec, top)
            if (seeds is None or r.seed in seeds) and (code_seeds is None or r.code_seed in code_seeds)]
    if not runs:
        raise ConfigError(f"no run of {method_name} matches seeds {seeds} and code seeds {code_seeds}: its "
                          f"runs under the params are {[r.name for r in method_runs(spec, top)]}")
    outs = []
    for task in list(tasks) if tasks is not None else list(top.tasks):
        for run in runs:
            outs.append(evaluate(method_name, task, run.seed, params, make_env=make_env, progress=progress,
                                 code_seed=run.code_seed))
    return outs


def summarise(records: list[dict], meta: dict, steps: int = 0, seconds: float = 0.0) -> dict:
    values = np.array([r["value"] for r in records], dtype=float)
    successes = [r["success"] for r in records if r["success"] is not None]
    return {
        **meta,
        "episodes": len(records),
        "value_mean": float(values.mean()) if len(values) else None,
        "success_rate": float(np.mean(successes)) if successes else None,
        "mean_steps": float(np.mean([r["steps"] for r in records])) if records else None,
        "end_reasons": {k: sum(r["end_reason"] == k for r in records)
                        for k in sorted({r["end_reason"] for r in records})},
        "this_run": {"env_steps": steps, "seconds": round(seconds, 3),
                     "steps_per_s": round(steps / seconds, 1) if seconds > 0 else None},
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", required=True, help="a conf/method/<name>.yaml name, e.g. random")
    parser.add_argument("--task", required=True, help="a task name from params.yaml `tasks`, or `all`")
    parser.add_argument("--seed", type=int, default=None,
                        help="fit seed: one of params.yaml `seeds` (MaestroMotif: of `skill_seeds`); with "
                             "--task all it may be left out: every run of the method")
    parser.add_argument("--code-seed", type=int, default=None,
                        help="code-seeded methods (MaestroMotif): which of `code_seeds` deploys its programs "
                             "(with --task all, left out: every code seed)")
    parser.add_argument("--params", default=None, help="params file (default: $MM_PARAMS or params.yaml)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params(args.params)
    if args.task == "all":
        outs = evaluate_method(args.method, params, seeds=None if args.seed is None else [args.seed],
                               code_seeds=None if args.code_seed is None else [args.code_seed],
                               progress=not args.no_progress)
        log.info("wrote %d evaluation folders of %s", len(outs), args.method)
        return
    if args.seed is None:
        parser.error("--seed is required with a single --task (or pass --task all)")
    out = evaluate(args.method, args.task, args.seed, params, progress=not args.no_progress,
                   code_seed=args.code_seed)
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
