"""Stage `pairs`: per skill, seeded pairs of diff-history samples drawn from the observation records.

    python -m maestromotif.data.pairs

A sample is an observation at step t together with the observation at step t - gap (gap = 100) of
the same episode, so the caption can say how the state changed over the last 100 steps (the paper's
"diff history", docs/method.md §3.2). Samples 2i and 2i+1 form pair i, as in the official code. Each skill
draws its own pairs with the seed derive_seed(root_seed, "pairs", skill); the Motif baseline gets its
own set ("motif", message-only captions at annotation time).

How samples are drawn (`pairs.sampling`; the paper does not say how its pairs were sampled,
docs/method.md §12.2, so this is a documented choice):
  uniform   every sample equally likely (paper profile, and the default);
  changed   a fraction `pairs.changed_fraction` of the samples is drawn from those whose depth, gold or
            XP level changed over the gap, in equal shares per stat that changed anywhere (a sample
            that changed several counts for the first of depth, gold, XP), the rest from the unchanged
            samples, all shuffled (ci and small profiles: random play changes depth in ~1% of samples,
            so uniform pairs of a few hundred hardly show the event the Descender prompt is about).

Writes `<data_dir>/pairs/<name>.parquet` (schema PAIR_SCHEMA) and `meta.json`. A pair file is
reused when its recorded settings (seed, size, gap, sampling, input fingerprint) match the current ones.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.config import load_params, root, section
from benchmark.io import read_json, write_json
from benchmark.logs import setup_logging
from benchmark.seeding import derive_seed
from maestromotif.data.collect import META_FILE as OBS_META_FILE
from maestromotif.data.collect import OUT_NAME as OBS_DIR_NAME
from maestromotif.data.collect import load_observations
from maestromotif.data.schema import PAIR_SCHEMA, SIDE_FIELDS, STATS, file_metadata, read_table, write_table
from maestromotif.prompts import SKILLS

log = logging.getLogger(__name__)
OUT_NAME = "pairs"
MOTIF_SET = "motif"

SAMPLINGS = ("uniform", "changed")
CHANGE_STATS = ("dlvl", "gold", "xp")  # `changed` sampling: a sample changed if one of these did


@dataclass
class PairsConfig:
    """The `pairs` section of the params (conf/pairs/default.yaml)."""

    gap: int  # steps between the two observations of a sample
    sizes: dict[str, int]  # pairs per skill
    motif: int  # pairs for the Motif baseline (0: none)
    sources: list[str] | None  # keep only records with these source labels (None: all)
    sampling: str  # uniform | changed (see module docstring)
    changed_fraction: float  # changed: share of samples with a depth/gold/XP change
    # steps t < gap pair with the episode's first observation instead of being left out (see module docstring)
    clamp_gap: bool
    # draw the unchanged samples (or all, under uniform) with weight 1 / (count of their message)
    rare_messages: bool


def eligible_samples(obs: pd.DataFrame, gap: int, clamp: bool = False) -> pd.DataFrame:
    """Every (observation, observation gap steps earlier) of the same episode, as one row per sample;
    with `clamp`, the earlier observation of a step t < gap is the episode's first one.

    An episode is (source, episode_id): NLD gameids and played episode indices may coincide."""
    cur = obs.drop(columns=["prev_message"])
    first_step = cur.groupby(["source", "episode_id"])["step"].transform("min")
    cur["prev_step"] = cur["step"] - gap
    if clamp:
        cur["prev_step"] = np.maximum(cur["prev_step"], first_step)
    earlier = obs[["source", "episode_id", "step", "message", *STATS]].rename(
        columns={"step": "prev_step", "message": "prev_message_gap", **{s: f"{s}_prev" for s in STATS}})
    samples = cur.merge(earlier, on=["source", "episode_id", "prev_step"], how="inner")
    # The caption's "previously seen" message is the one of the earlier observation.
    samples["prev_message"] = samples.pop("prev_message_gap")
    return samples.sort_values(["source", "episode_id", "step"], kind="stable").reset_index(drop=True)


def change_kind(samples: pd.DataFrame) -> np.ndarray:
    """Per sample, the index in CHANGE_STATS of the first stat that differs from the observation `gap`
    steps earlier, or -1 when none does."""
    kind = np.full(len(samples), -1)
    for i, stat in reversed(list(enumerate(CHANGE_STATS))):  # reversed: the first stat wins
        kind[(samples[stat] != samples[f"{stat}_prev"]).to_numpy()] = i
    return kind


def changed_mask(samples: pd.DataFrame) -> np.ndarray:
    """Samples whose depth, gold or XP level differs from the observation `gap` steps earlier."""
    return change_kind(samples) >= 0


class TooFewSamples(ValueError):
    """The observations hold fewer usable samples than a pair set needs; the message says how to fix it."""


def message_weights(samples: pd.DataFrame) -> np.ndarray:
    """1 / (number of samples with the same message): every distinct message equally likely in total."""
    counts = samples["message"].map(samples["message"].value_counts()).to_numpy(dtype=np.float64)
    return 1.0 / counts


def _choose(rng: np.random.Generator, pool: np.ndarray, size: int, name: str, what: str,
            weights: np.ndarray | None = None) -> np.ndarray:
    """`size` distinct samples of `pool` (drawn with probability proportional to `weights[pool]` when
    given): a pair set never repeats a sample (drawing with replacement would annotate the same
    observation twice and overweight it in the reward model)."""
    if size > len(pool):
        size_key = "pairs.motif" if name == MOTIF_SET else f"pairs.sizes.{name}"
        raise TooFewSamples(
            f"pairs[{name}]: {size} {what} are needed but the observations hold only {len(pool)}. Collect "
            "more (raise the episodes of collect.sources, or collect.max_steps_per_episode), or ask for "
            f"fewer pairs ({size_key}), or lower pairs.gap"
            + (" or pairs.changed_fraction, or use pairs.sampling=uniform" if what != "samples" else ""))
    if weights is None:
        return rng.choice(pool, size=size, replace=False)
    w = weights[pool]
    return rng.choice(pool, size=size, replace=False, p=w / w.sum())


def draw_pairs(samples: pd.DataFrame, n_pairs: int, seed: int, name: str, sampling: str = "uniform",
               changed_fraction: float = 0.5, rare_messages: bool = False) -> pd.DataFrame:
    """n_pairs pairs of samples (2i, 2i+1), 2 * n_pairs distinct samples; TooFewSamples when there are not
    enough (overall, or in a stratum of `changed` sampling)."""
    if len(samples) == 0:
        raise ValueError(f"pairs[{name}]: no sample has an observation `gap` steps earlier in its episode; "
                         "collect longer episodes (collect.max_steps_per_episode) or lower pairs.gap")
    if sampling not in SAMPLINGS:
        raise ValueError(f"pairs.sampling={sampling!r}: choose one of {', '.join(SAMPLINGS)}")
    rng = np.random.default_rng(seed)
    need = 2 * n_pairs
    everything = np.arange(len(samples))
    kind = change_kind(samples)
    changed = kind >= 0
    weights = message_weights(samples) if rare_messages else None
    if sampling == "changed" and changed.any() and (~changed).any():
        kinds = [k for k in range(len(CHANGE_STATS)) if (kind == k).any()]
        n_changed = int(round(changed_fraction * need))
        shares = [n_changed // len(kinds) + (j < n_changed % len(kinds)) for j in range(len(kinds))]
        parts = [_choose(rng, everything[kind == k], n, name, f"samples with a {CHANGE_STATS[k]} change")
                 for k, n in zip(kinds, shares)]
        parts.append(_choose(rng, everything[~changed], need - n_changed, name, "unchanged samples", weights))
        idx = rng.permutation(np.concatenate(parts))  # mix the strata over both sides of the pairs
    else:
        if sampling == "changed":
            log.warning("pairs[%s]: %d of %d samples changed depth/gold/XP: drawing uniformly instead",
                        name, int(changed.sum()), len(samples))
        idx = _choose(rng, everything, need, name, "samples", weights)
    first = samples.iloc[idx[0::2]].reset_index(drop=True)
    second = samples.iloc[idx[1::2]].reset_index(drop=True)
    out = {"pair_id": np.arange(n_pairs, dtype=np.int64), "skill": [name] * n_pairs}
    for k, side in ((1, first), (2, second)):
        for f in SIDE_FIELDS:
            out[f"{f}_{k}"] = side[f].to_numpy()
    return pd.DataFrame(out, columns=PAIR_SCHEMA.names)


def make_pairs(params, obs_dir: Path | None = None, out_dir: Path | None = None) -> Path:
    top = root(params)
    cfg: PairsConfig = section(params, "pairs", PairsConfig)
    unknown = set(cfg.sizes) - set(SKILLS)
    if unknown:
        raise ValueError(f"pairs.sizes has unknown skill(s) {sorted(unknown)}; skills are "
                         f"{', '.join(SKILLS)}")
    if cfg.gap <= 0 or any(v < 0 for v in cfg.sizes.values()) or cfg.motif < 0:
        raise ValueError(f"pairs: gap must be > 0 and sizes >= 0, got gap={cfg.gap}, sizes={dict(cfg.sizes)}")
    if cfg.sampling not in SAMPLINGS:
        raise ValueError(f"pairs.sampling={cfg.sampling!r}: choose one of {', '.join(SAMPLINGS)}")
    if not 0.0 <= cfg.changed_fraction <= 1.0:
        raise ValueError(f"pairs.changed_fraction must be within [0, 1], got {cfg.changed_fraction}")
    obs_dir = Path(obs_dir or Path(top.data_dir) / OBS_DIR_NAME)
    out_dir = Path(out_dir or Path(top.data_dir) / OUT_NAME)
    obs = load_observations(obs_dir)
    obs_meta = read_json(obs_dir / OBS_META_FILE)
    if cfg.sources is not None:
        absent = sorted(set(cfg.sources) - set(obs["source"].unique()))
        if absent:
            raise ValueError(f"pairs.sources names {absent}, which no record carries; the records' sources "
                             f"(collect.sources labels) are {sorted(obs['source'].unique())}")
        obs = obs[obs["source"].isin(list(cfg.sources))]
    samples = eligible_samples(obs, cfg.gap, cfg.clamp_gap)
    log.info("pairs: %d records, %d samples with an observation %d steps earlier (%d with a depth/gold/XP "
             "change), %s sampling", len(obs), len(samples), cfg.gap,
             int(changed_mask(samples).sum()) if len(samples) else 0, cfg.sampling)
    fingerprint = {"rows": obs_meta["rows"], "files": obs_meta["files"], "root_seed": obs_meta["root_seed"],
                   "sources": None if cfg.sources is None else list(cfg.sources)}
    sets = {s: int(cfg.sizes.get(s, 0)) for s in SKILLS}
    sets[MOTIF_SET] = int(cfg.motif)
    written = {}
    for name, n in sets.items():
        if n == 0:
            continue
        seed = derive_seed(top.root_seed, "pairs", name)
        meta = {"name": name, "pairs": n, "seed": seed, "gap": cfg.gap, "observations": fingerprint,
                "profile": top.profile, "root_seed": top.root_seed, "sampling": cfg.sampling}
        if cfg.sampling == "changed":
            meta["changed_fraction"] = cfg.changed_fraction
        if cfg.clamp_gap or cfg.rare_messages:  # absent when off: pair files of earlier runs stay valid
            meta.update(clamp_gap=cfg.clamp_gap, rare_messages=cfg.rare_messages)
        path = out_dir / f"{name}.parquet"
        if not (path.exists() and file_metadata(path) == meta):
            df = draw_pairs(samples, n, seed, name, cfg.sampling, cfg.changed_fraction, cfg.rare_messages)
            write_table(df, path, PAIR_SCHEMA, metadata=meta)
            log.info("pairs[%s]: %d pairs, %.0f%% of samples with a message, %.1f%% with a depth change",
                     name, n, 100 * (pd.concat([df.message_1, df.message_2]).str.strip() != "").mean(),
                     100 * pd.concat([df.dlvl_1 != df.dlvl_prev_1, df.dlvl_2 != df.dlvl_prev_2]).mean())
        written[name] = {"file": path.name, "pairs": n, "seed": seed}
    write_json(out_dir / "meta.json", {"sets": written, "gap": cfg.gap, "samples": len(samples),
                                       "sampling": cfg.sampling,
                                       "profile": top.profile, "root_seed": top.root_seed})
    return out_dir


def load_pairs(path: str | Path) -> pd.DataFrame:
    """One pair set, schema-checked."""
    return read_table(path, PAIR_SCHEMA, "pair set", rerun="`python -m maestromotif.data.pairs`")


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", default=None)
    parser.add_argument("--observations", default=None, help="default: <data_dir>/observations")
    parser.add_argument("--out", default=None, help="default: <data_dir>/pairs")
    args = parser.parse_args(argv)
    setup_logging()
    make_pairs(load_params(args.params), args.observations, args.out)


if __name__ == "__main__":
    main()
