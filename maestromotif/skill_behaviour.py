"""Stage `skill_behaviour`: does each trained skill do what it is named?

    python -m maestromotif.skill_behaviour                 # params.yaml (MM_PARAMS overrides the path)

Every trained skill plays alone (its one-hot held for the whole episode, no policy over skills) from
seeded starts where it can act (maestromotif/skill_starts.py, which the `skill_starts` training program
shares), beside uniform random play from the same games:

    start   where                                                       the skill it is made for
    dl1     level 1 of the full game                                    discoverer
    dl2     level 2 of the delphi_small levels (a scripted walk down    descender, ascender
            the stairs of level 1 first: level 1 is above, 3+ below)
    shop    level 1 of transactions_small (a general store)             merchant
    altar   level 1 of buc_small (an altar)                             worshipper

By default every skill also plays every other skill's start (`cross`), so that "the Descender descends"
is measured against the other skills as well as against random play. The levels come from
benchmark.variants without their task trackers: an episode ends by death or after `max_steps` skill steps,
never at a task's success.

Per episode (counted from the start, not during the walk to it): depth_change (last depth - start depth),
descents_per_1k / ascents_per_1k (depth increases / decreases per 1,000 steps), squares_seen (distinct map
squares ever displayed, over all levels), squares_visited, steps_near_shopkeeper and steps_near_altar
(the hero within one square of a shopkeeper / of an altar seen on the level), items_sold (steps whose
message says "sold", the Transactions count), altar_drops (DROP actions whose message mentions the altar),
the same four per 1,000 steps played (near_shopkeeper_per_1k, near_altar_per_1k, sales_per_1k,
altar_drops_per_1k: a skill that dies early has fewer steps to count them in), death (the episode ended by
death), steps, start_reached.

The networks of every MaestroMotif method play (maestromotif.chain; `skill_behaviour.methods`, or
`--method`): maestromotif's, trained on annotate.annotator's labels, and maestromotif_oracle's, trained on the
rule oracle's, from the same games. Random play runs once per start and skill seed, shared by both.

Writes `skill_behaviour.csv` (default {results_dir}/skills.csv, i.e. results/<profile>/skills.csv): one row
per (start, skill, method, metric) with the mean, its standard error and n (episodes, pooled over the skill
seeds), `method` (the MaestroMotif method whose network played; "random" for random play) and `annotator`
(who labelled that method's skills: llm or oracle; "none" for random), and the same table as markdown
beside it (.md).
"""
from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
from nle import nethack
from omegaconf import OmegaConf

from benchmark.config import ConfigError, defaults, load_params, root, section
from benchmark.env import ACTION_INDEX, ACTIONS, EnvConfig, died, is_blank
from benchmark.io import write_table
from benchmark.logs import setup_logging
from benchmark.seeding import derive_seed, episode_seed
from maestromotif import chain
from maestromotif.skills import SKILLS
from maestromotif.rl.obs import PolicyObservation
from maestromotif.rl.sf_env import HeldSkill
from maestromotif.skill_starts import MEASURED_STARTS, START_OF, make_start

log = logging.getLogger(__name__)

RANDOM = "random"
# Per-episode counts of shop and altar events grow with how long a skill stays alive; the *_per_1k rates
# (per 1,000 steps played) compare skills that live for different lengths.
RATES = {"near_shopkeeper_per_1k": "steps_near_shopkeeper", "near_altar_per_1k": "steps_near_altar",
         "sales_per_1k": "items_sold", "altar_drops_per_1k": "altar_drops"}
METRICS = ("depth_change", "descents_per_1k", "ascents_per_1k", "squares_seen", "squares_visited",
           "steps_near_shopkeeper", "steps_near_altar", "items_sold", "altar_drops", *RATES, "death", "steps",
           "start_reached")

STONE = nethack.GLYPH_CMAP_OFF  # S_stone: a square never displayed (or solid rock)
ALTAR = nethack.GLYPH_CMAP_OFF + 27  # S_altar
SHOPKEEPERS = frozenset(nethack.GLYPH_MON_OFF + i for i in range(nethack.NUMMONS)
                        if nethack.permonst(i).mname == "shopkeeper")
DROP = ACTION_INDEX["DROP"]


@dataclass
class SkillBehaviourConfig:
    """The `skill_behaviour` section (conf/skill_behaviour/default.yaml)."""

    episodes: int  # per (start, skill) and skill seed
    max_steps: int  # skill steps per episode, counted from the start
    max_start_steps: int  # scripted steps allowed to reach a start below level 1
    num_envs: int  # envs stepped together (one network forward per step)
    cross: bool  # every skill from every start (false: each skill from its own start only)
    skills: list[str]  # empty: the params' skills
    methods: list[str]  # MaestroMotif methods whose networks play; empty: all
    device: str
    torch_threads: int  # the network's CPU threads (0: torch's default)
    csv: str


