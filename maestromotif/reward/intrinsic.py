"""The intrinsic reward that RL optimises, from one frozen reward model per skill.

For an observation scored by skill o's model, with current message m and depth change d:

    r_hat   = (r_phi_o(m, d) - mean_o) / sqrt(var_o)            normalised by the dataset statistics
    r_thr   = r_hat if r_hat > eps_o else 0                      eps_o = quantile of the normalised rewards
                                                                 (95th Discoverer, 85th the others), raised
                                                                 to min_threshold when that is set
    r_int   = r_thr / N(m) ** beta                               N = episodic count of m, beta = 3,
                                                                 counts kept in a 20-message LRU
    r_total = extrinsic_coef * clip(reward_scale * r_env, +-reward_clip) + llm_coef * r_int
            = 0.0 * (...) + 0.1 * r_int                          during skill training

The Motif and embedding-similarity baselines use the same code with ONE model and no skills: every
step is skill 0, and Motif sets `extrinsic_coef` > 0 for score + intrinsic.

Depth change online. The reward model was trained on pairs whose depth change spans 100 steps; online,
as in the official code (`BlstatsWrapper`, `diff_h=1000`), the change is measured against the oldest
depth in a deque of up to `depth_window` steps that is emptied whenever a skill terminates. So it is the
change since the current skill started (or since 1000 steps ago), not over a fixed 100 steps. We keep
this mismatch on purpose, to reproduce the paper's behaviour.

Timing. The official learner scores the observation an action was chosen from (SF1 stores the pre-step
observation with the post-step reward). Our env wrapper scores the observation the action produced:
the same rewards shifted by one step (returns differ by a factor gamma and the first observation's reward;
the observation that ends a game is NLE's blank one, which neither scores, see "The end of a game").

Which model scores the observation that ends a skill (`switch_reward_model`; docs/deviations.md). That
observation (e.g. the arrival on a new level that ended the Descender, depth change +1) already carries
the next skill in its one-hot, and the official learner picks the model by that one-hot:
  "next_skill"   (default, official): the NEW skill's model scores it, and the sums below count it for
                 the new skill; the Descender's model never sees its own successful descent online;
  "acting_skill" (ours): the model of the skill whose action produced it, i.e. the Descender's.
Every other step is scored by the acting skill either way (the one-hot does not change).

A threshold below zero (`min_threshold`; docs/deviations.md). On data where most samples look alike, the
quantile can fall on the score of the common case (no message of interest, depth unchanged), which the
normalisation puts below zero: the oracle Descender's eps was -0.14 with "" at depth change 0 scoring -0.14
and some messages -0.13, so ordinary steps were paid a small negative reward and ending the episode early
paid (docs/investigations/skills.md §10). `min_threshold: 0.0` pays only positive r_hat; null is the paper's.

Counts across a death (`count_scope`). Officially N(m) restarts with every episode, so a fresh episode pays
its common messages in full again; "env" keeps each env's counts (still in the 20-message LRU) across its
episodes. Measured (docs/investigations/skills.md §10): "env" made the skills' episodes shorter, not longer.

The end of a game. NLE's observation after the game ends (a death, or the step cap) has every blstats
field (depth included) and the message zeroed; it is not scored (EpisodeState.blank_step; before, its depth
0 read as an ascent and paid the Ascender for every death). `death_penalty` (docs/deviations.md; 0.0, the
paper's, by default) is subtracted from r_total on the step that ends the game in the hero's death.

Speed. r_phi depends only on (skill, message, depth-change sign), so scores are memoised per key, and
`precompute` scores a batch of new keys in one forward pass; a step then costs a dict lookup.
"""
from __future__ import annotations

import logging
import math
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from benchmark.config import defaults
from maestromotif.reward.model import CheckpointError, RewardCheckpoint, load_checkpoint, score

log = logging.getLogger(__name__)

SWITCH_REWARD_MODELS = ("next_skill", "acting_skill")
COUNT_SCOPES = ("episode", "env")


