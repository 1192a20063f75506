"""A worked example of a baseline: walk in long straight lines and press DOWN every other step.

It needs no training: fit() only records its settings. Copy this file to baselines/, copy
stair_diver.yaml to conf/method/, add `stair_diver` to `methods` (and `fit_methods`) in
conf/config.yaml, and `make repro` evaluates it on every task and puts it in every table.
"""
from pathlib import Path

import numpy as np

from benchmark.env import ACTION_INDEX
from benchmark.io import write_json
from benchmark.method import Method, Policy

FAR_MOVES = [ACTION_INDEX[f"FAR_{d}"] for d in ("N", "E", "S", "W", "NE", "SE", "SW", "NW")]


class StairDiverPolicy(Policy):
    def __init__(self, seed: int):
        self.seed = seed

    def initial_state(self, num_envs):
        return [np.random.default_rng([self.seed, i]) for i in range(num_envs)]

    def seed_episodes(self, state, env_ids, episode_seeds):
        for i, s in zip(env_ids, episode_seeds):  # episode k acts the same in any batch, after any resume
            state[i] = np.random.default_rng([self.seed, s])
        return state

    def act(self, obs, state, episode_start):
        steps = obs["blstats"][:, 20]  # game turn: alternate a long move and DOWN
        actions = [ACTION_INDEX["DOWN"] if t % 2 else rng.choice(FAR_MOVES) for t, rng in zip(steps, state)]
        return np.array(actions, dtype=np.int64), state


class StairDiver(Method):
    name = "stair_diver"
    per_task = False

    def fit(self, params, out_dir: Path, seed: int, task=None) -> Path:
        write_json(Path(out_dir) / "settings.json", {"seed": seed})
        return Path(out_dir)

    def policy(self, artefact: Path, task: str, params) -> Policy:
        return StairDiverPolicy(seed=int(params.root_seed))
