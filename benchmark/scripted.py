"""The scripted reference agent of the small task variants: a map-reading policy, one behaviour per family.

It reads the map like a person would: it walks to the nearest down staircase (navigation), picks up the
items in the room and carries them to the shop or the altar (interaction), or fights, collects gold and
leaves by the up stairs (composite). It is the calibration's competent agent (benchmark/calibrate.py), a
behaviour source of `collect` (kind scripted), the walker that brings a skill to its start
(maestromotif/skill_starts.py), and a reference method in the tables (conf/method/scripted.yaml, stage
evaluate_reference). Part of the benchmark, not a baseline: it knows the variants' levels.
"""
from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from nle import nethack

from benchmark.config import ConfigError
from benchmark.env import ACTION_INDEX
from benchmark.io import write_json
from benchmark.method import Method, Policy
from benchmark.seeding import derive_seed
from benchmark.variants import VARIANTS, GoldenExitSmall

_PEACEFUL = ("shopkeeper", "watchman", "watch captain", "aligned priest", "high priest", "Oracle")


def _glyph_tables() -> dict[str, np.ndarray]:
    """Per-glyph lookups, computed once: what the scripted agent needs to read a map."""
    n = nethack.MAX_GLYPH
    cmap = np.full(n, -1, dtype=np.int16)
    obj_class = np.full(n, -1, dtype=np.int16)
    monster = np.zeros(n, dtype=bool)
    peaceful = np.zeros(n, dtype=bool)  # kinds that are peaceful on these levels: never attacked
    for g in range(n):
        if nethack.glyph_is_cmap(g):
            cmap[g] = nethack.glyph_to_cmap(g)
        elif nethack.glyph_is_object(g):
            obj_class[g] = ord(nethack.objclass(nethack.glyph_to_obj(g)).oc_class)
        elif nethack.glyph_is_monster(g) or nethack.glyph_is_invisible(g):
            monster[g] = True
            if nethack.glyph_is_monster(g):
                peaceful[g] = nethack.permonst(nethack.glyph_to_mon(g)).mname in _PEACEFUL
    # NetHack 3.6 defsym indices: doorways/doors 12-16, floor and corridors 19-22, stairs/ladders 23-26,
    # altar 27, grave 28, throne 29, sink 30, fountain 31.
    walkable_cmap = set(range(12, 17)) | set(range(19, 32))
    walkable = np.isin(cmap, sorted(walkable_cmap)) | (obj_class >= 0) | monster
    walkable[obj_class == nethack.ROCK_CLASS] = False  # boulders (and statues) block a simple walker
    return {"cmap": cmap, "obj_class": obj_class, "monster": monster, "peaceful": peaceful,
            "walkable": walkable}


_T = _glyph_tables()
S_DOWNSTAIR, S_UPSTAIR, S_UPLADDER, S_DOWNLADDER, S_ALTAR = 24, 23, 25, 26, 27
_DOORS_NO_DIAGONAL = (13, 14, 15, 16)  # doors (open, closed); doorless doorways (12) allow diagonal moves
_COLLECT = (nethack.SCROLL_CLASS, nethack.POTION_CLASS)  # what the levels offer (autopicked up)
_STEPS = {(0, -1): "N", (1, 0): "E", (0, 1): "S", (-1, 0): "W",
          (1, -1): "NE", (1, 1): "SE", (-1, 1): "SW", (-1, -1): "NW"}


def _bfs(glyphs: np.ndarray, start: tuple[int, int], goals: set[tuple[int, int]],
         blocked: set[tuple[int, int]] = frozenset(), doors: set[tuple[int, int]] = frozenset()
         ) -> tuple[int, int] | None:
    """First step (dx, dy) of a shortest walk from start to any goal over known squares, or None.

    `doors`: door squares remembered from earlier frames (the hero may stand on one, hiding it)."""
    if not goals:
        return None
    walkable = _T["walkable"][glyphs]
    no_diag = np.isin(_T["cmap"][glyphs], _DOORS_NO_DIAGONAL)
    for x, y in doors:
        no_diag[y, x] = True
    h, w = glyphs.shape
    first: dict[tuple[int, int], tuple[int, int] | None] = {start: None}
    queue = deque([start])
    while queue:
        x, y = queue.popleft()
        if (x, y) in goals and (x, y) != start:
            return first[(x, y)]
        for dx, dy in _STEPS:
            nx, ny = x + dx, y + dy
            if not (0 <= nx < w and 0 <= ny < h) or (nx, ny) in first or (nx, ny) in blocked:
                continue
            if not walkable[ny, nx] and (nx, ny) not in goals:
                continue
            if dx and dy and (no_diag[y, x] or no_diag[ny, nx]):
                continue
            first[(nx, ny)] = first[(x, y)] or (dx, dy)
            queue.append((nx, ny))
    return None