class BehaviourTracker(gym.Wrapper):
    """Counts the per-episode metrics from the first observation of `reset` on; truncates after
    `max_steps` steps. The finished episode's metrics are in info["behaviour"] at its last step."""

    def __init__(self, env: gym.Env, max_steps: int):
        super().__init__(env)
        self.max_steps = max_steps

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        bl = obs["blstats"]
        self.start_depth = self.depth = int(bl[nethack.NLE_BL_DEPTH])
        self.level = (int(bl[nethack.NLE_BL_DNUM]), self.depth)
        self.seen: dict[tuple[int, int], np.ndarray] = {}
        self.altars: dict[tuple[int, int], np.ndarray] = {}
        self.visited: set[tuple[int, int, int, int]] = set()
        self.m = {k: 0 for k in METRICS}
        self.m["start_reached"] = int(info.get("start_reached", True))
        self._look(obs)
        return obs, info

    def _look(self, obs) -> None:
        glyphs = obs["glyphs"]
        seen = self.seen.setdefault(self.level, np.zeros(glyphs.shape, dtype=bool))
        seen |= glyphs != STONE
        altars = self.altars.setdefault(self.level, np.zeros(glyphs.shape, dtype=bool))
        altars |= glyphs == ALTAR
        x, y = int(obs["blstats"][nethack.NLE_BL_X]), int(obs["blstats"][nethack.NLE_BL_Y])
        self.visited.add((*self.level, x, y))
        near = (slice(max(y - 1, 0), y + 2), slice(max(x - 1, 0), x + 2))
        # remembered: the hero hides the altar below it
        self.m["steps_near_altar"] += bool(altars[near].any())
        self.m["steps_near_shopkeeper"] += any(int(g) in SHOPKEEPERS for g in glyphs[near].ravel())

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        m = self.m
        m["steps"] += 1
        message = bytes(obs["message"]).rstrip(b"\0")
        m["items_sold"] += b"sold" in message
        m["altar_drops"] += int(action) == DROP and b"altar" in message
        bl = obs["blstats"]
        if not is_blank(obs):
            depth = int(bl[nethack.NLE_BL_DEPTH])
            m["descents_per_1k"] += depth > self.depth
            m["ascents_per_1k"] += depth < self.depth
            self.depth, self.level = depth, (int(bl[nethack.NLE_BL_DNUM]), depth)
            self._look(obs)
        if died(terminated, info):
            m["death"] = 1
        if not terminated and m["steps"] >= self.max_steps:
            truncated = True
        if terminated or truncated:
            info["behaviour"] = self.summary()
        return obs, reward, terminated, truncated, info

    def summary(self) -> dict[str, float]:
        out = {k: float(v) for k, v in self.m.items()}
        steps = max(self.m["steps"], 1)
        out["descents_per_1k"] = 1000.0 * self.m["descents_per_1k"] / steps
        out["ascents_per_1k"] = 1000.0 * self.m["ascents_per_1k"] / steps
        for rate, count in RATES.items():
            out[rate] = 1000.0 * self.m[count] / steps
        out["depth_change"] = float(self.depth - self.start_depth)
        out["squares_seen"] = float(sum(int(s.sum()) for s in self.seen.values()))
        out["squares_visited"] = float(len(self.visited))
        return out


def make_start_env(start: str, cfg: SkillBehaviourConfig, env_cfg: EnvConfig, crop_mode: str) -> HeldSkill:
    """The env of one start: its levels, the scripted walk, the tracker, the held skill, network inputs."""
    env_cfg = EnvConfig(**{**env_cfg.__dict__, "max_episode_steps": cfg.max_steps + cfg.max_start_steps + 1})
    env = make_start(start, env_cfg, cfg.max_start_steps)
    return PolicyObservation(HeldSkill(BehaviourTracker(env, cfg.max_steps)), crop_mode, keep_raw=True)


