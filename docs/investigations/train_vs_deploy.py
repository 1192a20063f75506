"""Does the trained network act the same in its training env and in deployment?

    python docs/investigations/train_vs_deploy.py <train_skills run dir> [--steps 2000]

1. Builds the training env exactly as sample-factory's workers do (maestromotif.rl.sf_env.make_skill_env
   with the run's own config.json) and the deployment env exactly as benchmark.evaluate does
   (SkillPolicy.wrap_env(benchmark.env.make(...)) with the same training program), resets both on the same
   game and replays the same random actions: the network inputs must be identical.
2. Feeds the same inputs through sample-factory's inference path (prepare_and_normalize_obs, as the
   rollout workers) and through SkillPolicy.act: the action logits must be identical.
3. Lets the network act in each env for --steps steps and prints the action histogram per skill.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch
from sample_factory.algo.utils.rl_utils import prepare_and_normalize_obs
from sample_factory.utils.attr_dict import AttrDict

from benchmark.env import ACTION_NAMES, env_config_from_json, make
from maestromotif.options.runtime import SKILLS
from maestromotif.rl.policy import SkillPolicy, load_actor_critic
from maestromotif.rl.sf_env import make_skill_env


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--program", default="training", help="program over skills in both envs (the "
                        "isolated ablation cycles skills from different first ones: give a program)")
    args = parser.parse_args()
    run = Path(args.run)
    model, cfg, _ = load_actor_critic(run)
    sf_cfg = AttrDict(json.loads((run / "sf" / "config.json").read_text()))
    sf_cfg.mm_program = args.program  # the same program in both envs, whatever the run trained with
    train_env = make_skill_env("mm_skills", sf_cfg, AttrDict(worker_index=0, vector_index=0))
    policy = SkillPolicy(model, cfg, args.program)
    env_cfg = env_config_from_json(sf_cfg.appo_env_config)
    deploy_env = policy.wrap_env(make(cfg=env_cfg))
    keys = policy.keys

    # 1 + 2: same game, same actions
    b, _ = deploy_env.reset(seed=args.seed)
    # the training env was seeded by its factory; put it on the same game as the deployment env
    a, _ = train_env.env.reset(seed=args.seed)  # below OwnSeeds, which drops seeds on purpose
    rng = np.random.default_rng(0)
    worst_input, worst_logit = 0.0, 0.0
    state = policy.initial_state(1)
    for t in range(300):
        for k in keys:
            worst_input = max(worst_input, float(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)).max()))
        with torch.no_grad():
            sf_obs = prepare_and_normalize_obs(model, {k: torch.from_numpy(np.asarray(a[k])[None]) for k in keys})
            sf_logits = model(sf_obs, state)["action_logits"]
            inputs = {k: torch.from_numpy(np.ascontiguousarray(np.asarray(b[k])[None])) for k in keys}
            dep_logits = model(model.normalize_obs(inputs), state)["action_logits"]
        worst_logit = max(worst_logit, float((sf_logits - dep_logits).abs().max()))
        act = int(rng.integers(len(ACTION_NAMES)))
        a, _, ta, ua, _ = train_env.step(act)
        b, _, tb, ub, _ = deploy_env.step(act)
        if ta or ua or tb or ub:
            break
    print(f"same game, same {t + 1} actions: max |input difference| {worst_input}, "
          f"max |logit difference| {worst_logit}")

    # 3: the network acting in each env
    for name, env, sf_path in (("training env, SF inference path", train_env, True),
                               ("deployment env, SkillPolicy.act", deploy_env, False)):
        hist: dict[str, Counter] = defaultdict(Counter)
        obs, _ = env.reset()
        state = policy.initial_state(1)
        start = np.ones(1, dtype=bool)
        lengths, length = [], 0
        for _ in range(args.steps):
            skill = SKILLS[int(np.argmax(obs["stats"][30:]))]
            if sf_path:
                with torch.no_grad():
                    sf_obs = prepare_and_normalize_obs(model, {k: torch.from_numpy(np.asarray(obs[k])[None])
                                                               for k in keys})
                    out = model(sf_obs, state)
                action, state = int(out["actions"][0]), out["new_rnn_states"]
            else:
                actions, state = policy.act({k: np.asarray(obs[k])[None] for k in keys}, state, start)
                action = int(actions[0])
            start[:] = False
            hist[skill][ACTION_NAMES[action]] += 1
            obs, _, term, trunc, _ = env.step(action)
            length += 1
            if term or trunc:
                lengths.append(length)
                length = 0
                obs, _ = env.reset()
                state = policy.initial_state(1)
                start[:] = True
        print(f"\n{name}: {args.steps} steps, {len(lengths)} episodes ended, mean length "
              f"{np.mean(lengths) if lengths else float('nan'):.0f}")
        for skill, c in hist.items():
            n = sum(c.values())
            top = ", ".join(f"{a} {v / n:.0%}" for a, v in c.most_common(6))
            print(f"   {skill:10s} {n:6d} steps: {top}")


if __name__ == "__main__":
    main()
