"""The one play-and-record loop: seeded episodes of a batched policy, each finished episode's record, and
(with a records file) resumable runs. Used by the evaluate and calibrate stages and by the regression check.

    played = play_and_record(policy, lambda: make(task=task, cfg=env_cfg), episodes=100, num_envs=8,
                             episode_seeds=lambda k: episode_seed(root, "evaluate", task, seed, episode=k),
                             records_file=out / EPISODES_FILE, run_key=run_key, fields=meta)
    played.records  # every finished record of this run_key, in episode order

A records file holds one JSON line per finished episode, appended (and fsynced) as episodes finish; a rerun
skips the episodes already there and drops the records written under another `run_key` (other settings),
so a changed config never pools with old numbers.
"""
from __future__ import annotations

import json
import logging
import random
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from benchmark.env import died
from benchmark.io import append_jsonl, read_jsonl, truncate_torn_tail, write_text
from benchmark.method import Policy
from benchmark.seeding import seed_everything

log = logging.getLogger(__name__)

BL_SCORE, BL_DEPTH, BL_XP, BL_DNUM = 9, 12, 18, 23  # nle.nethack.NLE_BL_SCORE / _DEPTH / _XP / _DNUM
EPISODES_FILE = "episodes.jsonl"


class _Slot:
    """One env of the batch and the episode it is playing."""

    def __init__(self, env: gym.Env):
        self.env = env
        self.episode: int | None = None
        self.obs: dict[str, np.ndarray] | None = None

    def start(self, episode: int, seed: int) -> None:
        self.episode, self.seed = episode, seed
        self.obs, _ = self.env.reset(seed=seed)
        self.steps, self.ret = 0, 0.0
        self.score, self.depth, self.max_depth, self.dnum = 0, 1, 1, 0
        self.max_xlvl = 1  # experience level: with max_depth, BALROG's progression (benchmark.progression)
        self._track(self.obs)

    def _track(self, obs) -> None:
        bl = obs["blstats"]
        if bl[BL_DEPTH] > 0:  # NLE zeroes blstats on the terminal observation; keep the last real values
            self.score, self.depth, self.dnum = int(bl[BL_SCORE]), int(bl[BL_DEPTH]), int(bl[BL_DNUM])
            self.max_depth = max(self.max_depth, self.depth)
            self.max_xlvl = max(self.max_xlvl, int(bl[BL_XP]))

    def step(self, action: int) -> dict | None:
        """Step; return the finished episode's record, or None while it runs."""
        return self.stepped(self.env.step(int(action)))

    def stepped(self, result: tuple) -> dict | None:
        """Take in the env's step result; return the finished episode's record, or None while it runs."""
        obs, reward, terminated, truncated, info = result
        self.obs, self.steps, self.ret = obs, self.steps + 1, self.ret + float(reward)
        self._track(obs)
        if not (terminated or truncated):
            return None
        task = info.get("task")
        if task is None:
            raise RuntimeError("the env reports no info['task']; build it with benchmark.env.make(task=...)")
        success = task.get("success")
        if success:
            reason = "success"
        elif truncated:
            reason = "step_cap"
        elif died(terminated, info):
            reason = "death"
        else:
            reason = "ended"
        return {
            "episode": self.episode, "episode_seed": self.seed,
            "success": None if success is None else bool(success),
            "value": float(task.get("value", 0.0)), "metric": task.get("metric"),
            "category": task.get("category"), "steps": self.steps, "return": self.ret, "score": self.score,
            "max_depth": self.max_depth, "max_xlvl": self.max_xlvl, "final_depth": self.depth,
            "dungeon": self.dnum, "end_reason": reason,
        }


def stack_observations(observations: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.stack([o[k] for o in observations]) for k in observations[0]}


def play(policy: Policy, make_env: Callable[[], gym.Env], episodes: list[tuple[int, int]], num_envs: int,
         on_record: Callable[[dict], None], progress: bool = True) -> int:
    """Play `episodes` [(index, nethack seed)] with `num_envs` envs and a batched policy; return env steps."""
    queue = list(episodes)[::-1]
    slots = [_Slot(policy.wrap_env(make_env())) for _ in range(min(num_envs, len(queue)))]
    if not slots:
        return 0
    state = policy.initial_state(len(slots))

    def start(ids: list[int]) -> None:
        nonlocal state
        started = []
        for i in ids:
            k, s = queue.pop()
            slots[i].start(k, s)
            started.append(s)
        state = policy.seed_episodes(state, ids, started)

    start(list(range(len(slots))))
    episode_start = np.ones(len(slots), dtype=bool)
    running = np.ones(len(slots), dtype=bool)  # idle slots keep feeding their last obs; actions dropped
    total_steps = 0
    bar = tqdm(total=len(episodes), desc="episodes", unit="ep", disable=not progress, leave=False)
    try:
        while running.any():
            actions, state = policy.act(stack_observations([s.obs for s in slots]), state, episode_start)
            episode_start = np.zeros(len(slots), dtype=bool)
            restart = []
            ids = [i for i in range(len(slots)) if running[i]]
            # one call for the batch: the policy may share work across its envs (MaestroMotif's programs)
            results = policy.step_envs([slots[i].env for i in ids], [int(actions[i]) for i in ids])
            for i, result in zip(ids, results):
                slot = slots[i]
                record = slot.stepped(result)
                total_steps += 1
                if record is None:
                    continue
                on_record({**record, **policy.episode_stats(i)})
                bar.update(1)
                if len(queue) > len(restart):  # envs that finish together share what is left
                    restart.append(i)
                else:
                    running[i] = False
            if restart:
                start(restart)
                episode_start[restart] = True
    finally:
        bar.close()
        for slot in slots:
            slot.env.close()
    return total_steps


