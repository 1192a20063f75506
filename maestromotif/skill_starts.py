"""Where each skill can act: the seeded starts that the skill-behaviour stage measures skills from, and that
the `skill_starts` training program (rl.program) trains them on (docs/deviations.md, `rl.program`).

    start   levels                                                     made for
    dl1     level 1 of the full game                                   discoverer
    dl2     level 2 of the delphi_small levels (a scripted walk down    descender, ascender
            the stairs of level 1 first: level 1 is above, 3+ below)
    shop    level 1 of transactions_small (a general store)            merchant
    altar   level 1 of buc_small (an altar)                            worshipper
    nav1    level 1 of the delphi_small levels (a small room, the       (training only: rl.skill_starts)
            down stairs a few steps away; going up leaves the dungeon)
    dl3     level 3 of the delphi_small levels: the real game's level    (training only: rl.skill_starts)
            3, reached by the scripted walk down nav1 and nav2 (the
            hero on its up stairs, nav2 above)

skill_behaviour measures every skill from its own start (START_OF); `nav1` and `dl3` are starts to train on
only (docs/investigations/skills.md §12-13: neither stopped the shared network's skills from climbing).
The levels are benchmark.variants' without their task trackers: no task success ends an episode.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from nle import nethack

from benchmark.config import ConfigError
from benchmark.env import EnvConfig, make

# start name -> (variant whose levels are played, or None for the full game; depth the skill starts at)
STARTS: dict[str, tuple[str | None, int]] = {
    "dl1": (None, 1),
    "dl2": ("delphi_small", 2),
    "shop": ("transactions_small", 1),
    "altar": ("buc_small", 1),
    "nav1": ("delphi_small", 1),
    "dl3": ("delphi_small", 3),
}
# scripted steps allowed for the walk down to a start below level 1 (skill_behaviour.max_start_steps' default)
MAX_WALK_STEPS = 200
START_OF = {"discoverer": "dl1", "descender": "dl2", "ascender": "dl2", "merchant": "shop",
            "worshipper": "altar"}
# the starts skill_behaviour measures from (and `skills_crossed` trains on), in STARTS' order
MEASURED_STARTS = tuple(s for s in STARTS if s in START_OF.values())


class ScriptedStart(gym.Wrapper):
    """After each reset, walks down with the scripted reference agent (benchmark.scripted) until the hero
    is at `depth`; info["start_reached"] says whether it got there within `max_steps`."""

    def __init__(self, env: gym.Env, variant: str, depth: int, max_steps: int):
        super().__init__(env)
        from benchmark.scripted import ScriptedPolicy

        self.walker = ScriptedPolicy(variant)
        self.depth, self.max_steps = depth, max_steps

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        state = self.walker.seed_episodes(self.walker.initial_state(1), [0], [seed or 0])
        start = np.ones(1, dtype=bool)
        for _ in range(self.max_steps):
            if int(obs["blstats"][nethack.NLE_BL_DEPTH]) >= self.depth:
                break
            actions, state = self.walker.act({k: v[None] for k, v in obs.items()}, state, start)
            start[:] = False
            obs, _, terminated, truncated, info = self.env.step(int(actions[0]))
            if terminated or truncated:
                obs, info = self.env.reset(seed=seed, options=options)  # never happens on these levels
        info["start_reached"] = int(obs["blstats"][nethack.NLE_BL_DEPTH]) >= self.depth
        return obs, info


def make_start(start: str, env_cfg: EnvConfig, max_start_steps: int, seed: int | None = None) -> gym.Env:
    """The game env of one start: its levels (no task tracker) and, below level 1, the scripted walk down.
    `seed` as benchmark.env.make's (episode k plays game seed + k)."""
    if start not in STARTS:
        raise ConfigError(f"unknown skill start {start!r}; one of {sorted(STARTS)} "
                          "(maestromotif/skill_starts.py)")
    variant, depth = STARTS[start]
    env = make(task=variant, seed=seed, cfg=env_cfg, track=False)
    if depth > 1:
        env = ScriptedStart(env, variant, depth, max_start_steps)
    return env
