"""Stage `collect`: roll out a behaviour policy in the paper's env and record every step.

    python -m maestromotif.data.collect            # reads params.yaml (MM_PARAMS overrides the path)

Writes `<data_dir>/observations/`: one parquet file per chunk of episodes (schema
`maestromotif.data.schema.OBSERVATION_SCHEMA`) and `meta.json`, written last, which lists the chunk
files and the provenance. Each chunk is written atomically, so a killed run resumes at the first
missing chunk; a chunk whose recorded settings differ from the current ones is redone.

Behaviour policy (`collect.behaviour`):
  - "random": uniform over the env's actions (the default; MaestroMotif's own data came from a
    trained Motif agent, see reference/method.md §1.3);
  - "package.module:factory": `factory(params, artefact, seed) -> benchmark.method.Policy`, e.g. a
    trained method's policy (`collect.behaviour_artefact` is passed through). Records get
    `collect.source` (default: the factory's name) as their source.
Episode e plays the NetHack game of seed derive_seed(root_seed, "collect", "episode", e), whichever
worker runs it, so the dataset does not depend on the number of workers.
"""
from __future__ import annotations

import importlib
import logging
import multiprocessing as mp
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.config import load_params, root, section
from benchmark.io import read_json, write_json
from benchmark.logs import setup_logging
from benchmark.method import Policy
from benchmark.seeding import derive_seed
from maestromotif.data.schema import (
    BL_DNUM, BL_TIME, OBSERVATION_SCHEMA, STAT_BLSTATS_INDEX, STATS, SchemaError, file_metadata, read_table,
    write_table,
)

log = logging.getLogger(__name__)
OUT_NAME = "observations"
META_FILE = "meta.json"


@dataclass
class CollectConfig:
    """The `collect` section of the params (conf/collect/default.yaml)."""

    episodes: int = 2000               # behaviour-policy episodes
    episodes_per_chunk: int = 50       # unit of resumption and of work per worker task
    max_steps_per_episode: int = 0     # 0: the env's own cap (10,000 steps)
    workers: int = 2                   # worker processes (1: run in this process)
    behaviour: str = "random"          # "random" or "package.module:factory" (see module docstring)
    behaviour_artefact: str | None = None
    source: str | None = None          # label of the records (default: "random" / the factory name)
    # Optional human data (Dungeons & Data) read through nle.dataset; see maestromotif.data.nld.
    nld_db: str | None = None          # sqlite file made by nle.dataset (nld.db.create + add_*_directory)
    nld_dataset: str | None = None     # dataset name inside that db
    nld_max_games: int = 0             # 0: every game of the dataset
    nld_subselect_sql: str | None = None  # e.g. "SELECT gameid FROM games WHERE role='Mon' AND race='Hum'"


class RandomPolicy(Policy):
    """Uniform over `num_actions`; seeded, so a chunk of episodes replays exactly."""

    def __init__(self, num_actions: int, seed: int):
        self.num_actions = num_actions
        self.rng = np.random.default_rng(seed)

    def initial_state(self, num_envs: int) -> Any:
        return None

    def act(self, obs, state, episode_start):
        n = len(episode_start)
        return self.rng.integers(self.num_actions, size=n), state


def make_behaviour(spec: str, num_actions: int, seed: int, params: Any = None, artefact: str | None = None) -> Policy:
    """The behaviour policy named by `spec` (see module docstring)."""
    if spec == "random":
        return RandomPolicy(num_actions, seed)
    if ":" not in spec:
        raise ValueError(f"collect.behaviour={spec!r}: use 'random' or 'package.module:factory'")
    module_name, attr = spec.split(":", 1)
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"collect.behaviour={spec!r} cannot be imported: {e}") from e
    policy = factory(params, artefact, seed)
    if not isinstance(policy, Policy):
        raise TypeError(f"collect.behaviour={spec!r} returned {type(policy).__name__}, not a benchmark.method.Policy")
    return policy


