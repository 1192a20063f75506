"""The paper's NetHack environment: a human neutral male Monk, its NetHack options, the 28-action set.

`make(task=None, seed=None, **overrides)` is the one constructor every stage uses (collection,
training, evaluation, tests), so all of them play exactly the same game.

NetHack options: NLE joins its `options` list with commas into NETHACKOPTIONS and never reads a
`.nethackrc`. NetHack itself reads a config file when NETHACKOPTIONS starts with `@`, and only a
config file can carry MSGTYPE and AUTOPICKUP_EXCEPTION lines. NLE appends `,name:<player>` to the
string, so we write the config file under exactly the name NetHack will look for
(`<dir>/nethackrc,name:Agent-...`) and check after construction that NLE produced that string.
This replaces the paper code's `sed` patch of the installed NLE.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from nle import nethack
from nle.env.base import NLE
from nle.nethack import actions as A

from benchmark.seeding import nethack_seeds

log = logging.getLogger(__name__)

CHARACTER = "mon-hum-neu-mal"
MAX_EPISODE_STEPS = 10_000

# The paper's 28 actions, in the order of the official code: NLE's 23 task actions, then 5 more.
ACTIONS: tuple[A.Action, ...] = (
    A.MiscAction.MORE,
    *A.CompassDirection,
    *A.CompassDirectionLonger,
    A.MiscDirection.UP,
    A.MiscDirection.DOWN,
    A.MiscDirection.WAIT,
    A.Command.KICK,
    A.Command.EAT,
    A.Command.SEARCH,
    A.Command.CAST,
    A.Command.ENHANCE,
    A.Command.PRAY,
    A.Command.QUAFF,
    A.Command.DROP,
)
ACTION_NAMES: tuple[str, ...] = tuple(
    f"{type(a).__name__.replace('CompassDirectionLonger', 'FAR_').replace('CompassDirection', '')}{a.name}"
    .replace("MiscAction", "").replace("MiscDirection", "").replace("Command", "")
    for a in ACTIONS
)
ACTION_INDEX = {name: i for i, name in enumerate(ACTION_NAMES)}
assert len(ACTIONS) == 28, len(ACTIONS)

# Everything later stages read; screen_descriptions and the map-only arrays cost speed for no user.
OBSERVATION_KEYS = (
    "glyphs",
    "blstats",
    "message",
    "tty_chars",
    "tty_colors",
    "tty_cursor",
    "inv_glyphs",
    "inv_strs",
    "inv_letters",
    "inv_oclasses",
)

# The paper's .nethackrc (reference/method.md §1.11) plus the NLE defaults it relies on.
PAPER_OPTIONS = (
    "role:mon",
    "race:hum",
    "gender:mal",
    "align:neu",
    "pettype:none",
    "autopickup",
    "pickup_types:$/%?!",
    "pickup_burden:unencumbered",
    "runmode:teleport",
    "nobones",
    "showexp",
    "showscore",
    "time",
    "paranoid_confirmation:none",
    "color",
    "disclose:+i +a +v +g +c +o",
    "mention_walls",
    "nocmdassist",
    "nolegacy",
    "nosparkle",
)
PAPER_CONFIG_LINES = (
    # NetHack compiles these as POSIX regular expressions; ">" means "never pick up".
    'AUTOPICKUP_EXCEPTION=">.*gloves.*"',
    'AUTOPICKUP_EXCEPTION=">.*robe.*"',
    'AUTOPICKUP_EXCEPTION=">.*corpse.*"',
    'AUTOPICKUP_EXCEPTION=">.* tins?$"',
    'MSGTYPE=hide "You see .*"',
    'MSGTYPE=hide "You hear .*"',
)


@dataclass
class EnvConfig:
    """The `env` section of the params (conf/env/default.yaml)."""

    character: str = CHARACTER
    max_episode_steps: int = MAX_EPISODE_STEPS
    fix_moon_phase: bool = True
    options: list[str] = field(default_factory=lambda: list(PAPER_OPTIONS))
    config_lines: list[str] = field(default_factory=lambda: list(PAPER_CONFIG_LINES))
    observation_keys: list[str] = field(default_factory=lambda: list(OBSERVATION_KEYS))


class EnvError(ValueError):
    """Bad arguments to `make`; the message names the argument and what is allowed."""


def _write_nethackrc(options: list[str], lines: list[str], player: str, wizard: bool) -> tuple[Path, str]:
    """Write the config file NetHack will read; return its directory and the options string for NLE."""
    for opt in options:
        if "," in opt and not opt.startswith("disclose"):
            raise EnvError(f"NetHack option {opt!r} contains a comma; give one option per list entry")
    folder = Path(tempfile.mkdtemp(prefix="mm-nethackrc-"))
    base = folder / "nethackrc"
    # NLE will turn ["@<base>"] into "@<base>,name:<player>[,playmode:debug]".
    suffix = [f"name:{player}"] + (["playmode:debug"] if wizard else [])
    rc_path = Path(",".join([str(base), *suffix]))
    text = "".join(f"OPTIONS={o}\n" for o in [*options, *suffix]) + "".join(f"{l}\n" for l in lines)
    rc_path.write_text(text)
    return folder, "@" + str(base)


class PaperNetHack(NLE):
    """NLE with the paper's character, options and actions; reward is the in-game score delta."""

    def __init__(self, cfg: EnvConfig, wizard: bool = False, actions=ACTIONS, **nle_kwargs: Any):
        player = "Agent-" + cfg.character
        rc_dir, at_option = _write_nethackrc(list(cfg.options), list(cfg.config_lines), player, wizard)
        self._rc_cleanup = weakref.finalize(self, shutil.rmtree, rc_dir, True)
        super().__init__(
            character=cfg.character,
            max_episode_steps=cfg.max_episode_steps,
            observation_keys=tuple(cfg.observation_keys),
            actions=actions,
            options=(at_option,),
            wizard=wizard,
            fix_moon_phase=cfg.fix_moon_phase,
            **nle_kwargs,
        )
        expected = ",".join([at_option, f"name:{player}"] + (["playmode:debug"] if wizard else []))
        if self.nethack._nethackoptions != expected:  # NLE changed how it joins options
            raise RuntimeError(
                f"NLE built NETHACKOPTIONS={self.nethack._nethackoptions!r}, expected {expected!r}; "
                "benchmark.env must be updated for this NLE version"
            )

    def close(self):
        super().close()
        self._rc_cleanup()


