"""Call-and-return options around the paper's env (docs/method.md §5.1, §5.4, official `ModifierWrapper`).

Every env step: compute the initiation conditions from the 7x7 screen window around the agent and
the number of collected items, ask the program's `skill_termination`, and when it ends the running
skill ask `perform_task` for the next one. The active skill goes into the observation
(`skill`, `skill_onehot`) and, for the intrinsic-reward wrapper, into `info`:

- info["skill"]: index of the skill that chose the action just taken;
- info["skill_switched"]: True when a new skill execution starts with the next action (the program
  may pick the same skill again; the skill's clock and diff history restart either way).

Skill index order is the official code's: discoverer 0, descender 1, ascender 2, worshipper 3, merchant 4.
"""
from __future__ import annotations

import atexit
import logging
from typing import NamedTuple

import gymnasium as gym
import numpy as np
from nle import nethack

from benchmark.env import decode_message
from benchmark.seeding import derive_seed
from maestromotif.options.program import Program, load_program
from maestromotif.options.runtime import SKILLS
from maestromotif.options.sandbox import (DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S, InProcessRunner, Runner,
                                          Sandbox, SandboxError)

log = logging.getLogger(__name__)

SKILL_INDEX = {name: i for i, name in enumerate(SKILLS)}
DOWN_STAIRS_GLYPH = nethack.GLYPH_CMAP_OFF + 24  # 2383: two of them on a level = the Gnomish Mines fork
COLOR_MAP = {"@": 15, "_": 7}  # white '@' = shopkeeper, grey '_' = altar (official heuristic)
FOOD_OCLASS, COIN_OCLASS = 7, 12
BL_X, BL_Y, BL_DEPTH, BL_GOLD, BL_XP, BL_TIME, BL_DNUM = 0, 1, 12, 13, 18, 20, 23
MINES = 2

_shared_runners: dict[tuple, Runner] = {}


def shared_runner(mode: str, timeout_s: float = DEFAULT_TIMEOUT_S,
                  memory_mb: int = DEFAULT_MEMORY_MB) -> Runner:
    """One runner per process and mode, shared by every wrapper (one sandbox worker, not one per env)."""
    key = (mode, timeout_s, memory_mb)
    if key not in _shared_runners:
        if mode == "sandbox":
            _shared_runners[key] = Sandbox(timeout_s=timeout_s, memory_mb=memory_mb)
        elif mode == "inprocess":
            _shared_runners[key] = InProcessRunner(timeout_s=timeout_s)
        else:
            raise ValueError(f"runner {mode!r}: choose 'auto', 'sandbox' or 'inprocess'")
        atexit.register(_shared_runners[key].close)
    return _shared_runners[key]


def screen_window(tty_chars: np.ndarray, tty_colors: np.ndarray, x: int, y: int, radius: int = 3):
    """The (2r+1)^2 window of the terminal around map cell (x, y); map row y is terminal row y+1.

    Cells off the screen read as blank (char 32, colour 0); the agent's own cell has colour 0, so the
    agent's '@' is never taken for a shopkeeper. (The official code sliced rows y-3..y+3 of the terminal,
    one row too high, and wrapped around at the top edge.)
    """
    row = y + 1
    size = 2 * radius + 1
    chars = np.full((size, size), 32, dtype=np.int64)
    colors = np.zeros((size, size), dtype=np.int64)
    r0, r1 = max(row - radius, 0), min(row + radius + 1, tty_chars.shape[0])
    c0, c1 = max(x - radius, 0), min(x + radius + 1, tty_chars.shape[1])
    chars[r0 - row + radius: r1 - row + radius, c0 - x + radius: c1 - x + radius] = tty_chars[r0:r1, c0:c1]
    colors[r0 - row + radius: r1 - row + radius, c0 - x + radius: c1 - x + radius] = tty_colors[r0:r1, c0:c1]
    colors[radius, radius] = 0
    return chars, colors


def collectible_letters(obs: dict) -> set[int]:
    """Inventory letters of items other than food and coins (official `get_inv_items`)."""
    oclasses = obs["inv_oclasses"]
    mask = (oclasses != FOOD_OCLASS) & (oclasses != COIN_OCLASS)
    return {int(c) for c in obs["inv_letters"][mask] if c}


class PendingStep(NamedTuple):
    """An env step waiting for the program's answer (OptionsWrapper.begin_step -> end_step)."""

    result: tuple     # the inner env's (obs, reward, terminated, truncated, info)
    chosen: int       # the skill that chose the action
    turn: int
    depth: int
    inputs: dict      # the program's options_step inputs


