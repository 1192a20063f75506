"""The benchmark's own regression probes (conf/regression/default.yaml, `probes`): its statistics and its
task trackers. Each is a benchmark.probes.Probe; see benchmark.regression for how sections are compared.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from benchmark.probes import Inputs, Metric, Probe, RegressionError

ACTION_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"  # one letter per action index


# ----- statistics -------------------------------------------------------------------------------------------
def stats_matrices() -> tuple[np.ndarray, np.ndarray]:
    """Two fixed (runs=6, tasks=4) score matrices, written out by formula (no RNG to drift)."""
    a = np.array([[((7 * i + 3 * j) % 11) / 10 for j in range(4)] for i in range(6)])
    b = np.array([[((5 * i + 4 * j + 2) % 13) / 12 for j in range(4)] for i in range(6)])
    return a, b


class StatsProbe(Probe):
    """stats/*: mean/SE, IQM, bootstrap CIs (fixed bootstrap seed) and P(X > Y) on fixed matrices."""

    def __init__(self, bootstrap_reps: int = 200):
        self.reps = int(bootstrap_reps)

    def measure(self, inp: Inputs, reference: Mapping[str, Any]) -> list[Metric]:
        from benchmark import stats

        a, b = stats_matrices()
        seed = inp.seed("stats")
        mean, se = stats.mean_stderr(a[:, 0])
        ci = stats.interval_estimates({"a": a, "b": b}, "iqm", reps=self.reps, seed=seed)
        ci_mean = stats.interval_estimates({"a": a}, "mean", reps=self.reps, seed=seed)
        return [
            Metric("stats/mean_stderr", "float", [mean, se]),
            Metric("stats/iqm", "float", [stats.iqm(a), stats.iqm(b)]),
            Metric("stats/aggregate_mean", "float", [stats.aggregate_mean(a), stats.aggregate_mean(b)]),
            Metric("stats/iqm_ci", "float", [*ci["a"], *ci["b"]]),
            Metric("stats/mean_ci", "float", list(ci_mean["a"])),
            Metric("stats/probability_of_improvement", "float",
                   list(stats.probability_of_improvement_ci(a, b, reps=self.reps, seed=seed))),
        ]


# ----- task trackers on recorded scripted episodes -------------------------------------------------------
def encode_actions(actions: Sequence[int]) -> str:
    return "".join(ACTION_ALPHABET[int(a)] for a in actions)


def decode_actions(text: str) -> list[int]:
    return [ACTION_ALPHABET.index(c) for c in text]


def record_scripted_episode(inp: Inputs, task: str) -> dict:
    """Play the scripted reference once on `task` and keep its actions (for --update)."""
    import gymnasium as gym

    from benchmark.scripted import ScriptedPolicy
    from benchmark.env import make
    from benchmark.playback import play_and_record

    actions: list[int] = []

    class Recorder(gym.Wrapper):
        def step(self, action):
            actions.append(int(action))
            return self.env.step(action)

    seed = inp.seed("tracker", task)
    play_and_record(ScriptedPolicy(task), lambda: Recorder(make(task=task, cfg=inp.env_config())), 1, 1,
                    lambda _: seed, progress=False)
    return {"seed": seed, "actions": encode_actions(actions)}


def replay_tracker(inp: Inputs, task: str, seed: int, actions: Sequence[int]) -> dict:
    """Replay `actions` in the game of `seed`; return the tracker's trace: when its value changed."""
    from benchmark.env import make

    env = make(task=task, cfg=inp.env_config())
    changes, value, steps, ended = [], 0.0, 0, False
    try:
        env.reset(seed=seed)
        for steps, action in enumerate(actions, start=1):
            _, _, terminated, truncated, info = env.step(int(action))
            if info["task"]["value"] != value:
                value = float(info["task"]["value"])
                changes.append(f"{steps}:{value:g}")
            if terminated or truncated:
                ended = True
                break
    finally:
        env.close()
    return {"value": value, "steps": steps, "trace": ",".join(changes), "ended": ended}


class TrackerProbe(Probe):
    """tracker/*: the small variants' task trackers replaying one recorded scripted episode each. The actions
    are stored in the reference (`tracker_episodes`), so a change of the scripted policy does not move these
    numbers, only a change of the env or of a tracker does."""

    KEY = "tracker_episodes"

    def __init__(self, tasks: Sequence[str] | None = None):
        self.tasks = None if tasks is None else list(tasks)  # default: regression.tasks

    def _tasks(self, inp: Inputs) -> list[str]:
        return self.tasks if self.tasks is not None else list(inp.cfg.tasks)

    def record(self, inp: Inputs) -> dict[str, Any]:
        return {self.KEY: {task: record_scripted_episode(inp, task) for task in self._tasks(inp)}}

    def measure(self, inp: Inputs, reference: Mapping[str, Any]) -> list[Metric]:
        recorded = (reference or {}).get(self.KEY, {})
        out = []
        for task in self._tasks(inp):
            if task not in recorded:
                raise RegressionError(f"the reference has no recorded scripted episode for {task!r}; "
                                      "run `python -m benchmark.regression --update`")
            rec = recorded[task]
            trace = replay_tracker(inp, task, rec["seed"], decode_actions(rec["actions"]))
            out += [Metric(f"tracker/{task}/value", "exact", trace["value"]),
                    Metric(f"tracker/{task}/trace", "exact", f"{trace['trace']}|end@{trace['steps']}"
                                                             f"{'' if trace['ended'] else '(not ended)'}")]
        return out