def play_start(envs: Sequence[gym.Env], seeds: Sequence[int], skill: int | None, policy=None,
               rng: np.random.Generator | None = None) -> list[dict[str, float]]:
    """Play one episode per seed with the network `policy` holding `skill` (or uniform random actions
    when policy is None); return the per-episode metrics, in seed order."""
    from benchmark.playback import stack_observations

    queue = list(enumerate(seeds))[::-1]
    results: list[dict | None] = [None] * len(seeds)
    slots = list(envs[: len(seeds)])
    held = [e.env for e in slots]  # PolicyObservation -> HeldSkill
    current: list[int | None] = [None] * len(slots)
    obs = [None] * len(slots)
    for h in held:
        h.skill = 0 if skill is None else skill
    state = policy.initial_state(len(slots)) if policy is not None else None
    episode_start = np.ones(len(slots), dtype=bool)

    def start(i: int) -> None:
        k, s = queue.pop()
        current[i] = k
        obs[i], _ = slots[i].reset(seed=int(s))

    for i in range(len(slots)):
        start(i)
    running = np.ones(len(slots), dtype=bool)
    while running.any():
        if policy is not None:
            actions, state = policy.act(stack_observations(obs), state, episode_start)
        else:
            actions = rng.integers(len(ACTIONS), size=len(slots))
        episode_start[:] = False
        for i in np.flatnonzero(running):
            obs[i], _, terminated, truncated, info = slots[i].step(int(actions[i]))
            if terminated or truncated:
                results[current[i]] = info["behaviour"]
                if queue:
                    start(i)
                    episode_start[i] = True
                else:
                    running[i] = False
    return results  # type: ignore[return-value]


PLAYER = ["skill", "method", "annotator"]  # who played: the held skill of which method's network
COLUMNS = ["start", *PLAYER, "metric", "mean", "se", "n"]


def summarise(records: pd.DataFrame) -> pd.DataFrame:
    """Per (start, skill, method, annotator, metric): mean, standard error (std / sqrt(n), ddof 1) and n."""
    rows = []
    for (start, skill, method, annotator), group in records.groupby(["start", *PLAYER], sort=False):
        for metric in METRICS:
            values = group[metric].to_numpy(dtype=float)
            n = len(values)
            se = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
            rows.append({"start": start, "skill": skill, "method": method, "annotator": annotator,
                         "metric": metric, "mean": float(values.mean()), "se": se, "n": n})
    return pd.DataFrame(rows, columns=COLUMNS)


def markdown(table: pd.DataFrame, title: str) -> str:
    """One table per start: skills as rows, the main metrics as columns, mean ± SE."""
    shown = ["depth_change", "descents_per_1k", "ascents_per_1k", "squares_seen", "steps_near_shopkeeper",
             "steps_near_altar", "items_sold", "altar_drops", "near_shopkeeper_per_1k", "near_altar_per_1k",
             "death", "steps"]
    lines = [f"# {title}", ""]
    for start, group in table.groupby("start", sort=False):
        lines += [f"## start `{start}`", "", "| skill | method | annotator | n | " + " | ".join(shown) + " |",
                  "|---|---|---|---|" + "---|" * len(shown)]
        for (skill, method, annotator), g in group.groupby(PLAYER, sort=False):
            cell = {r.metric: f"{r.mean:.2f} ± {r.se:.2f}" for r in g.itertuples()}
            lines.append(f"| {skill} | {method} | {annotator} | {int(g.n.iloc[0])} | "
                         + " | ".join(cell[m] for m in shown)
                         + " |")
        lines.append("")
    return "\n".join(lines)


def default_runs(params, cfg: SkillBehaviourConfig) -> dict[str, dict[int, Path]]:
    """Method -> skill seed -> train_skills run dir (maestromotif.chain): every params skill seed of every
    method of `skill_behaviour.methods` (empty: every MaestroMotif method)."""
    methods = [chain.chain(m).method for m in cfg.methods] or list(chain.METHODS)
    return {m: {s: chain.run_dir(params, m, s) for s in root(params).skill_seeds} for m in methods}