def seed_process(seed: int) -> None:
    """seed_everything, without paying torch's import for methods that never imported it (random)."""
    if "torch" in sys.modules:
        seed_everything(seed)
    else:
        random.seed(seed)
        np.random.seed(seed % (2**32))


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op thread count for the block, restored after; None or 0: left as it is. Nothing to do
    when torch was never imported (methods without a network)."""
    torch = sys.modules.get("torch")
    if not n or torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class Played:
    """What play_and_record did: the run's records (episode order), and this call's share of the work."""

    records: list[dict]
    played: int          # episodes played by this call (the rest were in the records file already)
    steps: int           # env steps of this call
    seconds: float


def play_and_record(policy: Policy, make_env: Callable[[], gym.Env], episodes: int, num_envs: int,
                    episode_seeds: Callable[[int], int], *, records_file: Path | None = None,
                    run_key: str | None = None, fields: Mapping[str, Any] | None = None,
                    after: Mapping[str, Any] | None = None, process_seed: Callable[[int], int] | None = None,
                    progress: bool = True, threads: int | None = None) -> Played:
    """Play episodes 0..`episodes`-1 (episode k: the NetHack game `episode_seeds(k)`) and record each one as
    {**fields, **its record, **after}.

    records_file: append the records there, skipping the episodes it already holds under `run_key` (and
    dropping its other records); None: keep them in memory only. process_seed(first episode played, -1 when
    none) seeds the process's global RNGs (torch sampling) before the first step, so a resumed run is seeded
    by where it starts. threads: torch's thread count while playing (None: unchanged)."""
    done = set() if records_file is None else load_finished(records_file, run_key, episodes)
    pending = [(k, episode_seeds(k)) for k in range(episodes) if k not in done]
    if records_file is not None:
        log.info("%d episodes to play, %d already done in %s", len(pending), len(done), records_file)
    if process_seed is not None:
        seed_process(process_seed(pending[0][0] if pending else -1))
    fields, after = dict(fields or {}), dict(after or {})
    kept: list[dict] = []

    def on_record(record: dict) -> None:
        line = {**fields, **record, **after}
        if records_file is None:
            kept.append(line)
        else:
            append_jsonl(records_file, [line])

    t0 = time.perf_counter()
    with torch_threads(threads):
        steps = play(policy, make_env, pending, num_envs, on_record, progress)
    seconds = time.perf_counter() - t0
    if records_file is None:
        records = sorted(kept, key=lambda r: r["episode"])
    else:
        records = finished_records(records_file.parent, run_key, records_file.name)
    return Played(records, len(pending), steps, seconds)


def load_finished(path: Path, run_key: str | None, episodes: int) -> set[int]:
    """Episodes already recorded under `run_key`; rewrite the file when it holds anything else."""
    truncate_torn_tail(path)
    records = read_jsonl(path)
    keep = {r["episode"]: r for r in records if r.get("run_key") == run_key and r["episode"] < episodes}
    if len(keep) != len(records):
        log.warning("%s: dropping %d record(s) from other settings or beyond %d episodes",
                    path, len(records) - len(keep), episodes)
        text = "".join(_json_line(keep[k]) for k in sorted(keep))
        write_text(path, text)
    return set(keep)


def _json_line(record: dict) -> str:
    return json.dumps(record, sort_keys=True, default=str) + "\n"


def finished_records(out: Path, run_key: str | None = None, name: str = EPISODES_FILE) -> list[dict]:
    """The episode records of one evaluation folder, in episode order (one per episode)."""
    by_episode = {}
    for r in read_jsonl(Path(out) / name):
        if run_key is None or r.get("run_key") == run_key:
            by_episode[r["episode"]] = r
    return [by_episode[k] for k in sorted(by_episode)]