@dataclass
class IntrinsicConfig:
    """How RL turns reward-model outputs into rewards (values: conf/reward/default.yaml `intrinsic`, the
    paper's skill training)."""

    threshold_quantile: dict[str, float]
    default_threshold_quantile: float  # for a model whose name is not in the table (baselines)
    count_exponent: float  # beta
    message_lru_size: int  # msg_max_keys; <= 0 means an unbounded count dict (Motif)
    llm_coef: float
    extrinsic_coef: float
    reward_scale: float  # applies to the env reward only
    reward_clip: float  # applies to the env reward only
    depth_window: int  # diff_h
    # which model scores the observation that ends a skill: "next_skill" (official) or "acting_skill"
    switch_reward_model: str
    # the threshold is at least this (0.0: no negative r_hat is ever paid); None: the quantile alone (paper)
    min_threshold: Optional[float]
    # N(m) restarts with each episode ("episode", official) or runs on across the env's episodes ("env")
    count_scope: str
    # subtracted from r_total on the step that ends the game in the hero's death; 0.0: none (paper)
    death_penalty: float

    def __post_init__(self):
        if self.switch_reward_model not in SWITCH_REWARD_MODELS:
            raise ValueError(
                f"reward.intrinsic.switch_reward_model is {self.switch_reward_model!r}; set it to one of "
                f"{list(SWITCH_REWARD_MODELS)} (conf/reward/default.yaml)"
            )
        if not (math.isfinite(float(self.death_penalty)) and float(self.death_penalty) >= 0.0):
            raise ValueError(f"reward.intrinsic.death_penalty is {self.death_penalty!r}; set it to a finite "
                             "number >= 0 (0.0: no penalty, the paper's; conf/reward/default.yaml)")
        if self.count_scope not in COUNT_SCOPES:
            raise ValueError(f"reward.intrinsic.count_scope is {self.count_scope!r}; set it to one of "
                             f"{list(COUNT_SCOPES)} (conf/reward/default.yaml)")

    def quantile_for(self, name: str) -> float:
        return float(self.threshold_quantile.get(name, self.default_threshold_quantile))


class MessageCounter:
    """Episodic message counts in an LRU of `max_keys` messages: the 21st distinct message evicts the
    least recently seen one, whose count restarts at 1 if it comes back (official LimitedDefaultDict)."""

    def __init__(self, max_keys: int = 20):
        self.max_keys = max_keys
        self._counts: OrderedDict[str, int] = OrderedDict()

    def reset(self) -> None:
        self._counts.clear()

    def add(self, message: str) -> int:
        """Count one more occurrence of `message`; return its count including this one."""
        count = self._counts.pop(message, 0) + 1
        self._counts[message] = count  # re-inserted at the most-recent end
        if 0 < self.max_keys < len(self._counts):
            self._counts.popitem(last=False)
        return count

    def __len__(self) -> int:
        return len(self._counts)

    def __contains__(self, message: str) -> bool:
        return message in self._counts


class DepthWindow:
    """Sign of the depth change against the oldest of the last `maxlen` depths (official BlstatsWrapper)."""

    def __init__(self, maxlen: int = 1000):
        self._depths: deque[int] = deque(maxlen=maxlen)

    def reset(self, depth: int) -> None:
        self._depths.clear()
        self._depths.append(int(depth))

    def update(self, depth: int) -> int:
        """Record the depth after a step; return sign(depth - oldest kept depth) in {-1, 0, 1}."""
        self._depths.append(int(depth))
        return int(np.sign(self._depths[-1] - self._depths[0]))


class NonFiniteReward(FloatingPointError):
    """A reward model scored a key NaN or inf: training on it would silently ruin the policy."""