class SeededReset(gym.Wrapper):
    """Makes `reset(seed=s)` really fix the game: NLE's reset(seed) only seeds gymnasium's RNG."""

    def __init__(self, env: gym.Env, seed: int | None):
        super().__init__(env)
        self._next_seed = seed
        self.episode_seeds: tuple[int, int] | None = None

    def reset(self, *, seed: int | None = None, options=None):
        if seed is None:
            seed = self._next_seed
            self._next_seed = None if seed is None else seed + 1
        else:
            self._next_seed = seed + 1
        if seed is not None:
            if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
                raise EnvError(f"seed must be a non-negative integer, got {seed!r}")
            core, disp = nethack_seeds(int(seed), "nethack")
            self.env.unwrapped.seed(core, disp, False)
            self.episode_seeds = (core, disp)
        return self.env.reset(seed=None if seed is None else int(seed), options=options)


def make(task: str | None = None, seed: int | None = None, wizard: bool = False, cfg: EnvConfig | None = None,
         **overrides: Any) -> gym.Env:
    """The paper's env; with `task`, wrapped with that task's tracker (see benchmark.tasks).

    seed: episode k after construction plays the game of seed `seed + k` (None: NetHack's own entropy).
    wizard: NetHack's debug mode, for building test scenarios.
    overrides: fields of EnvConfig (e.g. max_episode_steps=100) or extra NLE keyword arguments.
    """
    base = cfg or EnvConfig()
    fields = {k: overrides.pop(k) for k in list(overrides) if k in EnvConfig.__dataclass_fields__}
    known_nle = {"save_ttyrec_every", "savedir", "allow_all_yn_questions", "allow_all_modes", "spawn_monsters",
                 "render_mode", "actions"}
    unknown = set(overrides) - known_nle
    if unknown:
        raise EnvError(
            f"unknown env override(s) {sorted(unknown)}; allowed: "
            f"{sorted(EnvConfig.__dataclass_fields__)} or NLE arguments {sorted(known_nle)}"
        )
    cfg = EnvConfig(**{**base.__dict__, **fields})
    if cfg.max_episode_steps <= 0:
        raise EnvError(f"max_episode_steps must be positive, got {cfg.max_episode_steps}")
    bad_keys = set(cfg.observation_keys) - set(dict(nethack.OBSERVATION_DESC))
    if bad_keys:
        raise EnvError(f"unknown observation key(s) {sorted(bad_keys)}; see nle.nethack.OBSERVATION_DESC")
    if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0):
        raise EnvError(f"seed must be a non-negative integer or None, got {seed!r}")
    env: gym.Env = PaperNetHack(cfg, wizard=wizard, **overrides)
    env = SeededReset(env, seed)
    if task is not None:
        from benchmark.tasks import wrap_task  # local import: tasks import this module

        env = wrap_task(env, task)
    return env


def decode_message(message: np.ndarray) -> str:
    """The top-line message as text (latin-1: NetHack messages are not always valid UTF-8)."""
    return bytes(message).rstrip(b"\0").decode("latin-1")