class OptionsWrapper(gym.Wrapper):
    """Runs a program's policy over skills in call-and-return fashion around a paper env.

    program: a Program, or a name/path for `load_program`.
    runner: "auto" (trusted reference programs in process, anything else in the sandbox), "sandbox",
        "inprocess", or a Runner instance.
    seed: root of the per-episode seeds of the program's `random` (episode k of the wrapper uses
        derive_seed(seed, k); reset(seed=s) uses derive_seed(s, "program")).
    on_error: "continue" (log, count in info["program_errors"], keep the running skill, make a fresh
        player if the old one was lost) or "raise".
    """

    def __init__(self, env: gym.Env, program: Program | str, runner: Runner | str = "auto", seed: int = 0,
                 color_map: dict | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 memory_mb: int = DEFAULT_MEMORY_MB, on_error: str = "continue"):
        super().__init__(env)
        self.program = program if isinstance(program, Program) else load_program(program)
        if isinstance(runner, Runner):
            self.runner = runner
        else:
            mode = ("inprocess" if self.program.trusted else "sandbox") if runner == "auto" else runner
            self.runner = shared_runner(mode, timeout_s, memory_mb)
        if on_error not in ("continue", "raise"):
            raise ValueError(f"on_error={on_error!r}: choose 'continue' or 'raise'")
        self.on_error = on_error
        missing = {"glyphs", "blstats", "message", "tty_chars", "tty_colors", "inv_letters",
                   "inv_oclasses"} - set(
            self.env.observation_space.spaces)
        if missing:
            raise ValueError(f"OptionsWrapper needs the observation keys {sorted(missing)}; add them to "
                             "env.observation_keys (benchmark.env.OBSERVATION_KEYS has them all)")
        self.color_map = dict(color_map or COLOR_MAP)
        self.seed = seed
        self.handle = self.runner.load(self.program.source, self.program.name, seed=seed)
        self.observation_space = gym.spaces.Dict({
            **self.env.observation_space.spaces,
            "skill": gym.spaces.Box(0, len(SKILLS) - 1, shape=(1,), dtype=np.int64),
            "skill_onehot": gym.spaces.Box(0.0, 1.0, shape=(len(SKILLS),), dtype=np.float32),
        })
        self._episode = 0
        self.player = None
        self.program_errors = 0

    # -- episode start
    def reset(self, *, seed: int | None = None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        player_seed = (derive_seed(seed, "program") if seed is not None
                       else derive_seed(self.seed, self._episode))
        self._episode += 1
        self._new_player(player_seed)
        bl = obs["blstats"]
        self.skill_start_time = int(bl[BL_TIME])
        self.previous_depth = int(bl[BL_DEPTH])
        self.branch_depth = -2
        self.starting_letters = collectible_letters(obs)
        self.program_errors = 0
        self._detect_fork(obs)
        info.update(self._info(self.skill, False))
        return self._observe(obs), info

    def _new_player(self, seed: int) -> None:
        if self.player is not None:
            self.player.close()
        self._player_seed = seed
        self.player = self.handle.new_player(seed=seed)
        self.skill = SKILL_INDEX[self.player.initial_skill]

    # -- one step: the env's step, the program's options step, then the skill bookkeeping. Split in two
    # halves around the program call so that step_batch can make one call for a whole batch of envs.
    def step(self, action):
        pending = self.begin_step(action)
        try:
            out = self.player.step(pending.inputs)
        except SandboxError as e:
            out = e
        return self.end_step(pending, out)

    def begin_step(self, action) -> PendingStep:
        """Step the env and gather the program's inputs; end_step finishes with the program's answer."""
        chosen = self.skill
        obs, reward, terminated, truncated, info = self.env.step(action)
        bl = obs["blstats"]
        depth, dnum, turn = int(bl[BL_DEPTH]), int(bl[BL_DNUM]), int(bl[BL_TIME])
        self._detect_fork(obs)
        chars, colors = screen_window(obs["tty_chars"], obs["tty_colors"], int(bl[BL_X]), int(bl[BL_Y]))
        message = decode_message(obs["message"])
        ate = bool(info.get("ate", False))  # set by the env's eat macro (official: info['just_eaten'])
        skill_name = SKILLS[chosen]
        inputs = dict(
            chars=chars.tolist(), colors=colors.tolist(),
            num_items=len(collectible_letters(obs) - self.starting_letters), color_map=self.color_map,
            skill=skill_name, skill_time=turn - self.skill_start_time, depth=depth,
            previous_depth=self.previous_depth, dungeon_number=dnum, branch_depth=self.branch_depth,
            # official: a Descender that lands outside the Dungeons of Doom reveals the fork level
            branch_depth_if_end=(self.previous_depth if self.branch_depth == -2 and dnum != 0
                                 and skill_name == "descender" else -2),
            gold=int(bl[BL_GOLD]), kill=("kill" in message or "destroy" in message), xp_level=int(bl[BL_XP]),
            ate_in_mines=ate and dnum == MINES,
        )
        return PendingStep((obs, reward, terminated, truncated, info), chosen, turn, depth, inputs)

    def end_step(self, pending: PendingStep, out: dict | SandboxError):
        """Apply the program's answer to `pending.inputs` (or the error its call raised)."""
        if isinstance(out, SandboxError):
            if self.on_error == "raise":
                raise out
            out = self._on_error(out)
        obs, reward, terminated, truncated, info = pending.result
        if out["end"]:
            self.skill = SKILL_INDEX[out["next"]]
            self.skill_start_time = pending.turn
            self.previous_depth = pending.depth
            self.branch_depth = out["branch_depth"]
        info.update(self._info(pending.chosen, out["end"]))
        info.update(merchant_precondition=out["merchant"], worshipper_precondition=out["worshipper"])
        return self._observe(obs), reward, terminated, truncated, info

    def _on_error(self, error: SandboxError) -> dict:
        self.program_errors += 1
        if self.program_errors <= 3 or self.program_errors % 1000 == 0:
            log.warning("program %s failed (%d so far this episode); keeping skill %s: %s", self.program.name,
                        self.program_errors, SKILLS[self.skill], error)
        try:  # a restarted worker lost the player: a fresh one keeps the episode going
            self.player.get("skill")
        except SandboxError:
            try:
                self.player = self.handle.new_player(seed=self._player_seed)
            except SandboxError:
                self.handle = self.runner.load(self.program.source, self.program.name, seed=self.seed)
                self.player = self.handle.new_player(seed=self._player_seed)
        return {"end": False, "next": None, "merchant": False, "worshipper": False,
                "branch_depth": self.branch_depth}

    def _detect_fork(self, obs: dict) -> None:
        if self.branch_depth == -2 and int((obs["glyphs"] == DOWN_STAIRS_GLYPH).sum()) >= 2:
            self.branch_depth = int(obs["blstats"][BL_DEPTH])

    def _observe(self, obs: dict) -> dict:
        obs["skill"] = np.array([self.skill], dtype=np.int64)
        onehot = np.zeros(len(SKILLS), dtype=np.float32)
        onehot[self.skill] = 1.0
        obs["skill_onehot"] = onehot
        return obs

    def _info(self, chosen: int, switched: bool) -> dict:
        return {"skill": chosen, "skill_switched": bool(switched), "next_skill": self.skill,
                "branch_depth": self.branch_depth, "program_errors": self.program_errors}

    def close(self):
        if self.player is not None:
            self.player.close()
        self.handle.close()
        super().close()


def step_batch(envs: list[gym.Env], actions) -> list[tuple]:
    """env.step(action) for each env, with one program call per runner for the whole batch (one sandbox
    round trip instead of one per env). An env counts when its stack is observation wrappers over an
    OptionsWrapper; any other env steps on its own. The same results as stepping the envs one by one: the
    envs are independent and each wrapper's program is its own (its own loaded copy and random stream)."""
    results: list = [None] * len(envs)
    pending: dict[int, tuple[OptionsWrapper, list, PendingStep]] = {}
    for i, (env, action) in enumerate(zip(envs, actions)):
        options, layers = _options_under(env)
        if options is None:
            results[i] = env.step(action)
        else:
            pending[i] = (options, layers, options.begin_step(action))
    by_runner: dict[int, list[int]] = {}
    for i, (options, _, _) in pending.items():
        by_runner.setdefault(id(options.runner), []).append(i)
    for ids in by_runner.values():
        runner = pending[ids[0]][0].runner
        outs = runner.step_players([(pending[i][0].player, pending[i][2].inputs) for i in ids])
        for i, out in zip(ids, outs):
            options, layers, step = pending[i]
            obs, *rest = options.end_step(step, out)
            for layer in reversed(layers):  # innermost first, as their step() methods would
                obs = layer.observation(obs)
            results[i] = (obs, *rest)
    return results


def _options_under(env: gym.Env) -> tuple[OptionsWrapper | None, list[gym.ObservationWrapper]]:
    """The OptionsWrapper under `env`'s observation wrappers (outermost first), or (None, [])."""
    layers = []
    while isinstance(env, gym.ObservationWrapper):
        layers.append(env)
        env = env.env
    return (env, layers) if isinstance(env, OptionsWrapper) else (None, [])