class SkillRewardModel:
    """One frozen reward model with its normalisation, threshold and a memo of normalised scores."""

    def __init__(self, ckpt: RewardCheckpoint, threshold_quantile: float, min_threshold: float | None = None):
        self.name = ckpt.skill
        self.ckpt = ckpt
        self.mean = ckpt.reward_mean
        self.std = ckpt.reward_std
        self.threshold_quantile = threshold_quantile
        self.quantile_threshold = ckpt.threshold(threshold_quantile)
        self.threshold = (self.quantile_threshold if min_threshold is None
                          else max(self.quantile_threshold, float(min_threshold)))
        # a message-only model (Motif's, the embedding similarity) ignores the depth change: one key per
        # message
        self.uses_depth = getattr(ckpt.model, "uses_depth", True)
        self._cache: dict[tuple[str, int], float] = {}
        self.misses = 0  # keys that needed a model call

    def precompute(self, keys: Iterable[tuple[str, int]]) -> int:
        """Score every (message, dlvl change) key not yet memoised in one batch; return how many."""
        todo = list(dict.fromkeys(k for k in map(self._key, keys) if k not in self._cache))
        if todo:
            raw = score(self.ckpt.model, [m for m, _ in todo], [d for _, d in todo])
            normalised = (raw - self.mean) / self.std
            bad = np.flatnonzero(~np.isfinite(normalised))
            if len(bad):  # fail here, before the value reaches a return; nothing NaN is memoised
                message, change = todo[bad[0]]
                raise NonFiniteReward(
                    f"the {self.name} reward model scores {normalised[bad[0]]} for message {message!r} with "
                    f"depth change {change} ({len(bad)} of {len(todo)} keys non-finite): its checkpoint "
                    f"({self.ckpt.path or 'not loaded from a file'}) is broken (NaN/inf weights or "
                    "normalisation): delete it and retrain that reward model (a MaestroMotif skill's: "
                    f"`python -m maestromotif.reward.train --skill {self.name}`)")
            for key, r in zip(todo, normalised):
                self._cache[key] = float(r)
            self.misses += len(todo)
        return len(todo)

    def normalised(self, message: str, dlvl_change: int) -> float:
        """(r_phi - mean) / std for one key (memoised)."""
        key = self._key((message, dlvl_change))
        r = self._cache.get(key)
        if r is None:
            self.precompute([key])
            r = self._cache[key]
        return r

    def _key(self, key: tuple[str, int]) -> tuple[str, int]:
        return key if self.uses_depth else (key[0], 0)

    def __len__(self) -> int:
        return len(self._cache)


@dataclass
class StepReward:
    """Every term of one step's reward, for logging and tests."""

    total: float
    intrinsic: float  # r_int = thresholded / count**beta (before llm_coef)
    normalised: float  # r_hat
    count: int
    dlvl_change: int
    skill: int  # whose model scored the step (and whose sums it went to)


class IntrinsicReward:
    """N frozen reward models indexed by skill (0..N-1), and the paper's reward formula.

    Stateless across episodes except for the score memo; the per-episode state (message counts, depth
    window) lives in `EpisodeState`, one per env, so one `IntrinsicReward` (and its memo) can be shared
    by every env of a process.
    """

    def __init__(self, checkpoints: Sequence[RewardCheckpoint], cfg: IntrinsicConfig | None = None):
        if not checkpoints:
            raise ValueError("IntrinsicReward needs at least one reward model")
        self.cfg = cfg or defaults("reward.intrinsic", IntrinsicConfig)
        self.models = [SkillRewardModel(c, self.cfg.quantile_for(c.skill), self.cfg.min_threshold)
                       for c in checkpoints]
        self.names = [m.name for m in self.models]

    @classmethod
    def from_dir(cls, reward_dir: str | Path, names: Sequence[str], cfg: IntrinsicConfig | None = None,
                 filename: str = "model.pt") -> "IntrinsicReward":
        """Load `<reward_dir>/<name>/model.pt` for each name, in order (skill index = position)."""
        return cls([load_checkpoint(Path(reward_dir) / n / filename, skill=n) for n in names], cfg)

    @classmethod
    def from_files(cls, paths: Sequence[str | Path], names: Sequence[str] | None = None,
                   cfg: IntrinsicConfig | None = None) -> "IntrinsicReward":
        names = names or [None] * len(paths)
        return cls([load_checkpoint(p, skill=n) for p, n in zip(paths, names)], cfg)

    def model(self, skill: int) -> SkillRewardModel:
        if not 0 <= skill < len(self.models):
            raise IndexError(
                f"skill index {skill} has no reward model: loaded {len(self.models)} "
                f"({', '.join(self.names)}); "
                "the options wrapper and the reward models must use the same skill list"
            )
        return self.models[skill]

    def precompute(self, keys: Iterable[tuple[int, str, int]]) -> int:
        """Score a batch of (skill, message, dlvl change) keys ahead of use; return how many were new."""
        by_skill: dict[int, list[tuple[str, int]]] = {}
        for skill, message, change in keys:
            by_skill.setdefault(int(skill), []).append((message, int(change)))
        return sum(self.model(s).precompute(k) for s, k in by_skill.items())

    def normalised(self, skill: int, message: str, dlvl_change: int) -> float:
        return self.model(skill).normalised(message, dlvl_change)

    def intrinsic(self, skill: int, message: str, dlvl_change: int, count: int) -> tuple[float, float]:
        """(r_int, r_hat): the thresholded, count-divided reward and the normalised one."""
        model = self.model(skill)
        r_hat = model.normalised(message, dlvl_change)
        r_thr = r_hat if r_hat > model.threshold else 0.0
        return r_thr / float(count) ** self.cfg.count_exponent, r_hat

    def total(self, env_reward: float, r_int: float, died: bool = False) -> float:
        c = self.cfg
        extrinsic = min(max(c.reward_scale * float(env_reward), -c.reward_clip), c.reward_clip)
        return c.extrinsic_coef * extrinsic + c.llm_coef * r_int - (c.death_penalty if died else 0.0)


