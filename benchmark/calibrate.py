"""Stage `calibrate`: how far above chance is a competent agent on each small task variant?

    python -m benchmark.calibrate                      # params.yaml's `calibrate` section
    python -m benchmark.calibrate --methods random scripted maestromotif --tasks buc_small

For every method (a conf/method/<name>.yaml, built by Hydra like in `evaluate`) and every small variant
(benchmark.variants) it plays `episodes` seeded episodes and writes
  data/calibrate/<method>/<task>/episodes.jsonl   one record per episode (resumable, like evaluate)
  results/calibration.csv                         per (method, task): n, mean, standard error, steps/s
  results/calibration.md                          the same as a table, with random vs scripted side by side

Episode k of task t plays the NetHack game of derive_seed(root_seed, "calibrate", t, k) for every method,
so the methods face the same games and a rerun gives the same numbers.

The scripted reference (`ScriptedPolicy`, conf/method/scripted.yaml) reads the map like a person would:
it walks to the nearest down staircase (navigation), picks up the items in the room and carries them to
the shop or the altar (interaction), or fights, collects gold and leaves by the up stairs (composite).
It is the "competent agent" of the calibration: a variant is useful when it scores clearly above the
uniform random policy (conf/method/random.yaml) within the episode cap.
"""
from __future__ import annotations

import argparse
import logging
import math
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from nle import nethack
from omegaconf import DictConfig, OmegaConf

from benchmark import provenance
from benchmark.config import ConfigError, load_params, root, section
from benchmark.env import ACTION_INDEX, EnvConfig, make
from benchmark.evaluate import EvaluateConfig, build_method, method_artefact, method_config_path, method_spec
from benchmark.io import read_json, write_json, write_text
from benchmark.logs import setup_logging
from benchmark.method import Method, Policy
from benchmark.playback import EPISODES_FILE, play_and_record
from benchmark.seeding import derive_seed, episode_seed
from benchmark.variants import VARIANTS, GoldenExitSmall, _fingerprint

log = logging.getLogger(__name__)


@dataclass
class CalibrateConfig:
    """The `calibrate` section of the params (conf/calibrate/default.yaml)."""

    tasks: list[str]
    methods: list[str]
    episodes: int  # per method x task; the standard error shrinks as 1/sqrt(episodes)
    num_envs: int  # envs stepped together (one process)
    max_episode_steps: int  # the small budget a competent agent must succeed in
    seed: int  # which training seed's fit() artefact a trained method loads
    # Methods that learn: each gets its own z against the baseline, and a variant is `trained_useful` when one
    # of them beats it with z >= 3. A per-task one without a fit() artefact for a variant is trained here,
    # under <data_dir>/<fit_dir> (not the pipeline's data/fit), for `train_for_env_steps` env steps.
    trained: list[str]
    # false: a trained method without an artefact for a variant is left out there
    train_missing: bool
    train_for_env_steps: int
    fit_dir: str
    reference: str  # the competent agent of the table's comparison column
    baseline: str  # the chance level
    out_dir: str  # data/<out_dir>/<method>/<task>/
    csv: str  # under results_dir
    markdown: str


# ----- the scripted reference agent ---------------------------------------------------------------------
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
S_DOWNSTAIR, S_UPSTAIR, S_DOWNLADDER, S_ALTAR = 24, 23, 26, 27
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
        self.altars: dict[tuple[int, int], set[tuple[int, int]]] = {}
        self.doors: dict[tuple[int, int], set[tuple[int, int]]] = {}  # doors that forbid diagonal moves
        self.level: tuple[int, int] = (0, 1)
        self.kills = 0
        self.delivered = False  # every collected item was dropped in the shop / on the altar
        self.last_pos: tuple[int, int] | None = None
        self.last_action = ""
        self.stuck = 0


class ScriptedPolicy(Policy):
    """A map-reading reference agent for the small variants (one behaviour per task family)."""

    def __init__(self, task: str, seed: int = 0):
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
        m.stairs.setdefault(level, set()).update(_where((cmap == S_DOWNSTAIR) | (cmap == S_DOWNLADDER)))
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


