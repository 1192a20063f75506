"""Which behaviour does each skill's reward pay? Hand-made behaviours played from the skill starts, every
skill's intrinsic return summed along each game as if that skill were held for the whole episode.

This separates the two halves of MaestroMotif's first claim: if the Descender's reward pays a walk to the
down stairs far more than random play or a climb, the AI feedback produced the right reward, and a skill
that does not descend is RL's failure, not the labels' (docs/investigations/skills.md §13).

    behaviour              actions
    random                 uniform over the 28 actions
    scripted               the scripted reference agent of the start's levels (benchmark.scripted): walks
                           to the down stairs, sells in the shop, drops on the altar
    scripted_then_random   the scripted agent until its first change of depth, random afterwards
    climb_then_random      UP on the first step (the hero arrives on the up stairs), random afterwards;
                           only from starts below level 1 (UP on level 1 leaves the dungeon)

The return is the paper's r_int (thresholded r_hat over N(m)^beta, reward.intrinsic of the params) summed
over the episode, before llm_coef: what the held skill's critic would see undiscounted. Every behaviour of
a start plays the same games.

Stage audit_rewards (dvc.yaml): `python -m maestromotif.reward_audit [--method M] [--start S] [--out CSV]`
writes reward_audit.csv (default results/<profile>/reward_audit.csv, columns start, behaviour, method,
annotator, skill, metric, mean, se, n; the behaviour's own stats have method and skill "-") and a .md
table beside it. It needs the reward models only, not the networks: minutes, before any skill trains.
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from nle import nethack
from omegaconf import OmegaConf

from benchmark.config import ConfigError, load_params, root, section
from benchmark.env import ACTION_INDEX, ACTIONS, EnvConfig, decode_message, is_blank
from benchmark.io import write_table
from benchmark.logs import setup_logging
from benchmark.scripted import ScriptedPolicy
from benchmark.seeding import derive_seed, episode_seed
from benchmark.stats import mean_stderr
from maestromotif import chain
from maestromotif.reward.intrinsic import CheckpointError, EpisodeState, IntrinsicReward
from maestromotif.reward.train import intrinsic_config
from maestromotif.skill_starts import MAX_WALK_STEPS, MEASURED_STARTS, STARTS, make_start

log = logging.getLogger(__name__)

BEHAVIOURS = ("random", "scripted", "scripted_then_random", "climb_then_random")
# the levels the scripted agent knows for a start of the full game (its navigation: find and take stairs)
FULL_GAME_SCRIPT = "gnomish_small"
COLUMNS = ["start", "behaviour", "method", "annotator", "skill", "metric", "mean", "se", "n"]


def behaviours_for(start: str) -> list[str]:
    return [b for b in BEHAVIOURS if b != "climb_then_random" or STARTS[start][1] > 1]


@dataclass
class RewardAuditConfig:
    """The `reward_audit` section (conf/reward_audit/default.yaml)."""

    episodes: int  # games per (start, behaviour); every behaviour of a start plays the same games
    max_steps: int  # steps per game, from the start on
    starts: list[str]  # empty: the starts skill_behaviour measures (MEASURED_STARTS)
    methods: list[str]  # MaestroMotif methods whose reward models score the games; empty: every one
    csv: str


def play(env, rewards: dict[str, IntrinsicReward], behaviour: str, game: int, rng: np.random.Generator,
         script: ScriptedPolicy, max_steps: int) -> dict[tuple[str, str, str], float]:
    """One episode of `behaviour` on game seed `game`: every method's and skill's return and what the
    behaviour did."""
    obs, _ = env.reset(seed=game)
    depth = start_depth = int(obs["blstats"][nethack.NLE_BL_DEPTH])
    states = {(m, k): EpisodeState(r) for m, r in rewards.items() for k in range(len(r.names))}
    for s in states.values():
        s.reset(decode_message(obs["message"]), depth)
    memory = script.seed_episodes(script.initial_state(1), [0], [game])
    first = np.ones(1, dtype=bool)
    scripted = behaviour in ("scripted", "scripted_then_random")
    returns = dict.fromkeys(states, 0.0)
    descents = ascents = steps = 0
    for steps in range(1, max_steps + 1):
        if behaviour == "climb_then_random" and steps == 1:
            action = ACTION_INDEX["UP"]
        elif scripted:
            actions, memory = script.act({k: v[None] for k, v in obs.items()}, memory, first)
            first[:] = False
            action = int(actions[0])
        else:
            action = int(rng.integers(len(ACTIONS)))
        obs, _, terminated, truncated, _ = env.step(action)
        if is_blank(obs):  # the game ended: nothing to score (EpisodeState.blank_step)
            break
        new_depth = int(obs["blstats"][nethack.NLE_BL_DEPTH])
        descents += new_depth > depth
        ascents += new_depth < depth
        if new_depth != depth and behaviour == "scripted_then_random":
            scripted = False
        depth = new_depth
        message = decode_message(obs["message"])
        for (method, k), state in states.items():
            returns[method, k] += state.step(k, message, depth, 0.0, skill_switched=False).intrinsic
        if terminated or truncated:
            break
    return {**{(m, rewards[m].names[k], "return"): r for (m, k), r in returns.items()},
            **{("-", "-", "descents"): descents, ("-", "-", "ascents"): ascents, ("-", "-", "steps"): steps,
               ("-", "-", "depth_change"): depth - start_depth}}


def audit(params, cfg: RewardAuditConfig) -> pd.DataFrame:
    """The summary table: per (start, behaviour) each method's and skill's mean return, and the behaviour's
    stats (method and skill "-")."""
    top = root(params)
    starts = list(cfg.starts) or list(MEASURED_STARTS)
    unknown = [s for s in starts if s not in STARTS]
    if unknown:
        raise ConfigError(f"reward_audit.starts: unknown start(s) {unknown}; choose from {list(STARTS)} "
                          "(maestromotif/skill_starts.py)")
    if cfg.episodes < 2 or cfg.max_steps < 1:
        raise ConfigError(f"reward_audit.episodes must be >= 2 (a standard error) and max_steps >= 1, got "
                          f"{cfg.episodes} and {cfg.max_steps} (conf/reward_audit/default.yaml)")
    methods = [chain.chain(m).method for m in cfg.methods] or list(chain.METHODS)
    rewards = {m: IntrinsicReward.from_dir(chain.reward_root(params, m), list(top.skills),
                                           intrinsic_config(params)) for m in methods}
    annotators = {m: chain.annotator(params, m) for m in methods} | {"-": "-"}
    env_cfg = EnvConfig(**{**OmegaConf.to_container(params["env"], resolve=True),
                           "max_episode_steps": cfg.max_steps + MAX_WALK_STEPS + 1})
    rows = []
    for start in starts:
        env = make_start(start, env_cfg, MAX_WALK_STEPS)
        games = [episode_seed(top.root_seed, "reward_audit", start, episode=k) % 2**31
                 for k in range(cfg.episodes)]
        try:
            for behaviour in behaviours_for(start):
                rng = np.random.default_rng(derive_seed(top.root_seed, "reward_audit", start, behaviour))
                script = ScriptedPolicy(STARTS[start][0] or FULL_GAME_SCRIPT)
                records = pd.DataFrame([play(env, rewards, behaviour, g, rng, script, cfg.max_steps)
                                        for g in games])
                for method, skill, metric in records:
                    mean, se = mean_stderr(records[method, skill, metric])
                    rows.append({"start": start, "behaviour": behaviour, "method": method,
                                 "annotator": annotators[method], "skill": skill, "metric": metric,
                                 "mean": mean, "se": se, "n": len(records)})
                log.info("reward_audit %s %s: %s", start, behaviour, "; ".join(
                    f"{m} " + ", ".join(f"{n} {records[m, n, 'return'].mean():.2f}" for n in rewards[m].names)
                    for m in methods))
        finally:
            env.close()
    return pd.DataFrame(rows, columns=COLUMNS)


def markdown(table: pd.DataFrame, title: str) -> str:
    """Per method, one row per (start, behaviour): each skill's mean return +- SE, then what the behaviour
    did (descents, ascents, steps per game)."""
    lines = [f"## {title}", ""]
    stats = table[table.method == "-"]
    cell = {(r.start, r.behaviour, r.method, r.skill, r.metric): f"{r.mean:.2f} ± {r.se:.2f}"
            for r in table.itertuples()}
    for method in [m for m in dict.fromkeys(table.method) if m != "-"]:
        rows = table[table.method == method]
        skills = list(dict.fromkeys(rows.skill))
        lines += [f"### {method} (annotator: {rows.annotator.iloc[0]})", "",
                  "| start | behaviour | " + " | ".join(skills) + " | descents | ascents | steps |",
                  "|" + "---|" * (len(skills) + 5)]
        for start, behaviour in dict.fromkeys(zip(stats.start, stats.behaviour)):
            returns = [cell[start, behaviour, method, s, "return"] for s in skills]
            did = [cell[start, behaviour, "-", "-", m] for m in ("descents", "ascents", "steps")]
            lines.append(f"| {start} | {behaviour} | " + " | ".join(returns + did) + " |")
        lines.append("")
    return "\n".join(lines)


def csv_path(params, cfg: RewardAuditConfig) -> Path:
    return Path(cfg.csv.format(results_dir=root(params).results_dir, data_dir=root(params).data_dir))


def run(params, cfg: RewardAuditConfig | None = None) -> Path:
    cfg = cfg or OmegaConf.to_object(section(params, "reward_audit", RewardAuditConfig))
    table = audit(params, cfg)
    out = csv_path(params, cfg)
    title = (f"Reward audit ({root(params).profile} profile): each skill's return under hand-made "
             f"behaviours, {cfg.episodes} games of at most {cfg.max_steps} steps per start")
    write_table(out, table, markdown(table, title))
    log.info("reward_audit: wrote %s", out)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Each skill's intrinsic return under hand-made behaviours")
    parser.add_argument("--params", default=None, help="params file (default: params.yaml or $MM_PARAMS)")
    parser.add_argument("--method", action="append", default=None, choices=chain.METHODS,
                        help="whose reward models (repeatable; default: reward_audit.methods, empty there: "
                             "every one, maestromotif.chain)")
    parser.add_argument("--start", action="append", default=None, choices=list(STARTS),
                        help="a start to play from (repeatable; default: reward_audit.starts)")
    parser.add_argument("--out", default=None, help="CSV (default: reward_audit.csv); a .md table beside it")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params(args.params)
    cfg = OmegaConf.to_object(section(params, "reward_audit", RewardAuditConfig))
    cfg.methods = args.method or cfg.methods
    cfg.starts = args.start or cfg.starts
    cfg.csv = args.out or cfg.csv
    try:
        run(params, cfg)
    except (ConfigError, CheckpointError) as e:  # a bad setting or a missing reward model: say which
        parser.error(str(e))


if __name__ == "__main__":
    main()
