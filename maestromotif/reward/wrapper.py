"""`IntrinsicRewardWrapper`: the env reward becomes the paper's total reward (maestromotif.reward.intrinsic).

sample-factory 2 has no learner hook for a reward model, so the reward is computed inside the env; run
SF with reward_scale=1 and a large reward_clip, since the scaling and clipping of the game reward happen
here.

Contract with the options wrapper (maestromotif.options.wrapper.OptionsWrapper), read from `info` after
each step: info["skill"] is the index of the skill that chose the action (absent: skill 0, the case of
the single-model baselines); info["skill_switched"] is True when a new skill starts with the next action,
which resets the depth window; info["next_skill"] is that skill, whose model scores the switching step
(reward.intrinsic.switch_reward_model). Wrap outside the options wrapper so that those keys are there.

Adds to info: "intrinsic_reward" (r_int, before llm_coef), "normalised_reward" (r_hat), "env_reward";
at episode end, "episode_extra_stats" with per-skill sums `skill_reward/<name>` (r_hat),
`skill_intrinsic/<name>` (r_int) and `skill_steps/<name>` — the data of the paper's Fig. 8b/c.
"""
from __future__ import annotations

import gymnasium as gym
from nle import nethack

from benchmark.env import decode_message, died, is_blank
from maestromotif.reward.intrinsic import EpisodeState, IntrinsicReward


class IntrinsicRewardWrapper(gym.Wrapper):
    def __init__(self, env: gym.Env, reward: IntrinsicReward):
        super().__init__(env)
        self.reward = reward
        self.state = EpisodeState(reward)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.state.reset(decode_message(obs["message"]), int(obs["blstats"][nethack.NLE_BL_DEPTH]))
        return obs, info

    def step(self, action):
        obs, env_reward, terminated, truncated, info = self.env.step(action)
        skill = int(info.get("skill", 0))
        death = died(terminated, info)
        if is_blank(obs):  # the game is over: nothing in it to score (EpisodeState.blank_step)
            step = self.state.blank_step(skill, float(env_reward), death)
        else:
            step = self.state.step(
                skill=skill,
                message=decode_message(obs["message"]),
                depth=int(obs["blstats"][nethack.NLE_BL_DEPTH]),
                env_reward=float(env_reward),
                skill_switched=bool(info.get("skill_switched", False)),
                next_skill=int(info.get("next_skill", skill)),
                died=death,
            )
        info["env_reward"] = float(env_reward)
        info["intrinsic_reward"] = step.intrinsic
        info["normalised_reward"] = step.normalised
        if terminated or truncated:
            extra = info.get("episode_extra_stats", {})
            info["episode_extra_stats"] = {**extra, **self.state.episode_stats()}
        return obs, step.total, terminated, truncated, info