def source_name(cfg: CollectConfig) -> str:
    if cfg.source:
        return cfg.source
    return "random" if cfg.behaviour == "random" else cfg.behaviour.split(":", 1)[1]


def record_of(obs: dict, prev_message: str, episode_id: int, step: int, source: str) -> dict:
    """One observation record from an NLE observation (see schema.OBSERVATION_SCHEMA)."""
    from benchmark.env import decode_message

    bl = obs["blstats"]
    rec = {"episode_id": episode_id, "step": step, "source": source, "message": decode_message(obs["message"]),
           "prev_message": prev_message}
    rec.update({s: int(bl[STAT_BLSTATS_INDEX[s]]) for s in STATS})
    rec["dungeon"] = int(bl[BL_DNUM])
    rec["turn"] = int(bl[BL_TIME])
    return rec


def rollout_episode(env, policy: Policy, episode_id: int, game_seed: int, source: str, max_steps: int) -> list[dict]:
    """Play one episode with `policy` (batch of one) and return its records, reset observation included."""
    obs, _ = env.reset(seed=game_seed)
    state = policy.initial_state(1)
    records = [record_of(obs, "", episode_id, 0, source)]
    start = np.array([True])
    for step in range(1, max_steps + 1):
        batch = {k: np.asarray(v)[None] for k, v in obs.items()}
        actions, state = policy.act(batch, state, start)
        start = np.array([False])
        obs, _, terminated, truncated, _ = env.step(int(actions[0]))
        if not obs["blstats"].any():  # NLE's blank observation after the game ended: not a game state
            break
        records.append(record_of(obs, records[-1]["message"], episode_id, step, source))
        if terminated or truncated:
            break
    return records


def chunk_plan(cfg: CollectConfig, root_seed: int, env: dict | None = None) -> list[dict]:
    """Every chunk's episodes and settings; a chunk file is reused only if its settings match these.

    env: the params' `env` section as a dict (default: benchmark.env.EnvConfig's defaults). It is part
    of each chunk's settings, so chunks played with other NetHack options are played again.
    """
    from dataclasses import asdict

    from benchmark.env import EnvConfig

    env = dict(env) if env is not None else asdict(EnvConfig())
    plan = []
    for c, first in enumerate(range(0, cfg.episodes, cfg.episodes_per_chunk)):
        episodes = list(range(first, min(first + cfg.episodes_per_chunk, cfg.episodes)))
        plan.append({
            "chunk": c,
            "file": f"chunk_{c:05d}.parquet",
            "episodes": episodes,
            "game_seeds": [derive_seed(root_seed, "collect", "episode", e) for e in episodes],
            "policy_seed": derive_seed(root_seed, "collect", "policy", c),
            "behaviour": cfg.behaviour,
            "behaviour_artefact": cfg.behaviour_artefact,
            "source": source_name(cfg),
            "max_steps_per_episode": cfg.max_steps_per_episode,
            "root_seed": root_seed,
            "env": env,
        })
    return plan


def _collect_chunk(task: dict) -> dict:
    """Worker: roll out one chunk's episodes and write its parquet file atomically."""
    from benchmark.env import EnvConfig, make

    plan, out_dir = task["plan"], Path(task["out_dir"])
    t0 = time.perf_counter()
    env = make(cfg=EnvConfig(**plan["env"]))
    try:
        max_steps = plan["max_steps_per_episode"] or env.unwrapped._max_episode_steps
        policy = make_behaviour(plan["behaviour"], env.action_space.n, plan["policy_seed"],
                                task.get("params"), plan["behaviour_artefact"])
        rows: list[dict] = []
        for episode_id, game_seed in zip(plan["episodes"], plan["game_seeds"]):
            rows += rollout_episode(env, policy, episode_id, game_seed, plan["source"], max_steps)
    finally:
        env.close()
    write_table(pd.DataFrame(rows), out_dir / plan["file"], OBSERVATION_SCHEMA, metadata=plan)
    return {"chunk": plan["chunk"], "steps": len(rows), "seconds": time.perf_counter() - t0}