# ----- the stage ----------------------------------------------------------------------------------------
def standard_error(values: Sequence[float]) -> float:
    """Standard error of the mean (sample standard deviation / sqrt(n)); 0 for n < 2."""
    v = np.asarray(values, dtype=float)
    return float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0


def variant_fit_params(params: DictConfig, method_name: str, tasks: Sequence[str], train_for_env_steps: int,
                       fit_dir: str | None = None) -> DictConfig:
    """`params` for fitting `method_name` on small variants: the variants added to `tasks` (fit() trains only
    listed tasks), the method's trainer budget set, and optionally another fit folder under data_dir."""
    overrides: dict = {"tasks": list(dict.fromkeys([*params.tasks, *tasks])),
                       method_name: {"trainer": {"train_for_env_steps": int(train_for_env_steps)}}}
    if fit_dir is not None:
        overrides["evaluate"] = {"fit_dir": fit_dir}
    return OmegaConf.merge(params, overrides)


def _artefact(method: Method, method_name: str, task: str, seed: int, params: DictConfig) -> Path | None:
    eval_cfg: EvaluateConfig = OmegaConf.to_object(section(params, "evaluate", EvaluateConfig))
    return method_artefact(method_spec(method_name), method, method_name, task, seed, params, eval_cfg)


def trained_artefact_exists(method_name: str, task: str, seed: int, params: DictConfig) -> bool:
    artefact = _artefact(build_method(method_name), method_name, task, seed, params)
    return artefact is None or artefact.exists()


def fit_if_missing(method_name: str, task: str, seed: int, params: DictConfig) -> Path | None:
    """The method's fit() artefact for `task` and training seed `seed`, trained first when missing."""
    from benchmark.fit import fit

    method = build_method(method_name)
    artefact = _artefact(method, method_name, task, seed, params)
    if artefact is not None and not artefact.exists():
        log.info("%s: no fit() artefact at %s; fitting it now (seed %d)", method_name, artefact, seed)
        fit(method_name, seed, params, task=task if method.per_task else None)
    return artefact