class EpisodeState:
    """One env's per-episode state: message counts, depth window, per-skill sums for the curves."""

    def __init__(self, reward: IntrinsicReward):
        self.reward = reward
        self.counter = MessageCounter(reward.cfg.message_lru_size)
        self.depths = DepthWindow(reward.cfg.depth_window)
        n = len(reward.models)
        self.reward_sums = np.zeros(n)  # sum of r_hat per skill
        self.intrinsic_sums = np.zeros(n)  # sum of r_int per skill
        self.steps = np.zeros(n, dtype=np.int64)

    def reset(self, message: str, depth: int) -> None:
        """Start an episode from its first observation (its message counts once, as officially)."""
        if self.reward.cfg.count_scope == "episode":
            self.counter.reset()
        self.counter.add(message)
        self.depths.reset(depth)
        self.reward_sums[:] = 0
        self.intrinsic_sums[:] = 0
        self.steps[:] = 0

    def step(self, skill: int, message: str, depth: int, env_reward: float,
             skill_switched: bool, next_skill: int | None = None, died: bool = False) -> StepReward:
        """The reward of a step taken by `skill` that produced (message, depth); `next_skill` is the
        skill that acts next (the one in the produced observation), needed when `skill_switched`; `died`:
        the step ended the game in the hero's death (death_penalty)."""
        if skill_switched and self.reward.cfg.switch_reward_model == "next_skill":
            if next_skill is None:
                raise ValueError("a skill switch needs next_skill with switch_reward_model 'next_skill' "
                                 "(the options wrapper reports it as info['next_skill'])")
            skill = next_skill
        self.reward.model(skill)  # fail early on a bad index, before touching state
        change = self.depths.update(depth)
        count = self.counter.add(message)
        try:
            r_int, r_hat = self.reward.intrinsic(skill, message, change, count)
        except NonFiniteReward as e:
            raise NonFiniteReward(f"step {int(self.steps.sum()) + 1} of the episode: {e}") from e
        if skill_switched:  # a new skill starts with the next action: measure depth from here
            self.depths.reset(depth)
        self.reward_sums[skill] += r_hat
        self.intrinsic_sums[skill] += r_int
        self.steps[skill] += 1
        return StepReward(self.reward.total(env_reward, r_int, died), r_int, r_hat, count, change, skill)

    def blank_step(self, skill: int, env_reward: float, died: bool) -> StepReward:
        """The reward of the step that produced NLE's blank end-of-game observation (benchmark.env.is_blank).
        It is not a game state: no model scores it and it changes no count, depth or sum. Its zeroed depth
        would otherwise read as an ascent (sign(0 - depth) = -1), which the Ascender's model pays, so every
        death paid it (docs/investigations/skills.md §11). The official learner never scores it either (it
        scores the observation an action was chosen from). The game reward and death_penalty still apply."""
        self.reward.model(skill)
        return StepReward(self.reward.total(env_reward, 0.0, died), 0.0, 0.0, 0, 0, skill)

    def episode_stats(self) -> dict[str, float]:
        """Per-skill sums of this episode (sample-factory averages each key over episodes)."""
        stats: dict[str, float] = {}
        for i, name in enumerate(self.reward.names):
            stats[f"skill_reward/{name}"] = float(self.reward_sums[i])
            stats[f"skill_intrinsic/{name}"] = float(self.intrinsic_sums[i])
            stats[f"skill_steps/{name}"] = int(self.steps[i])
        return stats


__all__ = [
    "COUNT_SCOPES",
    "CheckpointError",
    "DepthWindow",
    "EpisodeState",
    "IntrinsicConfig",
    "IntrinsicReward",
    "MessageCounter",
    "NonFiniteReward",
    "SWITCH_REWARD_MODELS",
    "SkillRewardModel",
    "StepReward",
]