def chunk_is_done(path: Path, plan: dict) -> bool:
    if not path.exists():
        return False
    try:
        return file_metadata(path) == plan
    except Exception:  # unreadable or torn file: redo it
        return False


def collect(params, out_dir: Path | None = None) -> Path:
    """Run the stage for `params` (a DictConfig, as load_params returns); return the output directory."""
    from tqdm import tqdm

    top = root(params)
    cfg: CollectConfig = section(params, "collect", CollectConfig)
    if cfg.episodes < 0 or cfg.episodes_per_chunk <= 0 or cfg.workers <= 0 or cfg.max_steps_per_episode < 0:
        raise ValueError(f"collect: episodes >= 0, episodes_per_chunk > 0, workers > 0 and "
                         f"max_steps_per_episode >= 0 are required, got {cfg}")
    out_dir = Path(out_dir or Path(top.data_dir) / OUT_NAME)
    out_dir.mkdir(parents=True, exist_ok=True)
    from benchmark.env import EnvConfig

    env = _plain(section(params, "env", EnvConfig)) if "env" in params else None
    plan = [dict(p) for p in chunk_plan(cfg, top.root_seed, env)]
    todo = [p for p in plan if not chunk_is_done(out_dir / p["file"], p)]
    log.info("collect: %d episodes in %d chunks, %d to do (%s behaviour, %d workers) -> %s",
             cfg.episodes, len(plan), len(todo), cfg.behaviour, cfg.workers, out_dir)
    tasks = [{"plan": p, "out_dir": str(out_dir), "params": None} for p in todo]
    t0, steps = time.perf_counter(), 0
    with tqdm(total=len(tasks), desc="collect chunks", unit="chunk") as bar:
        if cfg.workers == 1 or len(tasks) <= 1:
            results = map(_collect_chunk, tasks)
            for r in results:
                steps += r["steps"]
                bar.update(1)
        else:
            # spawn: NLE and the libraries it loads are not fork-safe once initialised
            with mp.get_context("spawn").Pool(min(cfg.workers, len(tasks))) as pool:
                for r in pool.imap_unordered(_collect_chunk, tasks):
                    steps += r["steps"]
                    bar.update(1)
                    bar.set_postfix(steps_per_s=f"{steps / (time.perf_counter() - t0):.0f}")
    elapsed = time.perf_counter() - t0
    if tasks:
        log.info("collect: %d steps in %.1f s (%.0f steps/s)", steps, elapsed, steps / max(elapsed, 1e-9))
    files = [p["file"] for p in plan]
    if cfg.nld_db or cfg.nld_dataset:
        from maestromotif.data.nld import import_nld_chunks

        files += import_nld_chunks(cfg, out_dir)
    total = sum(_num_rows(out_dir / f) for f in files)
    import nle

    write_json(out_dir / META_FILE, {
        "files": files, "rows": total, "profile": top.profile, "root_seed": top.root_seed,
        "collect": _plain(cfg), "nle_version": nle.__version__,
        "source": source_name(cfg),
    })
    log.info("collect: %d records in %d files", total, len(files))
    return out_dir


def _plain(cfg) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def _num_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def load_observations(obs_dir: str | Path) -> pd.DataFrame:
    """Every record the collect stage wrote in `obs_dir`, schema-checked."""
    obs_dir = Path(obs_dir)
    meta_path = obs_dir / META_FILE
    if not meta_path.exists():
        raise SchemaError(f"{meta_path} is missing: the collect stage has not finished; run "
                          "`python -m maestromotif.data.collect`")
    meta = read_json(meta_path)
    return read_table([obs_dir / f for f in meta["files"]], OBSERVATION_SCHEMA, "observation records")


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", default=None, help="params file (default: params.yaml or $MM_PARAMS)")
    parser.add_argument("--out", default=None, help="output directory (default: <data_dir>/observations)")
    args = parser.parse_args(argv)
    setup_logging()
    collect(load_params(args.params), args.out)


if __name__ == "__main__":
    main()
