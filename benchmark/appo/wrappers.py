"""The two env wrappers every training env of the shared trainer ends with (docs/design.md §5), and the
env-slot reading both env factories share."""
from __future__ import annotations

import gymnasium as gym

from benchmark.appo.patches import write_error


def env_slot(env_config) -> tuple[int, int]:
    """(worker_index, vector_index) of the env sample-factory asks an env factory for; (0, 0) when it passes
    no env_config (as when it builds an env only to read the spaces): the first env's game."""
    if env_config is None:
        return 0, 0
    return getattr(env_config, "worker_index", 0), getattr(env_config, "vector_index", 0)


class CrashReport(gym.Wrapper):
    """Writes an env exception to the run's error file, then re-raises it (SF would only log it and stall)."""

    def __init__(self, env: gym.Env, error_file: str):
        super().__init__(env)
        self.error_file = error_file

    def _guard(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            if self.error_file:
                write_error(self.error_file, "env", f"{type(e).__name__}: {e}")
            raise

    def reset(self, **kwargs):
        return self._guard(self.env.reset, **kwargs)

    def step(self, action):
        return self._guard(self.env.step, action)


class OwnSeeds(gym.Wrapper):
    """Keeps the game seeds that the env factory derived, and makes sample-factory's random actions seeded.

    sample-factory 2.1.1 resets every env with `seed=<its global env index>` (0, 1, 2, ...), which our
    SeededReset would take as the game seed: every run, whatever its training seed or method, would play
    games 0, 1, 2, ... and env i would replay env i+1's games one episode later. It also plays
    `rollout * env_index` decorrelation steps with `action_space.sample()` from an unseeded RNG, so no two
    runs saw the same data. This wrapper (the outermost one) drops that seed and seeds the action space from
    the factory's own seed, so training is a function of its settings (docs/deviations.md, "Seeding").
    """

    def __init__(self, env: gym.Env, seed: int):
        super().__init__(env)
        self.action_space.seed(seed)

    def reset(self, *, seed=None, options=None):
        return self.env.reset(options=options)