def calibrate_one(method_name: str, task: str, params: DictConfig, cfg: CalibrateConfig,
                  progress: bool = True) -> dict | None:
    """Play (or resume) `cfg.episodes` episodes of `method_name` on `task`; return its summary row (None: a
    trained method left untrained because `train_missing` is false)."""
    if method_name in cfg.trained:
        params = variant_fit_params(params, method_name, [task], cfg.train_for_env_steps, cfg.fit_dir)
        if not cfg.train_missing and not trained_artefact_exists(method_name, task, cfg.seed, params):
            log.warning("%s has no fit() artefact for %s and calibrate.train_missing is false: left out",
                        method_name, task)
            return None
        fit_if_missing(method_name, task, cfg.seed, params)
    top = root(params)
    env_cfg: EnvConfig = OmegaConf.to_object(section(params, "env", EnvConfig))
    env_cfg.max_episode_steps = cfg.max_episode_steps
    eval_cfg: EvaluateConfig = OmegaConf.to_object(section(params, "evaluate", EvaluateConfig))
    spec = method_spec(method_name)
    method = build_method(method_name)
    artefact = method_artefact(spec, method, method_name, task, cfg.seed, params, eval_cfg)
    if artefact is not None and not artefact.exists():
        log.warning("%s: no fit() artefact at %s; calling its policy without one", method_name, artefact)
        artefact = None
    out = Path(params.data_dir) / cfg.out_dir / method_name / task
    run_key = provenance.fingerprint({
        "method": method_name,
        "method_conf": OmegaConf.to_container(OmegaConf.load(method_config_path(method_name))),
        "task": task, "root_seed": top.root_seed, "seed": cfg.seed, "env": asdict(env_cfg),
        "artefact": provenance.tree_digest(artefact), "levels": _level_digest(task),
    })
    meta = {"method": method_name, "task": task, "profile": top.profile, "run_key": run_key}
    policy = method.policy(artefact, task, params)
    # Policies that sample from a global RNG (torch) repeat too: seeded by where this run starts, as evaluate.
    played = play_and_record(
        policy, lambda: make(task=task, cfg=env_cfg), cfg.episodes, cfg.num_envs,
        lambda k: episode_seed(top.root_seed, "calibrate", task, episode=k),
        records_file=out / EPISODES_FILE, run_key=run_key, fields=meta, progress=progress,
        process_seed=lambda first: derive_seed(top.root_seed, "calibrate-policy", method_name, task, first))
    steps, seconds, records = played.steps, played.seconds, played.records
    if played.played:
        log.info("%s on %s: %d episodes, %d steps in %.1f s (%.0f steps/s)", method_name, task, played.played,
                 steps, seconds, steps / max(seconds, 1e-9))
    values = [r["value"] for r in records]
    steps_per_s = round(steps / seconds, 1) if played.played and seconds > 0 else None
    previous = out / "summary.json"
    if steps_per_s is None and previous.exists():  # all played before: keep the throughput of that run
        old = read_json(previous)
        steps_per_s = old.get("steps_per_s") if old.get("run_key") == run_key else None
    row = {
        "task": task, "base_task": VARIANTS[task].base_task,
        "category": records[0]["category"] if records else None,
        "metric": records[0]["metric"] if records else None, "method": method_name, "label": spec.label,
        "n": len(records), "mean": float(np.mean(values)) if values else float("nan"),
        "se": standard_error(values),
        "mean_steps": float(np.mean([r["steps"] for r in records])) if records else None,
        "deaths": sum(r["end_reason"] == "death" for r in records),
        "steps_per_s": steps_per_s,
        "max_episode_steps": cfg.max_episode_steps, "profile": top.profile,
        "first_episode_seed": episode_seed(top.root_seed, "calibrate", task, episode=0),
    }
    write_json(previous, {**row, "run_key": run_key})
    return row


def _level_digest(task: str) -> str:
    return _fingerprint(VARIANTS[task])


def z_score(better, worse) -> float:
    """(better - worse) / combined standard error; inf for a gap with no spread at all."""
    gap, se = better.mean - worse.mean, math.hypot(better.se, worse.se)
    return gap / se if se > 0 else (math.inf if gap > 0 else 0.0)


def comparison_table(rows: pd.DataFrame, reference: str, baseline: str,
                     trained: Sequence[str] = ()) -> pd.DataFrame:
    """One line per task: every method's mean ± se (n); the reference's gap to the baseline and its z-score;
    each trained method's z against the baseline, and whether one of them is clearly above it."""
    lines = []
    for task, group in rows.groupby("task", sort=False):
        by = {r.method: r for r in group.itertuples()}
        line = {"task": task, "category": group["category"].iloc[0], "metric": group["metric"].iloc[0]}
        for name in group["method"]:
            r = by[name]
            line[name] = f"{r.mean:.3f} ± {r.se:.3f} (n={r.n})"
        if reference in by and baseline in by:
            ref, base = by[reference], by[baseline]
            line["gap"] = round(ref.mean - base.mean, 3)
            z = z_score(ref, base)
            line["z"], line["useful"] = round(z, 1), bool(z >= 3)
        learners = [m for m in trained if m in by and baseline in by]
        zs = {m: z_score(by[m], by[baseline]) for m in learners}
        for m, z in zs.items():
            line[f"z {m}"] = round(z, 1)
        if learners:
            line["trained_useful"] = any(z >= 3 for z in zs.values())
        lines.append(line)
    return pd.DataFrame(lines)


