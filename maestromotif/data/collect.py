"""Stage `collect`: record every step of a configured mix of behaviour sources in the paper's env.

    python -m maestromotif.data.collect            # reads params.yaml (MM_PARAMS overrides the path)

`collect.sources` is a list; each entry has a `kind` and writes records tagged with its `label` (the
`source` column; defaults below):
  - random      uniform over the env's actions; `episodes`.                              label "random"
  - scripted    benchmark.scripted's reference agent, playing the behaviour of the small
                variant `task` (default gnomish_small: find and take the down stairs), taking a
                uniform random action instead with probability `epsilon`; `episodes`; `levels`: full
                (the normal dungeon, default) or variant (the task's own first levels, as
                benchmark.variants installs them, deeper levels the real game; no tracker, so an
                episode goes on after the task's success); `climb`: the navigation behaviour's chance, on
                each new level below level 1, to explore it a while and then climb back to level 1 by the
                up stairs (ascents, which the other sources all but lack).     "scripted_eps<epsilon>"
  - checkpoint  a trained policy: conf/method/<method>.yaml's policy() loads the artefact directory
                `path` (e.g. a score_ppo fit, data/fit/score_ppo/seed0, or a MaestroMotif skills run
                with its program for `task`); plays the plain env, or `task`'s env when set;
                `epsilon` as above; `episodes`.                                       "checkpoint:<path>"
  - nld         human games of Dungeons and Data (maestromotif.data.nld): the nle.dataset sqlite
                file `path`, its `dataset`, at most `max_games` games (0: all).            "nld:<path>"
The paper annotated a trained agent's and human players' observations (the paper profile: checkpoint
+ nld, paths set by the user); the ci profile plays random episodes, the small profile a mix of random
play and the scripted agent on the small variants' levels and the full game (conf/profile/small.yaml). How
often each source shows the skills' events: the collect_events stage (maestromotif.data.events).

Writes `<data_dir>/observations/`: one parquet file per chunk (schema
`maestromotif.data.schema.OBSERVATION_SCHEMA`) and `meta.json`, written last, which lists the chunk
files and how many episodes and records each source gave. Each chunk is written atomically, so a
killed run resumes at the first missing chunk; a chunk whose recorded settings differ from the
current ones (including the checkpoint's content hash) is redone.

The played sources' episodes are numbered in config order: episode e (the records' episode_id) plays
the NetHack game of seed derive_seed(root_seed, "collect", "episode", e), whichever worker runs it, so
the dataset does not depend on the number of workers. NLD records keep their gameid as episode_id;
episodes are told apart by (source, episode_id).

Size (~500 lines): one stage's source checks (each a clear error), behaviour policies and resumable
chunk plan; the record schema is maestromotif.data.schema, the scripted agent benchmark.scripted.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.config import ConfigError, defaults, load_params, root, section
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

PLAYED_KINDS = ("random", "scripted", "checkpoint")  # rolled out in the env, in chunks of episodes
KINDS = (*PLAYED_KINDS, "nld")
# The keys each kind reads (besides kind and label); any other key set on a source is an error.
KIND_KEYS = {
    "random": ("episodes",),
    "scripted": ("episodes", "epsilon", "task", "levels", "climb"),
    "checkpoint": ("episodes", "epsilon", "task", "method", "path"),
    "nld": ("path", "dataset", "max_games", "subselect_sql"),
}
SCRIPTED_TASK = "gnomish_small"  # the navigation behaviour: explore, find the down stairs, descend
LEVELS = ("full", "variant")     # scripted: the normal dungeon, or the small variant's own levels


@dataclass
class SourceConfig:
    """One entry of `collect.sources` (see the module docstring for what each kind reads).

    The one schema with defaults: a list item's keys cannot be given defaults in conf/collect/default.yaml,
    and each kind sets only the keys it reads (check_sources refuses the others)."""

    kind: str = "random"                 # random | scripted | checkpoint | nld
    label: str | None = None             # the records' `source` (default: per kind, module docstring)
    episodes: int = 0                    # played kinds: episodes to play
    epsilon: float = 0.0                 # scripted, checkpoint: chance of a uniform random action instead
    task: str | None = None              # scripted: small variant whose behaviour runs; checkpoint: task env
    levels: str = "full"                 # scripted: full (normal dungeon) | variant (`task`'s small levels)
    climb: float = 0.0                   # scripted navigation: chance per new level >= 2 to climb back to 1
    method: str = "score_ppo"            # checkpoint: conf/method/<method>.yaml, whose policy() loads `path`
    path: str | None = None              # checkpoint: fit() artefact directory; nld: nle.dataset sqlite file
    dataset: str | None = None           # nld: dataset name inside that db (e.g. nld-nao)
    max_games: int = 0                   # nld: first games by gameid (0: every game)
    subselect_sql: str | None = None     # nld: "SELECT gameid FROM games WHERE role='Mon' AND race='Hum'"


@dataclass
class CollectConfig:
    """The `collect` section of the params (conf/collect/default.yaml)."""

    sources: list[SourceConfig]
    episodes_per_chunk: int  # unit of resumption and of work per worker task
    max_steps_per_episode: int  # 0: the env's own cap
    workers: int  # worker processes (1: run in this process)


def as_config(cfg) -> CollectConfig:
    """`cfg` (the params' collect section, raw or already merged) checked against CollectConfig."""
    return section({"collect": cfg}, "collect", CollectConfig)


def source_label(src: SourceConfig) -> str:
    if src.label:
        return src.label
    return {"random": "random", "scripted": f"scripted_eps{src.epsilon:g}",
            "checkpoint": f"checkpoint:{src.path}", "nld": f"nld:{src.path}"}[src.kind]


def _set_path(i: int, profile: str) -> str:
    return (f"set it in conf/profile/{profile}.yaml or on the command line, e.g. "
            f"`python -m benchmark.config --profile {profile} collect.sources.{i}.path=<path>`")


def check_sources(cfg: CollectConfig, profile: str = "small") -> None:
    """Every source is complete and its files exist; raise ConfigError / FileNotFoundError naming the key."""
    if not cfg.sources:
        raise ConfigError("collect.sources is empty: list at least one source, "
                          "e.g. [{kind: random, episodes: 100}]")
    defaults = SourceConfig()
    labels: dict[str, int] = {}
    for i, src in enumerate(cfg.sources):
        key = f"collect.sources[{i}]"
        if src.kind not in KINDS:
            raise ConfigError(f"{key}.kind={src.kind!r}: choose one of {', '.join(KINDS)}")
        stray = [k for k in asdict(defaults) if k not in ("kind", "label", *KIND_KEYS[src.kind])
                 and getattr(src, k) != getattr(defaults, k)]
        if stray:
            raise ConfigError(f"{key} (kind {src.kind}) sets {stray}, which kind {src.kind} does not read; "
                              f"it reads {list(KIND_KEYS[src.kind])}. Remove them (or fix the kind).")
        if src.kind in PLAYED_KINDS and src.episodes <= 0:
            raise ConfigError(f"{key}.episodes must be > 0 for kind {src.kind}, got {src.episodes}")
        if not 0.0 <= src.epsilon <= 1.0:
            raise ConfigError(f"{key}.epsilon must be within [0, 1], got {src.epsilon}")
        if src.kind == "scripted":
            from benchmark.scripted import check_climb
            from benchmark.variants import VARIANTS

            check_climb(src.climb, f"{key}.climb")  # here, before any chunk is played
            if (src.task or SCRIPTED_TASK) not in VARIANTS:
                raise ConfigError(f"{key}.task={src.task!r}: the scripted agent plays the behaviour of a "
                                  f"small variant, one of {list(VARIANTS)}")
            if src.levels not in LEVELS:
                raise ConfigError(f"{key}.levels={src.levels!r}: choose full (the normal dungeon) or variant "
                                  f"(the small levels of {src.task or SCRIPTED_TASK})")
        if src.kind == "checkpoint":
            _check_checkpoint(src, key, i, profile)
        if src.kind == "nld":
            if not src.path:
                raise ConfigError(f"{key}.path (kind nld) is not set: give the sqlite file made by "
                                  "nle.dataset from the Dungeons and Data games (see "
                                  f"maestromotif/data/nld.py); {_set_path(i, profile)}")
            if not Path(src.path).exists():
                raise FileNotFoundError(f"{key}.path={src.path} does not exist: create it with nle.dataset "
                                        f"(see maestromotif/data/nld.py) or fix the path; "
                                        f"{_set_path(i, profile)}")
            if not src.dataset:
                raise ConfigError(f"{key}.dataset is not set: name the dataset registered in {src.path} "
                                  "(e.g. nld-nao)")
            if src.max_games < 0:
                raise ConfigError(f"{key}.max_games must be >= 0 (0: every game), got {src.max_games}")
        label = source_label(src)
        if label in labels:
            raise ConfigError(f"collect.sources[{labels[label]}] and {key} both label their records "
                              f"{label!r}: give one of them another `label`")
        labels[label] = i


def _check_checkpoint(src: SourceConfig, key: str, i: int, profile: str) -> None:
    from benchmark.evaluate import method_config_path, method_spec

    if not src.path:
        raise ConfigError(f"{key}.path (kind checkpoint) is not set: give the directory of a trained agent, "
                          f"the fit() artefact of conf/method/{src.method}.yaml (e.g. data/fit/{src.method}/"
                          f"seed0 of a finished run, `python -m benchmark.fit --method {src.method} "
                          f"--seed 0`); {_set_path(i, profile)}")
    if not Path(src.path).exists():
        raise FileNotFoundError(f"{key}.path={src.path} does not exist: train the agent first (`python -m "
                                f"benchmark.fit --method {src.method} --seed 0`) or fix the path; "
                                f"{_set_path(i, profile)}")
    try:
        method_config_path(src.method)
    except (ConfigError, FileNotFoundError) as e:
        raise ConfigError(f"{key}.method={src.method!r}: {e}") from e
    if method_spec(src.method).code_seeds and not src.task:
        raise ConfigError(f"{key}.task is not set: {src.method} plays a task's program over skills; name the "
                          "task whose program runs (e.g. gnomish)")


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


class EpsilonRandom(Policy):
    """`inner`, except that each action is replaced by a uniform random one with probability `epsilon`:
    a competent agent that still stumbles into varied states."""

    def __init__(self, inner: Policy, epsilon: float, num_actions: int, seed: int):
        self.inner, self.epsilon, self.num_actions = inner, epsilon, num_actions
        self.rng = np.random.default_rng(seed)

    def wrap_env(self, env):
        return self.inner.wrap_env(env)

    def initial_state(self, num_envs: int) -> Any:
        return self.inner.initial_state(num_envs)

    def seed_episodes(self, state, env_ids, episode_seeds):
        return self.inner.seed_episodes(state, env_ids, episode_seeds)

    def act(self, obs, state, episode_start):
        actions, state = self.inner.act(obs, state, episode_start)
        swap = self.rng.random(len(actions)) < self.epsilon
        actions = np.asarray(actions).copy()
        actions[swap] = self.rng.integers(self.num_actions, size=int(swap.sum()))
        return actions, state


def make_behaviour(behaviour: dict, num_actions: int, seed: int, params: Any = None) -> Policy:
    """The policy of a chunk's `behaviour` (see chunk_plan), seeded with the chunk's policy seed."""
    kind = behaviour["kind"]
    if kind == "random":
        return RandomPolicy(num_actions, seed)
    if kind == "scripted":
        from benchmark.scripted import ScriptedPolicy

        policy: Policy = ScriptedPolicy(behaviour["task"], seed=seed, climb=behaviour.get("climb", 0.0))
    elif kind == "checkpoint":
        from benchmark.evaluate import build_method
        from benchmark.seeding import seed_everything

        seed_everything(seed)  # sampled actions (torch) repeat per chunk
        policy = build_method(behaviour["method"]).policy(Path(behaviour["path"]), behaviour["task"], params)
    else:
        raise ValueError(f"collect: no played behaviour of kind {kind!r}")
    if behaviour["epsilon"] > 0:
        policy = EpsilonRandom(policy, behaviour["epsilon"], num_actions, derive_seed(seed, "epsilon"))
    return policy


def record_of(obs: dict, prev_message: str, episode_id: int, step: int, source: str) -> dict:
    """One observation record from an NLE observation (see schema.OBSERVATION_SCHEMA)."""
    from benchmark.env import decode_message

    bl = obs["blstats"]
    rec = {"episode_id": episode_id, "step": step, "source": source,
           "message": decode_message(obs["message"]), "prev_message": prev_message}
    rec.update({s: int(bl[STAT_BLSTATS_INDEX[s]]) for s in STATS})
    rec["dungeon"] = int(bl[BL_DNUM])
    rec["turn"] = int(bl[BL_TIME])
    return rec


def rollout_episode(env, policy: Policy, episode_id: int, game_seed: int, source: str,
                    max_steps: int) -> list[dict]:
    """Play one episode with `policy` (batch of one) and return its records, reset observation included."""
    from benchmark.env import is_blank

    obs, _ = env.reset(seed=game_seed)
    state = policy.seed_episodes(policy.initial_state(1), [0], [game_seed])
    records = [record_of(obs, "", episode_id, 0, source)]
    start = np.array([True])
    for step in range(1, max_steps + 1):
        batch = {k: np.asarray(v)[None] for k, v in obs.items()}
        actions, state = policy.act(batch, state, start)
        start = np.array([False])
        obs, _, terminated, truncated, _ = env.step(int(actions[0]))
        if is_blank(obs):  # NLE's observation after the game ended: not a game state
            break
        records.append(record_of(obs, records[-1]["message"], episode_id, step, source))
        if terminated or truncated:
            break
    return records


def _behaviour(src: SourceConfig) -> dict:
    """What a played source's chunks depend on besides seeds (a changed checkpoint redoes its chunks)."""
    from benchmark.provenance import tree_digest

    out: dict[str, Any] = {"kind": src.kind}
    if src.kind in ("scripted", "checkpoint"):
        out["epsilon"] = float(src.epsilon)
        out["task"] = src.task or (SCRIPTED_TASK if src.kind == "scripted" else None)
    if src.kind == "scripted":
        out["levels"] = src.levels
        if src.climb:  # absent when 0: the chunks of earlier runs stay valid
            out["climb"] = float(src.climb)
        if src.levels == "variant":  # edited .des files redo the chunks
            from benchmark.variants import VARIANTS, _fingerprint

            out["levels_digest"] = _fingerprint(VARIANTS[out["task"]])
    if src.kind == "checkpoint":
        out.update(method=src.method, path=str(src.path), digest=tree_digest(src.path))
    return out


def chunk_plan(cfg, root_seed: int, env: dict | None = None) -> list[dict]:
    """Every played chunk's episodes and settings; a chunk file is reused only if its settings match these.

    env: the params' `env` section as a dict (default: conf/env/default.yaml's). It is part
    of each chunk's settings, so chunks played with other NetHack options are played again.
    """
    from benchmark.env import EnvConfig

    cfg = as_config(cfg)
    env = dict(env) if env is not None else asdict(defaults("env", EnvConfig))
    plan, first_episode = [], 0
    for src in cfg.sources:
        if src.kind not in PLAYED_KINDS:
            continue
        behaviour, label = _behaviour(src), source_label(src)
        episodes = range(first_episode, first_episode + src.episodes)
        for first in range(0, len(episodes), cfg.episodes_per_chunk):
            c = len(plan)
            chunk = list(episodes[first: first + cfg.episodes_per_chunk])
            plan.append({
                "chunk": c,
                "file": f"chunk_{c:05d}.parquet",
                "episodes": chunk,
                "game_seeds": [derive_seed(root_seed, "collect", "episode", e) for e in chunk],
                "policy_seed": derive_seed(root_seed, "collect", "policy", c),
                "behaviour": behaviour,
                "source": label,
                "max_steps_per_episode": cfg.max_steps_per_episode,
                "root_seed": root_seed,
                "env": env,
            })
        first_episode += src.episodes
    return plan


def _collect_chunk(task: dict) -> dict:
    """Worker: roll out one chunk's episodes and write its parquet file atomically."""
    from omegaconf import OmegaConf

    from benchmark.env import EnvConfig, make

    plan, out_dir = task["plan"], Path(task["out_dir"])
    params = OmegaConf.create(task["params"]) if task.get("params") is not None else None
    behaviour = plan["behaviour"]
    t0 = time.perf_counter()
    env_cfg = EnvConfig(**plan["env"])
    if behaviour["kind"] == "checkpoint":
        env = make(task=behaviour["task"], cfg=env_cfg)
    else:  # a scripted source on `levels: variant` plays its variant's levels without the tracker, so
        # episodes go on after the goal (a descent that ended one would leave no sample `pairs.gap` later)
        variant = behaviour.get("levels") == "variant"
        env = make(task=behaviour["task"] if variant else None, cfg=env_cfg, track=False)
    try:
        max_steps = plan["max_steps_per_episode"] or env.unwrapped._max_episode_steps
        policy = make_behaviour(behaviour, env.action_space.n, plan["policy_seed"], params)
        env = policy.wrap_env(env)
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
    cfg: CollectConfig = as_config(section(params, "collect", CollectConfig))
    if cfg.episodes_per_chunk <= 0 or cfg.workers <= 0 or cfg.max_steps_per_episode < 0:
        raise ConfigError(f"collect: episodes_per_chunk > 0, workers > 0 and max_steps_per_episode >= 0 are "
                          f"required, got episodes_per_chunk={cfg.episodes_per_chunk}, "
                          f"workers={cfg.workers}, max_steps_per_episode={cfg.max_steps_per_episode}")
    check_sources(cfg, top.profile)  # every path is checked before anything is played
    out_dir = Path(out_dir or Path(top.data_dir) / OUT_NAME)
    out_dir.mkdir(parents=True, exist_ok=True)
    from benchmark.env import EnvConfig

    env = _plain(section(params, "env", EnvConfig)) if "env" in params else None
    plan = [dict(p) for p in chunk_plan(cfg, top.root_seed, env)]
    todo = [p for p in plan if not chunk_is_done(out_dir / p["file"], p)]
    log.info("collect: %s; %d played chunks, %d to do (%d workers) -> %s",
             ", ".join(f"{source_label(s)}" for s in cfg.sources), len(plan), len(todo), cfg.workers, out_dir)
    # checkpoint policies are built from the params (method sections, data_dir); plain data for the workers
    tasks = [{"plan": p, "out_dir": str(out_dir), "params": _plain(params)} for p in todo]
    t0, steps = time.perf_counter(), 0
    with tqdm(total=len(tasks), desc="collect chunks", unit="chunk") as bar:
        if cfg.workers == 1 or len(tasks) <= 1:
            for r in map(_collect_chunk, tasks):
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
    per_source = []
    for i, src in enumerate(cfg.sources):
        label = source_label(src)
        if src.kind == "nld":
            from maestromotif.data.nld import import_nld_chunks

            mine = import_nld_chunks(src, out_dir, label, prefix=f"nld{i}", key=f"collect.sources[{i}]")
            files += mine
        else:
            mine = [p["file"] for p in plan if p["source"] == label]
        episodes, rows = _count(out_dir, mine)
        entry = {"label": label, **{k: v for k, v in _plain_source(src).items() if k != "label"},
                 "files": len(mine), "episodes": episodes, "records": rows}
        if src.kind == "checkpoint":
            entry["digest"] = next(p["behaviour"]["digest"] for p in plan if p["source"] == label)
        per_source.append(entry)
        log.info("collect: source %s: %d episodes, %d records", label, episodes, rows)
    total = sum(s["records"] for s in per_source)
    import nle

    write_json(out_dir / META_FILE, {
        "files": files, "rows": total, "profile": top.profile, "root_seed": top.root_seed,
        "collect": _plain(cfg), "nle_version": nle.__version__, "sources": per_source,
    })
    log.info("collect: %d records in %d files", total, len(files))
    return out_dir


def _plain(cfg) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def _plain_source(src: SourceConfig) -> dict:
    """The keys this source's kind reads (plus kind and label), for the provenance."""
    plain = _plain(src)
    if src.kind == "scripted":
        plain["task"] = src.task or SCRIPTED_TASK
    return {k: plain[k] for k in ("kind", "label", *KIND_KEYS[src.kind])}


def _count(out_dir: Path, files: list[str]) -> tuple[int, int]:
    """(episodes, records) in these chunk files."""
    import pyarrow.parquet as pq

    episodes, rows = 0, 0
    for f in files:
        ids = pq.read_table(out_dir / f, columns=["episode_id"]).column("episode_id").to_numpy()
        episodes, rows = episodes + len(np.unique(ids)), rows + len(ids)
    return episodes, rows


def load_observations(obs_dir: str | Path) -> pd.DataFrame:
    """Every record the collect stage wrote in `obs_dir`, schema-checked."""
    obs_dir = Path(obs_dir)
    meta_path = obs_dir / META_FILE
    if not meta_path.exists():
        raise SchemaError(f"{meta_path} is missing: the collect stage has not finished; run "
                          "`python -m maestromotif.data.collect`")
    meta = read_json(meta_path)
    return read_table([obs_dir / f for f in meta["files"]], OBSERVATION_SCHEMA, "observation records",
                      rerun="`python -m maestromotif.data.collect`, which replays only the missing chunk "
                            "files and keeps the others")


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
