"""The paper's NetHack environment: a human neutral male Monk, its NetHack options, the 28-action set.

`make(task=None, seed=None, **overrides)` is the one constructor every stage uses (collection,
training, evaluation, tests), so all of them play exactly the same game.

NetHack options: NLE joins its `options` list with commas into NETHACKOPTIONS and never reads a
`.nethackrc`. NetHack itself reads a config file when NETHACKOPTIONS starts with `@`, and only a
config file can carry MSGTYPE and AUTOPICKUP_EXCEPTION lines. NLE appends `,name:<player>` to the
string, so we write the config file under exactly the name NetHack will look for
(`<dir>/nethackrc,name:Agent-...`) and check after construction that NLE produced that string.
This replaces the paper code's `sed` patch of the installed NLE.

Size (~450 lines): PaperNetHack's macros (eat, wait, drop, cast, #enhance, prompts) act inside one step
function and stay with the class they extend; the game clock is benchmark/game_clock.py.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from nle import nethack
from nle.env.base import NLE
from nle.nethack import actions as A

from benchmark import game_clock
from benchmark.config import conf_file, defaults
from benchmark.seeding import nethack_seeds

log = logging.getLogger(__name__)

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


@dataclass
class EnvConfig:
    """The `env` section of the params; its values (the paper's character and NetHack options, with the
    reasons) are in conf/env/default.yaml."""

    character: str
    max_episode_steps: int
    fix_moon_phase: bool
    options: list[str]           # the official .nethackrc's OPTIONS, one per entry
    config_lines: list[str]      # lines only a config file can carry (AUTOPICKUP_EXCEPTION, MSGTYPE)
    observation_keys: list[str]


def env_config_from_json(text: str) -> EnvConfig:
    """The EnvConfig a training run carries as JSON (sample-factory's `--appo_env_config`); '' stands for
    conf/env/default.yaml's."""
    return EnvConfig(**json.loads(text)) if text else defaults("env", EnvConfig)


def env_settings(params) -> dict:
    """The params' `env` section as the plain dict a training run carries (env_config_from_json reads it
    back); {} when the params have none (conf/env/default.yaml's)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(params["env"], resolve=True) if "env" in params else {}


# conf/env/default.yaml is the one place these are written; make() without params plays the same game.
ENV_CONF = conf_file("env")
_PAPER = defaults("env", EnvConfig)
PAPER_OPTIONS = tuple(_PAPER.options)
PAPER_CONFIG_LINES = tuple(_PAPER.config_lines)
OBSERVATION_KEYS = tuple(_PAPER.observation_keys)


class EnvError(ValueError):
    """Bad arguments to `make`; the message names the argument and what is allowed."""


def _write_nethackrc(options: list[str], lines: list[str], player: str, wizard: bool) -> str:
    """Write the config file NetHack will read; return the options string for NLE.

    The file lives in a folder named by the hash of its text, in one folder per user under the temp dir,
    and is never removed: every env with the same settings shares it (replaced atomically, so a reader
    sees the whole text). One folder per env, removed when the env was collected, leaked a folder for
    each env of a process that was killed or left by os._exit, as sample-factory's workers do."""
    for opt in options:
        if "," in opt and not opt.startswith("disclose"):
            raise EnvError(f"NetHack option {opt!r} contains a comma; give one option per list entry")
    # NLE will turn ["@<base>"] into "@<base>,name:<player>[,playmode:debug]".
    suffix = [f"name:{player}"] + (["playmode:debug"] if wizard else [])
    text = "".join(f"OPTIONS={o}\n" for o in [*options, *suffix]) + "".join(f"{l}\n" for l in lines)
    root = Path(tempfile.gettempdir()) / f"mm-nethackrc-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    if root.stat().st_uid != os.getuid():
        raise EnvError(f"{root} belongs to another user; remove it or point TMPDIR elsewhere")
    folder = root / hashlib.sha256(text.encode()).hexdigest()[:16]
    folder.mkdir(exist_ok=True)
    base = folder / "nethackrc"
    rc_path = Path(",".join([str(base), *suffix]))
    if not rc_path.is_file() or rc_path.read_text() != text:
        tmp = folder / f".{os.getpid()}-{threading.get_ident()}.tmp"
        tmp.write_text(text)
        os.replace(tmp, rc_path)
    return "@" + str(base)


# y/n prompts the agent answers itself; all others are declined with ESC (official code: NLE's list
# plus drop, drink and Sell). Object prompts ("What do you want to eat? [fg or ?*]") count as y/n prompts.
SKIP_EXCEPTIONS = (b"eat", b"attack", b"direction?", b"pray", b"drop", b"drink", b"Sell")
# Messages kept in the observation when the --More-- after them is dismissed (navigation checks read them).
KEPT_MESSAGES = (b"You descend the stairs.", b"You climb up the stairs", b"You are frozen")
DESCENT_MESSAGE = b"You descend the stairs."
CONFIDENT_MESSAGE = b"You feel more confident"
_EAT_PROMPT = b"What do you want to eat"
_DRINK_PROMPT = b"What do you want to drink"
_FIRST_LETTER = re.compile(rb"\[([a-zA-Z])")
# Keys the macros and task trackers need, whatever the user asked for as observations.
_INTERNAL_KEYS = ("message", "blstats", "tty_chars", "inv_letters", "inv_oclasses", "inv_strs")
_ESC = 27
_SPACE = ord(" ")
_MAX_SETTLE = 64  # prompts/--More-- handled per step before giving up (never reached in practice)


class PaperNetHack(NLE):
    """NLE with the paper's character, options, actions and macros; reward is the in-game score delta.

    Macros (docs/method.md §8.3), applied in `step`:
      * at "What do you want to eat/drink?", action `y` (= NW) answers with the first listed letter,
        any other action cancels the prompt;
      * WAIT rests 25 turns (`2`, `5`, `.`);
      * DROP drops the first inventory item that was not in the starting inventory (food and coins
        excluded), or does nothing;
      * CAST casts spell `a`, aimed at self when the game asks for a direction and it is healing;
      * "You feel more confident" runs #enhance and picks the first skill;
      * y/n prompts are declined except SKIP_EXCEPTIONS; "You descend the stairs." stays visible
        after its --More--.
    `info` carries `macro` (name or None), `ate` (an eat macro picked an item), `descended`
    (a "You descend the stairs." was shown during the step) and `declined` (the prompts
    auto-declined during the step, as text).
    """

    def __init__(self, cfg: EnvConfig, wizard: bool = False, actions=ACTIONS, **nle_kwargs: Any):
        game_clock.install()  # before NLE copies libnethack.so: a seeded game's clock follows its seed
        self._clock_core: int | None = None
        player = "Agent-" + cfg.character
        at_option = _write_nethackrc(list(cfg.options), list(cfg.config_lines), player, wizard)
        user_keys = tuple(cfg.observation_keys)
        all_keys = user_keys + tuple(k for k in _INTERNAL_KEYS if k not in user_keys)
        super().__init__(
            character=cfg.character,
            max_episode_steps=cfg.max_episode_steps,
            observation_keys=all_keys,
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
        # Expose only the keys the user asked for; the others stay internal.
        self._original_observation_keys = user_keys
        self._original_indices = tuple(self._observation_keys.index(k) for k in user_keys)
        self.observation_space = gym.spaces.Dict({k: self.observation_space[k] for k in user_keys})
        index = self._observation_keys.index
        self._tty_chars_index = index("tty_chars")
        self._inv_letters_index = index("inv_letters")
        self._inv_oclasses_index = index("inv_oclasses")
        self._inv_strs_index = index("inv_strs")
        self._keys = tuple(int(a) for a in self.actions)
        self.starting_letters: frozenset[int] = frozenset()
        self.healing_spell = False
        self._enhance_pending = False
        self._declined: list[bytes] = []
        self._descended = False
        self._resetting = False

    # ----- episode start -------------------------------------------------------------------------
    def seed(self, core=None, disp=None, reseed=False, lgen=None):
        seeds = super().seed(core, disp, reseed, lgen)
        self._clock_core = seeds[0]  # NLE applies seeds to the next reset only; so does the clock
        return seeds

    def reset(self, seed=None, options=None):
        if self._resetting:  # NLE retries a reset that never reached the game: an options problem
            screen = " ".join(self.screen_text().split())
            raise EnvError(
                "NetHack did not start a game (bad option or config line in conf/env?); its screen says: "
                + screen[:600]
            )
        self._resetting = True
        game_clock.set_seed(self._clock_core)
        self._clock_core = None
        try:
            obs, info = super().reset(seed=seed, options=options)
        finally:
            self._resetting = False
        last = self.last_observation
        classes = last[self._inv_oclasses_index]
        letters = last[self._inv_letters_index]
        # The official code records every non-food letter; DROP later also skips coins.
        self.starting_letters = frozenset(int(l) for l, c in zip(letters, classes) if l
                                          and c != nethack.FOOD_CLASS)
        books = [bytes(s) for s, c in zip(last[self._inv_strs_index], classes) if c == nethack.SPBOOK_CLASS]
        self.healing_spell = any(b"healing" in b for b in books)
        self._enhance_pending = False
        return obs, info

    # ----- one agent step ------------------------------------------------------------------------
    def step(self, action: int):
        # NLE re-uses its arrays: keep copies of what is read after the game moves on (NLE copies
        # every array here; the reward and the macros need only these three).
        last_observation = list(self.last_observation)
        for i in (self._blstats_index, self._inv_letters_index, self._inv_oclasses_index):
            last_observation[i] = last_observation[i].copy()
        key = self._keys[action]
        macro = None
        ate = False
        self._declined = []
        self._descended = False

        if self.last_observation[self._internal_index][1]:  # an open prompt: the eat / drink macros
            msg = bytes(self.last_observation[self._message_index])
            is_eat = _EAT_PROMPT in msg
            if is_eat or _DRINK_PROMPT in msg:
                first = _FIRST_LETTER.search(msg)
                if first and key == ord("y"):
                    key = first.group(1)[0]
                    macro, ate = ("eat", True) if is_eat else ("quaff", False)
                else:
                    key = _SPACE

        step = self.nethack.step
        if macro is not None or key == _SPACE:  # a prompt answer, never a command macro
            observation, done = step(key)
        elif key == A.MiscDirection.WAIT:
            step(ord("2"))
            step(ord("5"))
            observation, done = step(ord("."))
            macro = "wait"
        elif key == A.Command.DROP:
            observation, done = step(key)
            new_items = self._new_items(last_observation)
            observation, done = step(new_items[0] if new_items else _ESC)
            macro = "drop" if new_items else None
        elif key == A.Command.CAST:
            step(key)
            observation, done = step(ord("a"))
            if self.healing_spell and not done and observation[self._internal_index][1] and (
                b"direction" in bytes(observation[self._message_index])
            ):
                observation, done = step(ord("."))
            macro = "cast"
        else:
            observation, done = step(key)

        if observation[self._program_state_index][0] == 1 or not self._allow_all_modes:
            observation, done = self._perform_known_steps(observation, done, exceptions=True)

        self._steps += 1
        self.last_observation = observation
        end_status = self._get_end_status(observation, done)
        reward = float(self._reward_fn(last_observation, action, observation, end_status))
        aborted = end_status == self.StepStatus.ABORTED
        if end_status and not done:
            self._quit_game(observation, done)
            done = True
        info = self._get_information(end_status)
        info["macro"] = macro
        info["ate"] = ate
        info["descended"] = self._descended
        info["declined"] = [m.rstrip(b"\0").decode("latin-1") for m in self._declined]
        # The step cap is a truncation (gymnasium), not a game end; NLE reports it as done.
        return self._get_observation(observation), reward, done and not aborted, aborted, info

    def _new_items(self, observation) -> list[int]:
        """Letters of inventory items not in the starting inventory (food and coins excluded)."""
        letters = observation[self._inv_letters_index]
        classes = observation[self._inv_oclasses_index]
        return [
            int(l) for l, c in zip(letters, classes)
            if l and c != nethack.FOOD_CLASS and c != nethack.COIN_CLASS
            and int(l) not in self.starting_letters
        ]

    def _perform_known_steps(self, observation, done, exceptions=True):
        """Dismiss --More--, decline text and most y/n prompts, run the #enhance macro."""
        for _ in range(_MAX_SETTLE):
            if done:
                break
            internal = observation[self._internal_index]
            msg = bytes(observation[self._message_index])
            if CONFIDENT_MESSAGE in msg:
                self._enhance_pending = True
            if internal[3]:  # --More--
                kept = None
                if any(m in msg for m in KEPT_MESSAGES):
                    kept = observation[self._message_index].copy()
                    self._descended |= DESCENT_MESSAGE in msg
                observation, done = self.nethack.step(_SPACE)
                if kept is not None:  # the official code's fix: the next frame shows it instead
                    i = self._message_index
                    observation = (*observation[:i], kept, *observation[i + 1:])
                continue
            if internal[2]:  # a line of text: the agent cannot type
                observation, done = self.nethack.step(_ESC)
                continue
            if internal[1]:
                if exceptions and (self._allow_all_yn_questions or any(e in msg for e in SKIP_EXCEPTIONS)):
                    break
                self._declined.append(msg)
                observation, done = self.nethack.step(_ESC)
                continue
            if self._enhance_pending and exceptions:
                self._enhance_pending = False
                self.nethack.step(A.Command.ENHANCE)
                observation, done = self.nethack.step(ord("a"))
                continue
            break
        if DESCENT_MESSAGE in bytes(observation[self._message_index]):
            self._descended = True
        return observation, done

    # ----- raw access for task trackers and test scenarios (no agent step is counted) ----------
    def message(self) -> bytes:
        """The current top-line message (after the macros), as bytes."""
        return bytes(self.last_observation[self._message_index]).rstrip(b"\0")

    def blstats(self) -> np.ndarray:
        return self.last_observation[self._blstats_index]

    def screen_text(self, observation=None) -> str:
        tty = (observation or self.last_observation)[self._tty_chars_index]
        return "\n".join(bytes(row).decode("latin-1").rstrip() for row in tty)

    def ready_for_command(self) -> bool:
        """True when the game waits for a command (no prompt, menu or --More-- open)."""
        internal = self.last_observation[self._internal_index]
        return bool(self.nethack.in_normal_game()) and not (internal[1] or internal[2] or internal[3])

    def send_keys(self, keys, settle: bool = True):
        """Type raw keys (str, bytes or ints) into NetHack outside the agent's action set.

        For test scenarios (wizard commands take text) and probes. No step is counted. With
        `settle`, --More-- and prompts left afterwards are handled as after an agent step.
        Returns the observation dict.
        """
        if isinstance(keys, str):
            keys = keys.encode("latin-1")
        observation, done = self.last_observation, False
        for k in keys:
            observation, done = self.nethack.step(int(k))
            if done:
                break
        if settle and not done:
            self._declined = []
            observation, done = self._perform_known_steps(observation, done, exceptions=True)
        self.last_observation = observation
        return self._get_observation(observation)

    def overview_text(self) -> str | None:
        """Open #overview (Ctrl-O), return its text (all pages) and close it, invisibly to the agent.

        The observation arrays are restored afterwards, so the frames the agent was given are
        unchanged and no step is counted. None when the game is not waiting for a command.
        """
        if not self.ready_for_command():
            return None
        saved = [a.copy() for a in self.last_observation]
        pages = []
        observation, done = self.nethack.step(A.Command.OVERVIEW)
        for _ in range(20):  # one page per --More--; the text window closes after the last
            if done or not observation[self._internal_index][3]:
                break
            pages.append(self.screen_text(observation))
            observation, done = self.nethack.step(_SPACE)
        else:
            observation, done = self.nethack.step(_ESC)
        for live, old in zip(observation, saved):  # the live buffers back to the agent's frame
            np.copyto(live, old)
        return "\n".join(pages)


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
         track: bool = True, **overrides: Any) -> gym.Env:
    """The paper's env; with `task`, wrapped with that task's tracker (see benchmark.tasks).

    track: False keeps a small variant's own levels but not its tracker (no success ends an episode), for
    play that is not an evaluation (data collection, skill training and skill measurement).
    seed: episode k after construction plays the game of seed `seed + k` (None: NetHack's own entropy).
    wizard: NetHack's debug mode, for building test scenarios.
    overrides: fields of EnvConfig (e.g. max_episode_steps=100) or extra NLE keyword arguments.
    """
    base = cfg or defaults("env", EnvConfig)
    fields = {k: overrides.pop(k) for k in list(overrides) if k in EnvConfig.__dataclass_fields__}
    known_nle = {"save_ttyrec_every", "savedir", "allow_all_yn_questions", "allow_all_modes",
                 "spawn_monsters", "render_mode", "actions"}
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
    tracker = None
    if task is not None:  # validated before a game is started
        from benchmark.tasks import TASKS, TaskWrapper, load_task_config  # local: tasks import this module

        tracker = TASKS[task](load_task_config(task)) if task in TASKS else load_task_config(task)
    env: gym.Env = PaperNetHack(cfg, wizard=wizard, **overrides)
    # small task variants play their own first levels (benchmark.variants)
    if hasattr(tracker, "install_level"):
        tracker.install_level(env)
    env = SeededReset(env, seed)
    return env if tracker is None or not track else TaskWrapper(env, tracker)


def decode_message(message: np.ndarray) -> str:
    """The top-line message as text (latin-1: NetHack messages are not always valid UTF-8)."""
    return bytes(message).rstrip(b"\0").decode("latin-1")


def is_blank(obs) -> bool:
    """Whether `obs` is NLE's observation after the game ended, by a death or at the step cap (every
    blstats field zero, no message): not a game state, so nothing reads a depth, a message or a reward
    from it."""
    return not np.asarray(obs["blstats"]).any()


def died(terminated: bool, info: dict) -> bool:
    """Whether a step ended the game in the hero's death (NLE's StepStatus.DEATH), not a truncation, a
    task's success or an aborted game."""
    return bool(terminated) and int(info.get("end_status", 0)) == int(NLE.StepStatus.DEATH)