def calibrate(params: DictConfig, cfg: CalibrateConfig, progress: bool = True) -> pd.DataFrame:
    top = root(params)
    unknown = [t for t in cfg.tasks if t not in VARIANTS]
    if unknown:
        raise ConfigError(f"calibrate.tasks {unknown} are not small variants; valid: {list(VARIANTS)}")
    if cfg.episodes <= 0 or cfg.num_envs <= 0 or cfg.max_episode_steps <= 0:
        raise ConfigError(f"calibrate.episodes, num_envs and max_episode_steps must be positive, got {cfg}")
    for name in cfg.methods:
        method_config_path(name)  # a missing conf/method file fails before any episode is played
    rows = [calibrate_one(m, t, params, cfg, progress) for t in cfg.tasks for m in cfg.methods]
    table = pd.DataFrame([r for r in rows if r is not None])
    results = Path(top.results_dir)
    csv = results / cfg.csv
    write_text(csv, table.to_csv(index=False))
    comparison = comparison_table(table, cfg.reference, cfg.baseline, cfg.trained)
    prov = provenance.record(stage="calibrate", profile=top.profile, root_seed=top.root_seed,
                             methods=list(cfg.methods), tasks=list(cfg.tasks), episodes=cfg.episodes,
                             max_episode_steps=cfg.max_episode_steps,
                             episode_seeds="derive_seed(root_seed, 'calibrate', task, episode)")
    write_text(results / cfg.markdown, _markdown(table, comparison, cfg, prov))
    write_json(results / "calibration_provenance.json", prov)
    return table


def _markdown(table: pd.DataFrame, comparison: pd.DataFrame, cfg: CalibrateConfig, prov: dict) -> str:
    lines = [
        "# Calibration of the small task variants",
        "",
        f"Profile `{prov.get('profile')}`, {cfg.episodes} seeded episodes per method and task, episode cap "
        f"{cfg.max_episode_steps} steps. Value = the task's metric per episode (success 0/1, or a count); "
        "mean ± standard error over episodes (n episodes). `z` = (reference − baseline) / combined "
        "standard error; "
        f"a variant is *useful* when `{cfg.reference}` beats `{cfg.baseline}` with z ≥ 3, and "
        f"*trained_useful* when a trained method ({', '.join(cfg.trained) or 'none listed'}) does. A trained "
        f"method plays its training seed {cfg.seed}; per-task ones are trained on each variant for "
        f"{cfg.train_for_env_steps:,} env steps"
        + ("." if cfg.train_missing
           else ", and left out of a variant where no such run existed (`--no-train`)."),
        "",
        comparison.astype(object).where(comparison.notna(), "not run").to_markdown(index=False),
        "",
        "Throughput (env + policy, one process): " + ", ".join(
            f"{r.method}/{r.task} {r.steps_per_s:,.0f} steps/s" for r in table.itertuples()
            if pd.notna(r.steps_per_s)),
        "",
        f"Generated by `python -m benchmark.calibrate` (code {prov.get('git_describe')}, "
        f"NLE {prov.get('nle_version')}).",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", default=None, help="params file (default: $MM_PARAMS or params.yaml)")
    parser.add_argument("--methods", nargs="+", help="override calibrate.methods (conf/method/<name>.yaml)")
    parser.add_argument("--tasks", nargs="+", help="override calibrate.tasks (small variant names)")
    parser.add_argument("--trained", nargs="+", help="override calibrate.trained (methods that learn)")
    parser.add_argument("--no-train", action="store_true",
                        help="train nothing: a trained method without an artefact for a variant is left out "
                             "there")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params(args.params)
    cfg: CalibrateConfig = OmegaConf.to_object(section(params, "calibrate", CalibrateConfig))
    if args.methods:
        cfg.methods = list(args.methods)
    if args.tasks:
        cfg.tasks = list(args.tasks)
    if args.trained:
        cfg.trained = list(args.trained)
    if args.no_train:
        cfg.train_missing = False
    table = calibrate(params, cfg, progress=not args.no_progress)
    columns = ["task", "method", "n", "mean", "se", "steps_per_s"]
    log.info("calibration:\n%s", table[columns].to_string(index=False))


if __name__ == "__main__":
    main()