def measure(params, cfg: SkillBehaviourConfig,
            runs: dict[str, dict[int, Path]] | None = None) -> pd.DataFrame:
    """The per-episode records of every (start, player, skill seed); `runs`: MaestroMotif method -> skill
    seed -> train_skills run dir (default: default_runs)."""
    from maestromotif.rl.policy import SkillPolicy, load_actor_critic

    top = root(params)
    skills = list(cfg.skills) or list(top.skills)
    unknown = [s for s in skills if s not in top.skills]
    if unknown:
        raise ConfigError(f"skill_behaviour.skills {unknown} are not params skills {list(top.skills)}")
    if cfg.episodes <= 0 or cfg.max_steps <= 0 or cfg.num_envs <= 0:
        raise ConfigError(f"skill_behaviour.episodes, max_steps and num_envs must be positive, got {cfg}")
    runs = runs if runs is not None else default_runs(params, cfg)
    env_cfg = (EnvConfig(**OmegaConf.to_container(params["env"], resolve=True)) if "env" in params
               else defaults("env", EnvConfig))
    models = {(method, seed): load_actor_critic(Path(run), device=cfg.device)[:2]
              for method, by_seed in runs.items() for seed, run in by_seed.items()}
    crop_modes = {c.mm_crop_mode for _, c in models.values()}
    if len(crop_modes) != 1:
        raise ConfigError(f"skill_behaviour: the skill runs {runs} use different crop modes {crop_modes}")
    crop_mode = crop_modes.pop()
    annotators = {m: chain.annotator(params, m) for m in runs}
    seeds = list(dict.fromkeys(seed for _, seed in models))
    starts = [s for s in MEASURED_STARTS if cfg.cross or s in {START_OF[k] for k in skills}]
    records = []
    for start in starts:
        envs = [make_start_env(start, cfg, env_cfg, crop_mode)
                for _ in range(min(cfg.num_envs, cfg.episodes))]
        # every player of a start plays the same games
        games = [episode_seed(top.root_seed, "skill_behaviour", start, episode=k) % 2**31
                 for k in range(cfg.episodes)]
        try:
            players = [s for s in skills if cfg.cross or START_OF[s] == start]
            for seed in seeds:
                for method in runs:
                    if (method, seed) not in models:
                        continue
                    model, sf_cfg = models[method, seed]
                    for name in players:
                        policy = SkillPolicy(model, sf_cfg, program=None)
                        done = play_start(envs, games, SKILLS.index(name), policy)  # the one-hot's order
                        records += [{"start": start, "skill": name, "method": method,
                                     "annotator": annotators[method], "skill_seed": seed, "episode": k, **r}
                                    for k, r in enumerate(done)]
                        log.info("skill_behaviour %s %s seed %d %s: depth change %.2f, deaths %.2f", start,
                                 method, seed, name, np.mean([r["depth_change"] for r in done]),
                                 np.mean([r["death"] for r in done]))
                rng = np.random.default_rng(derive_seed(top.root_seed, "skill_behaviour", "random", start,
                                                        seed))
                done = play_start(envs, games, None, None, rng)
                records += [{"start": start, "skill": RANDOM, "method": RANDOM, "annotator": "none",
                             "skill_seed": seed, "episode": k, **r} for k, r in enumerate(done)]
        finally:
            for env in envs:
                env.close()
    return pd.DataFrame(records)


def csv_path(params, cfg: SkillBehaviourConfig) -> Path:
    return Path(cfg.csv.format(results_dir=params.get("results_dir", "results"),
                               data_dir=params.get("data_dir", "data")))


def run(params, cfg: SkillBehaviourConfig | None = None,
        runs: dict[str, dict[int, Path]] | None = None) -> Path:
    cfg = cfg or OmegaConf.to_object(section(params, "skill_behaviour", SkillBehaviourConfig))
    if cfg.torch_threads > 0:
        import torch

        torch.set_num_threads(cfg.torch_threads)
    table = summarise(measure(params, cfg, runs))
    out = csv_path(params, cfg)
    top = root(params)
    played = runs or default_runs(params, cfg)
    seeds = sorted({s for by_seed in played.values() for s in by_seed})
    title = (f"Skill behaviour ({top.profile} profile, methods {', '.join(played)}, skill seeds {seeds}, "
             f"{cfg.episodes} episodes each, {cfg.max_steps} steps)")
    write_table(out, table, markdown(table, title))
    log.info("skill_behaviour: wrote %s", out)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Play every trained skill alone from the starts it is made "
                                                 "for")
    parser.add_argument("--params", default=None, help="params file (default: params.yaml or $MM_PARAMS)")
    parser.add_argument("--method", action="append", default=None, choices=chain.METHODS,
                        help="a MaestroMotif method whose networks play (repeatable; default: "
                             "skill_behaviour.methods, empty there: every one, maestromotif.chain)")
    parser.add_argument("--run", action="append", default=None, metavar="SEED=DIR",
                        help="a train_skills run dir per skill seed, for the one --method given (default: "
                             "data/fit/<method>/seed<k>)")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params(args.params)
    cfg = OmegaConf.to_object(section(params, "skill_behaviour", SkillBehaviourConfig))
    if args.method:
        cfg.methods = list(dict.fromkeys(args.method))
    runs = None
    if args.run:
        if len(cfg.methods) != 1:
            parser.error("--run names one method's run dirs: give exactly one --method with it")
        try:
            runs = {cfg.methods[0]: {int(k): Path(v) for k, v in (r.split("=", 1) for r in args.run)}}
        except ValueError as e:
            raise SystemExit(f"--run takes SEED=DIR, got {args.run}") from e
    run(params, cfg, runs=runs)


if __name__ == "__main__":
    main()
