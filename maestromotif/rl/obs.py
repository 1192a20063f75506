"""What the skill network sees: the env observation turned into network inputs (one wrapper, used in
training workers and in the evaluation process alike, so both feed the network the same thing).

Keys produced (see maestromotif.rl.network):
  screen      uint8 (3, 72, 72)  crop_mode "rgb": 12x12 characters around the agent, rendered 6x6 px each
  crop_chars  uint8 (12, 12)     crop_mode "embed": the same crop as character codes ...
  crop_colors uint8 (12, 12)     ... and NetHack colours
  stats       float32 (35)       27 blstats + 3 extras (spell type, #potions, #comestibles) + skill one-hot
              (raw;
                                 the network scales it)
  message     uint8 (256)        the top-line message bytes
"""
from __future__ import annotations

import functools

import cv2
import gymnasium as gym
import numpy as np
from nle import nethack

from maestromotif.rl.network import CELL, CROP, CROP_MODES, STATS_DIM
from maestromotif.skills import SKILLS

NUM_SKILLS = len(SKILLS)  # the skill one-hot: entry k is maestromotif.skills.SKILLS[k]
HALF = CROP // 2
AGENT_CELL = (HALF + 1, HALF)  # where the agent lands in the crop (see PolicyObservation.observation)

# The 16 NetHack colours (CLR_BLACK .. CLR_WHITE) as RGB, the usual curses palette; black is drawn dark grey
# so that black monsters stay visible, as terminal renderers do.
PALETTE = np.array([
    (64, 64, 64), (170, 0, 0), (0, 170, 0), (170, 85, 0), (0, 0, 170), (170, 0, 170), (0, 170, 170),
    (170, 170, 170), (85, 85, 85), (255, 85, 85), (85, 255, 85), (255, 255, 85), (85, 85, 255),
    (255, 85, 255), (85, 255, 255), (255, 255, 255),
], dtype=np.float32)

# Starting Monk spellbooks -> the official spell feature (docs/method.md §6: 0 healing, 1 protection,
# 2 sleep).
SPELL_FEATURE = {"healing": 0.0, "protection": 1.0, "sleep": 2.0}


@functools.lru_cache(maxsize=1)
def glyph_table() -> np.ndarray:
    """uint8 (256 chars, 16 colours, 6, 6, 3): every character in every colour, drawn once.

    The paper draws the Hack font at size 9 and rescales to 6x6; Hack is not shipped here, so each
    character is drawn with OpenCV's Hershey font at 4x resolution and area-averaged down to 6x6.
    """
    big = CELL * 4
    masks = np.zeros((256, CELL, CELL), dtype=np.float32)
    for code in range(33, 256):
        ch = chr(code) if code < 127 else "?"  # NetHack's DECgraphics are off: codes >= 127 are rare
        canvas = np.zeros((big, big), dtype=np.uint8)
        cv2.putText(canvas, ch, (3, big - 5), cv2.FONT_HERSHEY_PLAIN, 1.5, 255, 2, cv2.LINE_AA)
        masks[code] = cv2.resize(canvas, (CELL, CELL), interpolation=cv2.INTER_AREA) / 255.0
    table = masks[:, None, :, :, None] * PALETTE[None, :, None, None, :]
    return np.clip(table, 0, 255).astype(np.uint8)


def crop_around(tty: np.ndarray, row: int, col: int) -> np.ndarray:
    """The CROP x CROP window of a (24, 80) tty array from (row - HALF, col - HALF); outside cells are 0.

    tty[row, col] lands at [HALF, HALF] of the window (the lower right of its four central cells).
    """
    out = np.zeros((CROP, CROP), dtype=tty.dtype)
    r0, c0 = row - HALF, col - HALF
    rs, cs = max(r0, 0), max(c0, 0)
    re, ce = min(r0 + CROP, tty.shape[0]), min(c0 + CROP, tty.shape[1])
    if rs < re and cs < ce:
        out[rs - r0:re - r0, cs - c0:ce - c0] = tty[rs:re, cs:ce]
    return out


