"""MaestroMotif evaluation env steps/s through benchmark.evaluate (the one play loop), against references
measured in the same run: the random method through the same loop, and MaestroMotif as it was before (one
program call per env, torch's default thread count). The batching of the program calls alone is measured
paired: two identical sets of envs stepped in lockstep with the same actions, one with step_batch, one env
after another, their turns alternating, so both see the same load.

The network is the real skill network at its random initialisation (the same compute as a trained one);
the program is an LLM-written stand-in, so it runs in the sandbox as codegen's programs do. Target (issue
#18): >= 500 env steps/s on 2 cores. Nothing here asserts on time: the figures go to extra_info, the log
and results/bench.json (tests/benchmarks/conftest.py). 25-85 s on 2 cores (the old settings' run slows most
under load).
    .venv/bin/python -m pytest tests/benchmarks/test_eval_speed.py --benchmark-only -s
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from benchmark import config, evaluate
from benchmark.env import make
from benchmark.fit import fit
from benchmark.method import Policy
from maestromotif.options.program import Program, reference_program
from maestromotif.options.wrapper import OptionsWrapper, step_batch
from maestromotif.rl.obs import PolicyObservation
from maestromotif.rl.policy import SkillPolicy
from tests.integration.test_evaluation_speed_paths import write_llm_program
from tests.integration.test_train_support import untrained_skill_run

TASK, ENVS, EPISODES, CAP = "gnomish", 8, 24, 300
ROUNDS = 3            # interleaved; the best round counts (the least disturbed by other jobs)
BEFORE_EPISODES = 4   # the old configuration ran at 15-75 steps/s under load: a few hundred steps suffice
PAIRED_STEPS = 600    # batch steps of the paired batching measurement
TARGET = 500
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval_speed")
    params = config.compose("ci", ["methods=[maestromotif,random]", f"tasks=[{TASK}]", "skill_seeds=[0]",
                                   "seeds=[0]", f"data_dir={tmp}/data", f"evaluate.episodes={EPISODES}",
                                   f"evaluate.num_envs={ENVS}", f"evaluate.max_episode_steps={CAP}",
                                   "evaluate.device=cpu"])
    untrained_skill_run(params, 0)
    write_llm_program(tmp / "data", TASK)
    fit("random", 0, params)
    path = tmp / "params.yaml"
    config.write_params(params, path)
    return params, path


def run_once(method: str, params, code_seed: int | None) -> dict:
    """One fresh evaluation (its folder removed first, so nothing resumes): steps, play time, call time."""
    cfg = evaluate.EvaluateConfig(**params.evaluate)
    shutil.rmtree(evaluate.output_dir(params, cfg, method, TASK, 0, code_seed), ignore_errors=True)
    start = time.perf_counter()
    out = evaluate.evaluate(method, TASK, 0, params, progress=False, code_seed=code_seed)
    wall = time.perf_counter() - start
    this = json.loads((out / "summary.json").read_text())["this_run"]
    return {"steps": this["env_steps"], "play_s": this["seconds"], "wall_s": wall}


def best(runs: list[dict], seconds: str) -> float:
    return max(r["steps"] / r[seconds] for r in runs)


def cli_rate(params_path: Path, params) -> float:
    """Steps/s of the whole `python -m benchmark.evaluate` process: imports, loading and playing."""
    cfg = evaluate.EvaluateConfig(**params.evaluate)
    out = evaluate.output_dir(params, cfg, "maestromotif", TASK, 0, 0)
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "benchmark.evaluate", "--method", "maestromotif", "--task", TASK,
                    "--seed", "0", "--code-seed", "0", "--params", str(params_path), "--no-progress"],
                   cwd=REPO, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    return json.loads((out / "summary.json").read_text())["this_run"]["env_steps"] / seconds


def paired_env_side_us() -> tuple[float, float]:
    """Microseconds per env step of stepping the envs (game, wrappers, program calls; no network), with
    step_batch and with env.step one env after another, on identical envs fed the same actions."""
    program = Program(TASK, reference_program(TASK).source + "\n# sandboxed\n", "llm")

    def envs():
        return [PolicyObservation(OptionsWrapper(make(task=TASK, seed=s, max_episode_steps=CAP), program,
                                                 seed=s), "rgb", keep_raw=True) for s in range(ENVS)]

    batched, alone = envs(), envs()
    for k in range(ENVS):
        batched[k].reset(seed=k)
        alone[k].reset(seed=k)
    rng = np.random.default_rng(0)
    seconds = [0.0, 0.0]
    for t in range(PAIRED_STEPS):
        actions = [int(a) for a in rng.integers(0, 28, size=ENVS)]
        for which in ((0, 1) if t % 2 else (1, 0)):  # alternate who goes first
            start = time.perf_counter()
            results = (step_batch(batched, actions) if which == 0
                       else [env.step(a) for env, a in zip(alone, actions)])
            seconds[which] += time.perf_counter() - start
        for k, (_, _, terminated, truncated, _) in enumerate(results):
            if terminated or truncated:
                batched[k].reset(seed=1000 + t * ENVS + k)
                alone[k].reset(seed=1000 + t * ENVS + k)
    for env in batched + alone:
        env.close()
    return tuple(s / (PAIRED_STEPS * ENVS) * 1e6 for s in seconds)


def test_maestromotif_evaluation_steps_per_second(benchmark, setup, monkeypatch, bench_summary):
    params, params_path = setup
    before = config.compose("ci", [f"{k}={v}" for k, v in {
        "methods": "[maestromotif]", "tasks": f"[{TASK}]", "skill_seeds": "[0]", "data_dir": params.data_dir,
        "evaluate.episodes": BEFORE_EPISODES, "evaluate.num_envs": ENVS, "evaluate.max_episode_steps": CAP,
        "evaluate.device": "cpu", "evaluate.torch_threads": 0}.items()])
    runs: dict[str, list[dict]] = {"random": [], "maestromotif": [], "before": []}

    def measure():
        for _ in range(ROUNDS):
            runs["random"].append(run_once("random", params, None))
            runs["maestromotif"].append(run_once("maestromotif", params, 0))
        with monkeypatch.context() as m:  # the old path: one program call per env, torch's default threads
            m.setattr(SkillPolicy, "step_envs", Policy.step_envs)
            runs["before"].append(run_once("maestromotif", before, 0))
        return cli_rate(params_path, params), paired_env_side_us()

    cli, (batched_us, alone_us) = benchmark.pedantic(measure, rounds=1, iterations=1)
    assert all(r["steps"] > 0 for rs in runs.values() for r in rs)
    ours, rand, old = (best(runs[k], "play_s") for k in ("maestromotif", "random", "before"))
    figures = {
        "task": TASK, "num_envs": ENVS, "episodes": EPISODES, "max_episode_steps": CAP,
        "env_steps": runs["maestromotif"][0]["steps"], "program": "LLM-written stand-in (sandboxed)",
        "maestromotif_steps_per_s": round(ours, 1),
        "maestromotif_incl_startup_steps_per_s": round(best(runs["maestromotif"], "wall_s"), 1),
        "maestromotif_cli_process_steps_per_s": round(cli, 1),
        "random_steps_per_s": round(rand, 1), "ratio_to_random": round(ours / rand, 3),
        "before_steps_per_s": round(old, 1), "before_env_steps": runs["before"][0]["steps"],
        "speedup_vs_before": round(ours / old, 2), "target_steps_per_s": TARGET,
        "env_side_us_per_step_batched": round(batched_us, 1),
        "env_side_us_per_step_one_call_per_env": round(alone_us, 1),
        "env_side_batching_ratio": round(alone_us / batched_us, 2),
    }
    benchmark.extra_info.update(figures)
    bench_summary.record("maestromotif_evaluation", figures)
    loading = figures["maestromotif_incl_startup_steps_per_s"]
    print(f"\nMaestroMotif evaluation ({ENVS} envs, {TASK}): {ours:.0f} steps/s playing, {loading:.0f} incl. "
          f"loading, {cli:.0f} for the whole CLI process; random {rand:.0f} (ratio {ours / rand:.2f}); "
          f"before {old:.0f} (x{ours / old:.1f}); target {TARGET}. Env side per step: batched "
          f"{batched_us:.0f} us, one program call per env {alone_us:.0f} us (x{alone_us / batched_us:.2f})")
