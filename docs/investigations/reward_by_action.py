"""What the training env pays, per action and per skill, under uniform random play.

    MM_PARAMS=<params.yaml> python docs/investigations/reward_by_action.py --steps 20000

Plays the exact training env of train_skills (benchmark.env.make + the skills' wrapper (--program) +
IntrinsicRewardWrapper with the params' reward models) with uniform random actions, and reports
  - per skill: steps active, share of steps with a positive reward, mean reward per step;
  - per (skill, action): mean reward that the action earned (the reward of the step it produced);
  - per skill: the messages that earned the most in total.
An action whose mean reward is far above the others is what RL will learn to repeat.
"""
from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
from omegaconf import OmegaConf

from benchmark.config import load_params, root
from benchmark.env import ACTION_NAMES, EnvConfig, decode_message, make
from maestromotif.options.runtime import SKILLS
from maestromotif.chain import DEFAULT, training_reward_root
from maestromotif.reward.intrinsic import IntrinsicReward
from maestromotif.reward.train import intrinsic_config
from maestromotif.reward.wrapper import IntrinsicRewardWrapper
from maestromotif.rl.sf_env import skill_index_order, wrap_skills


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--program", default="training", help="a program over skills, or isolated")
    args = parser.parse_args()
    params = load_params()
    top = root(params)
    reward = IntrinsicReward.from_dir(training_reward_root(params, DEFAULT),
                                      skill_index_order(list(top.skills)), intrinsic_config(params))
    env_cfg = EnvConfig(**OmegaConf.to_container(params.env, resolve=True))
    env = IntrinsicRewardWrapper(wrap_skills(make(seed=args.seed, cfg=env_cfg), args.program, args.seed), reward)
    rng = np.random.default_rng(args.seed)
    env.reset()
    by_action = defaultdict(list)
    by_message = defaultdict(float)
    steps = defaultdict(int)
    paid = defaultdict(int)
    total = defaultdict(float)
    episodes = 0
    for _ in range(args.steps):
        a = int(rng.integers(len(ACTION_NAMES)))
        obs, r, term, trunc, info = env.step(a)
        s = SKILLS[int(info["skill"])]
        steps[s] += 1
        paid[s] += r > 0
        total[s] += r
        by_action[(s, a)].append(r)
        if r > 0:
            by_message[(s, decode_message(obs["message"]))] += r
        if term or trunc:
            episodes += 1
            env.reset()
    print(f"{args.steps} random steps, {episodes} episodes ended")
    for s in SKILLS:
        if not steps[s]:
            continue
        print(f"\n{s}: {steps[s]} steps, {paid[s] / steps[s]:.1%} paid, mean reward {total[s] / steps[s]:.5f}")
        means = sorted(((np.mean(v), ACTION_NAMES[a], len(v)) for (k, a), v in by_action.items() if k == s),
                       reverse=True)
        print("   best actions:", ", ".join(f"{n} {m:.5f} (n={c})" for m, n, c in means[:6]))
        print("   worst:", ", ".join(f"{n} {m:.5f}" for m, n, c in means[-3:]))
        msgs = sorted(((v, m) for (k, m), v in by_message.items() if k == s), reverse=True)[:6]
        for v, m in msgs:
            print(f"      {v:8.4f}  {m[:100]!r}")


if __name__ == "__main__":
    main()