def render_crop(chars: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """(12, 12) chars + colours -> uint8 (3, 72, 72) image, by one gather from the glyph table."""
    cells = glyph_table()[chars, colors & 15]  # (12, 12, 6, 6, 3)
    return np.ascontiguousarray(cells.transpose(4, 0, 2, 1, 3).reshape(3, CROP * CELL, CROP * CELL))


def inventory_extras(obs: dict) -> tuple[float, float]:
    """(# potions, # comestibles) in the inventory: the counts of inventory slots of those classes."""
    classes = obs["inv_oclasses"]
    return float(np.sum(classes == nethack.POTION_CLASS)), float(np.sum(classes == nethack.FOOD_CLASS))


def spell_feature(obs: dict) -> float:
    """Which spellbook the Monk started with, from the inventory text (0 when none is found)."""
    for row in obs["inv_strs"]:
        text = bytes(row).rstrip(b"\0").decode("latin-1")
        if "spellbook of " in text:
            return SPELL_FEATURE.get(text.split("spellbook of ", 1)[1].strip(), 0.0)
    return 0.0


def observation_space(crop_mode: str) -> gym.spaces.Dict:
    if crop_mode not in CROP_MODES:
        raise ValueError(f"crop_mode must be one of {CROP_MODES}, got {crop_mode!r}")
    spaces: dict[str, gym.Space] = {}
    if crop_mode == "rgb":
        spaces["screen"] = gym.spaces.Box(0, 255, (3, CROP * CELL, CROP * CELL), np.uint8)
    else:
        spaces["crop_chars"] = gym.spaces.Box(0, 255, (CROP, CROP), np.uint8)
        spaces["crop_colors"] = gym.spaces.Box(0, 15, (CROP, CROP), np.uint8)
    spaces["stats"] = gym.spaces.Box(-np.inf, np.inf, (STATS_DIM,), np.float32)
    spaces["message"] = gym.spaces.Box(0, 255, (256,), np.uint8)
    return gym.spaces.Dict(spaces)


class PolicyObservation(gym.ObservationWrapper):
    """Maps the paper env's observation (with the options wrapper's "skill_onehot") to network inputs."""

    def __init__(self, env: gym.Env, crop_mode: str = "rgb", keep_raw: bool = False):
        super().__init__(env)
        self.crop_mode = crop_mode
        self.keep_raw = keep_raw  # deployment: the harness still reads blstats etc. beside the network inputs
        self.network_keys = tuple(observation_space(crop_mode).spaces)
        space = observation_space(crop_mode)
        if keep_raw:
            space = gym.spaces.Dict({**env.observation_space.spaces, **space.spaces})
        self.observation_space = space
        self._spell = 0.0
        if crop_mode == "rgb":
            glyph_table()  # build once per process, before the first step

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._spell = spell_feature(obs)  # the starting spellbook does not change during an episode
        return self.observation(obs), info

    def observation(self, obs: dict) -> dict:
        if "skill_onehot" not in obs:
            raise KeyError(
                "observation has no 'skill_onehot': wrap the env with maestromotif.options.OptionsWrapper "
                "before PolicyObservation"
            )
        blstats = obs["blstats"]
        # As the official renderer: the window starts at (y - HALF, x - HALF) of the tty, with the map's y
        # used as a tty row although map row y is tty row y + 1 (the message line is row 0). So the agent sits
        # at crop row HALF + 1 = 7 (7 rows above it, 4 below) and column HALF = 6.
        row, col = int(blstats[nethack.NLE_BL_Y]), int(blstats[nethack.NLE_BL_X])
        chars = crop_around(obs["tty_chars"], row, col)
        colors = crop_around(obs["tty_colors"], row, col)
        stats = np.empty(STATS_DIM, dtype=np.float32)
        stats[:27] = blstats
        stats[27] = self._spell
        stats[28:30] = inventory_extras(obs)
        stats[30:] = obs["skill_onehot"]
        out = {**obs} if self.keep_raw else {}
        out.update(stats=stats, message=obs["message"])
        if self.crop_mode == "rgb":
            out["screen"] = render_crop(chars, colors)
        else:
            out["crop_chars"] = chars
            out["crop_colors"] = colors.astype(np.uint8)
        return out
