"""Probe the five skill reward models: threshold, and what they pay for typical messages.

    MM_PARAMS=<params.yaml> python docs/investigations/reward_probe.py [--observations DIR] [--method M]

For every skill: the threshold (normalised reward at the skill's quantile), the share of the dataset's
unique (message, depth-change sign) keys above it, and the normalised score of a list of probe messages
(prayer, eating, kills, shop, altar, stairs, the empty message) at depth change -1, 0, +1. With
--observations, also the keys of the collected data that each model rewards (above threshold, depth 0),
and how often those messages occur. Used by docs/investigations/skills.md.
"""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from benchmark.config import load_params, root
from maestromotif.chain import DEFAULT, training_reward_root
from maestromotif.reward.intrinsic import IntrinsicReward
from maestromotif.reward.train import intrinsic_config

PROBES = [
    "",
    "You begin praying to Huan Ti.",
    "You begin praying to Huan Ti.  You are surrounded by a shimmering light.",
    "You finish your prayer.",
    "You feel that Huan Ti is displeased.",
    "You feel a hopeful feeling.",
    "You feel guilty.",
    "What do you want to eat? [fg or ?*]",
    "You don't have anything to eat.",
    "This food really hits the spot!",
    "You're having a hard time getting all of it down.",
    "You kill the newt!",
    "Welcome to Asidonhopo's general store!",
    "You sold a scroll labeled FOOBIE BLETCH for 10 gold pieces.",
    "There is an altar to Huan Ti (neutral) here.",
    "There is a black flash as the potion hits the altar.",
    "You descend the stairs.",
    "You climb up the stairs.",
    "It's solid stone.",
    "You see no objects here.",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--observations", default=None, help="collect output folder (default: <data_dir>/observations)")
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--method", default=DEFAULT, help="maestromotif (LLM labels) or maestromotif_oracle")
    args = parser.parse_args()
    params = load_params()
    top = root(params)
    cfg = intrinsic_config(params)
    reward = IntrinsicReward.from_dir(training_reward_root(params, args.method), list(top.skills), cfg)
    counts: Counter = Counter()
    obs_dir = Path(args.observations or Path(params.data_dir) / "observations")
    if obs_dir.exists():
        import pandas as pd

        for f in sorted(obs_dir.glob("*.parquet")):
            counts.update(pd.read_parquet(f, columns=["message"])["message"].astype(str))
    total = sum(counts.values())
    for i, model in enumerate(reward.models):
        q = model.ckpt.quantiles
        meta = model.ckpt.metadata
        print(f"\n== {model.name}: threshold {model.threshold:.3f} (quantile {model.threshold_quantile}), "
              f"normalised range {min(q.values()):.2f}..{max(q.values()):.2f}, "
              f"held-out acc {meta.get('heldout_accuracy', meta.get('held_out_accuracy'))}")
        print(f"   {'message':62s} {'d=-1':>7s} {'d=0':>7s} {'d=+1':>7s}")
        for m in PROBES:
            s = [reward.normalised(i, m, d) for d in (-1, 0, 1)]
            flag = ["*" if x > model.threshold else " " for x in s]
            print(f"   {m[:62]!r:62s} " + " ".join(f"{x:6.2f}{f}" for x, f in zip(s, flag)))
        if counts:
            paid = [(m, n, reward.normalised(i, m, 0)) for m, n in counts.items()]
            above = [p for p in paid if p[2] > model.threshold]
            share = sum(n for _, n, _ in above) / total
            print(f"   depth-0 messages of the data above threshold: {len(above)} of {len(paid)} distinct, "
                  f"{share:.1%} of {total} steps; top by score:")
            for m, n, s in sorted(above, key=lambda p: -p[2])[: args.top]:
                print(f"      {s:6.2f}  x{n:<6d} {m[:90]!r}")


if __name__ == "__main__":
    main()