def _where(mask: np.ndarray) -> set[tuple[int, int]]:
    ys, xs = np.nonzero(mask)
    return {(int(x), int(y)) for x, y in zip(xs, ys)}


class _Episode:
    """What the scripted agent remembers within one episode."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.start: tuple[int, int] | None = None
        self.start_letters: frozenset[int] | None = None
        self.stairs: dict[tuple[int, int], set[tuple[int, int]]] = {}  # level -> down stairs seen
        self.upstairs: dict[tuple[int, int], set[tuple[int, int]]] = {}  # level -> up stairs seen
        self.altars: dict[tuple[int, int], set[tuple[int, int]]] = {}
        self.doors: dict[tuple[int, int], set[tuple[int, int]]] = {}  # doors that forbid diagonal moves
        self.level: tuple[int, int] = (0, 1)
        self.kills = 0
        self.delivered = False  # every collected item was dropped in the shop / on the altar
        self.last_pos: tuple[int, int] | None = None
        self.last_action = ""
        self.stuck = 0
        self.steps = 0  # navigation steps taken
        self.climb_at: int | None = None  # `climb`: the step from which it heads back up to level 1
        self.climbing = False


def check_climb(climb: float, name: str) -> None:
    """`climb` is a chance: ConfigError naming `name` (e.g. collect's key) otherwise."""
    if not 0.0 <= climb <= 1.0:
        raise ConfigError(f"{name} must be within [0, 1], got {climb}")


class ScriptedPolicy(Policy):
    """A map-reading reference agent for the small variants (one behaviour per task family)."""

    def __init__(self, task: str, seed: int = 0, climb: float = 0.0):
        """`climb` (navigation only): on arriving at a level below level 1 for the first time, the chance that
        the agent explores it for 30-120 steps and then climbs back up to level 1 by the up stairs, before it
        heads down again. Ascents are all but absent otherwise (the Ascender's data, collect's `climb`)."""
        check_climb(climb, "scripted climb")
        self.climb = climb
        if task not in VARIANTS:
            raise ConfigError(f"the scripted reference plays only the small variants {list(VARIANTS)}, "
                              f"not {task!r}")
        self.family = VARIANTS[task].base_task
        self.seed = seed

    def initial_state(self, num_envs: int) -> list[_Episode]:
        return [_Episode(np.random.default_rng([self.seed, i])) for i in range(num_envs)]

    def seed_episodes(self, state: list[_Episode], env_ids, episode_seeds) -> list[_Episode]:
        for i, s in zip(env_ids, episode_seeds):  # same episode seed, same tie-breaks: repeatable
            state[int(i)] = _Episode(np.random.default_rng([derive_seed(self.seed, "scripted"), int(s)]))
        return state

    def act(self, obs: dict[str, np.ndarray], state: list[_Episode], episode_start: np.ndarray):
        actions = np.zeros(len(state), dtype=np.int64)
        for i, memory in enumerate(state):
            if episode_start[i] and memory.start is not None:
                state[i] = memory = _Episode(memory.rng)
            memory.last_action = self._act_one({k: v[i] for k, v in obs.items()}, memory)
            actions[i] = ACTION_INDEX[memory.last_action]
        return actions, state

    # one env ------------------------------------------------------------------------------------------
    def _act_one(self, o: dict[str, np.ndarray], m: _Episode) -> str:
        msg = bytes(o["message"]).rstrip(b"\0")
        bl = o["blstats"]
        pos = (int(bl[nethack.NLE_BL_X]), int(bl[nethack.NLE_BL_Y]))
        level = (int(bl[nethack.NLE_BL_DNUM]), int(bl[nethack.NLE_BL_DEPTH]))
        if m.start is None:
            m.start = pos
            m.start_letters = frozenset(int(l) for l in o["inv_letters"] if l)
        if b"Sell it?" in msg or b"Sell them?" in msg:
            return "NW"  # `y`: accept the shopkeeper's offer
        if b"Really attack" in msg:
            return "MORE"  # Enter takes the default answer, no
        if b"kill" in msg or b"destroy" in msg:
            m.kills += 1
        moved = m.last_action in _STEPS.values()
        m.stuck = m.stuck + 1 if moved and pos == m.last_pos else 0
        m.last_pos = pos
        if m.stuck >= 4:  # a peaceful monster in the way, a closed door...: a random step unsticks
            m.stuck = 0
            return str(m.rng.choice(list(_STEPS.values())))
        glyphs = o["glyphs"]
        hostile = _T["monster"][glyphs] & ~_T["peaceful"][glyphs]
        adjacent = sorted(p for p in _where(hostile) if max(abs(p[0] - pos[0]), abs(p[1] - pos[1])) == 1)
        if adjacent:  # fight whatever hostile stands next to the hero
            return _STEPS[(adjacent[0][0] - pos[0], adjacent[0][1] - pos[1])]
        cmap = _T["cmap"][glyphs]
        if level not in m.stairs and level[1] > m.level[1]:  # arrived from above: on the up stairs
            m.upstairs.setdefault(level, set()).add(pos)
            if level[1] >= 2 and self.climb > 0 and not m.climbing and m.rng.random() < self.climb:
                m.climb_at = m.steps + int(m.rng.integers(30, 121))
        m.stairs.setdefault(level, set()).update(_where((cmap == S_DOWNSTAIR) | (cmap == S_DOWNLADDER)))
        m.upstairs.setdefault(level, set()).update(_where((cmap == S_UPSTAIR) | (cmap == S_UPLADDER)))
        m.altars.setdefault(level, set()).update(_where(cmap == S_ALTAR))
        m.doors.setdefault(level, set()).update(_where(np.isin(cmap, _DOORS_NO_DIAGONAL)))
        m.level = level
        act = {"gnomish": self._navigate, "delphi": self._navigate, "transactions": self._shop,
               "price": self._shop, "levelupsell": self._shop, "buc": self._altar,
               "goldenexit": self._golden_exit}[self.family]
        return act(o, m, pos, level)

    def _step_to(self, glyphs, pos, goals, m: _Episode, blocked=frozenset()) -> str | None:
        step = _bfs(glyphs, pos, set(goals) - {pos}, blocked, m.doors.get(m.level, set()))
        return None if step is None else _STEPS[step]

    def _explore(self, glyphs, pos, m: _Episode) -> str:
        """Towards the nearest known square next to unexplored space; SEARCH when there is none."""
        walkable = _T["walkable"][glyphs]
        unknown = glyphs == nethack.GLYPH_CMAP_OFF  # S_stone: never seen (or solid rock)
        near_unknown = np.zeros_like(unknown)
        for dx, dy in _STEPS:
            near_unknown |= np.roll(np.roll(unknown, dy, axis=0), dx, axis=1)
        return self._step_to(glyphs, pos, _where(walkable & near_unknown), m) or "SEARCH"

    def _navigate(self, o, m: _Episode, pos, level) -> str:
        m.steps += 1
        if m.climb_at is not None and m.steps >= m.climb_at:
            m.climb_at, m.climbing = None, True
        if m.climbing and level[1] <= 1:
            m.climbing = False  # back on level 1 (never up from there: that leaves the dungeon)
        if m.climbing:
            up = m.upstairs.get(level, set())
            if pos in up:
                return "UP"
            return self._step_to(o["glyphs"], pos, up, m) or self._explore(o["glyphs"], pos, m)
        if m.climb_at is not None:  # explore the new level before turning back
            return self._explore(o["glyphs"], pos, m)
        stairs = m.stairs[level]
        if pos in stairs:
            return "DOWN"
        return self._step_to(o["glyphs"], pos, stairs, m) or self._explore(o["glyphs"], pos, m)

    def _new_items(self, o, m: _Episode) -> int:
        skip = (nethack.FOOD_CLASS, nethack.COIN_CLASS)
        return sum(1 for l, c in zip(o["inv_letters"], o["inv_oclasses"])
                   if l and int(l) not in m.start_letters and int(c) not in skip)

    def _items_on_floor(self, glyphs, exclude=frozenset()) -> set[tuple[int, int]]:
        return _where(np.isin(_T["obj_class"][glyphs], _COLLECT)) - set(exclude)

    def _shop(self, o, m: _Episode, pos, level) -> str:
        if m.delivered:
            return "SEARCH"  # sold everything: wait out the episode (fights are handled before)
        glyphs = o["glyphs"]
        cmap = _T["cmap"][glyphs]
        doors = _where((cmap >= 12) & (cmap <= 16))
        # Outside = what the start square reaches without a door; the shop is the known floor beyond it.
        outside = self._reachable(glyphs, m.start, blocked=doors)
        floor = (_where(_T["walkable"][glyphs] & ~_T["monster"][glyphs]) | {pos}) - doors
        inside = floor - outside
        items = self._items_on_floor(glyphs, exclude=inside)
        if pos in outside and items:
            return self._step_to(glyphs, pos, items, m) or self._explore(glyphs, pos, m)
        if self._new_items(o, m) == 0:
            m.delivered = m.last_action == "NW"  # the last sale was just accepted
            return "SEARCH"
        # Inside the shop, away from its door (the shopkeeper's post): drop, and sell at the prompt.
        deep = {p for p in inside
                if min((abs(p[0] - d[0]) + abs(p[1] - d[1]) for d in doors), default=9) >= 2}
        if pos in deep:
            return "DROP"
        return self._step_to(glyphs, pos, deep or doors, m) or self._explore(glyphs, pos, m)

    def _reachable(self, glyphs, start, blocked) -> set[tuple[int, int]]:
        walkable = _T["walkable"][glyphs]
        h, w = glyphs.shape
        seen = {start}
        queue = deque([start])
        while queue:
            x, y = queue.popleft()
            for dx, dy in _STEPS:
                p = (x + dx, y + dy)
                inside_map = 0 <= p[0] < w and 0 <= p[1] < h
                if inside_map and p not in seen and p not in blocked and walkable[p[1], p[0]]:
                    seen.add(p)
                    queue.append(p)
        return seen

    def _altar(self, o, m: _Episode, pos, level) -> str:
        if m.delivered:
            return "SEARCH"
        glyphs = o["glyphs"]
        altars = m.altars[level]
        items = self._items_on_floor(glyphs, exclude=altars)
        if items:
            return self._step_to(glyphs, pos, items, m) or self._explore(glyphs, pos, m)
        if self._new_items(o, m) == 0:
            m.delivered = m.last_action == "DROP"
            return "SEARCH"
        if pos in altars:
            return "DROP"
        return self._step_to(glyphs, pos, altars, m) or self._explore(glyphs, pos, m)

    def _golden_exit(self, o, m: _Episode, pos, level) -> str:
        glyphs = o["glyphs"]
        monsters = _where(_T["monster"][glyphs] & ~_T["peaceful"][glyphs]) - {pos}
        gold = int(o["blstats"][nethack.NLE_BL_GOLD])
        if m.kills >= GoldenExitSmall.kills_needed and gold >= GoldenExitSmall.gold_needed:
            return "UP" if pos == m.start else (self._step_to(glyphs, pos, {m.start}, m) or "SEARCH")
        coins = _where(_T["obj_class"][glyphs] == nethack.COIN_CLASS)
        if gold < GoldenExitSmall.gold_needed and coins:
            return self._step_to(glyphs, pos, coins, m) or self._explore(glyphs, pos, m)
        if monsters:
            return self._step_to(glyphs, pos, monsters, m) or "SEARCH"
        return "SEARCH"  # let new monsters come


class ScriptedMethod(Method):
    """conf/method/scripted.yaml: the calibration's competent reference; nothing to fit."""

    name = "scripted"
    per_task = False

    def fit(self, params: Any, out_dir: Path, seed: int, task: str | None = None) -> Path:
        out_dir = Path(out_dir)
        write_json(out_dir / "method.json", {"method": self.name, "seed": seed})
        return out_dir

    def policy(self, artefact: Path | None, task: str, params: Any) -> ScriptedPolicy:
        return ScriptedPolicy(task)
