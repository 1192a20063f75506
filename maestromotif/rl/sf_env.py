"""The training env and the model, registered with sample-factory 2.1.1 through its public API.

    env = benchmark.env.make(seed)                     the paper's Monk, 28 actions, 10k-step cap
        + skills      OptionsWrapper(program)          call-and-return over the 5 skills ("skill_onehot")
                      (or IsolatedSkill: the paper's "learned in isolation" ablation, one skill per episode)
        + reward      IntrinsicRewardWrapper           0.1 * thresholded, count-normalised r_phi of the
                                                       active skill; the game reward is multiplied by 0
        + CrashReport                                  an exception in the env is written to the run's
                                                       error file before it propagates (benchmark.appo)
        + PolicyObservation(crop_mode)                 network inputs (maestromotif.rl.obs)

This is MaestroMotif's env module for the shared trainer (benchmark.appo.runner calls `register()` and
`add_args()`). The reward is computed inside the env, so sample-factory runs unmodified with
reward_scale=1 and a large reward_clip. Factories are module-level functions: sample-factory pickles them
into its spawned worker and learner processes. Every setting reaches them in sample-factory's cfg (the
trainer's --appo_* arguments and this module's --mm_* ones), and each factory applies the library patches
(benchmark.appo.patches) before it builds anything.
"""
from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import gymnasium as gym
import numpy as np

from benchmark.appo import patches
from benchmark.appo.wrappers import CrashReport, OwnSeeds, env_slot
from benchmark.config import ConfigError, defaults
from benchmark.env import EnvConfig, env_config_from_json, make
from benchmark.seeding import derive_seed
from maestromotif.rl.network import encoder_factory
from maestromotif.rl.obs import NUM_SKILLS, PolicyObservation

log = logging.getLogger(__name__)

ENV_NAME = "mm_skills"
# test-only: the same env, raising after cfg.mm_crash_after steps
TEST_CRASH_ENV_NAME = "mm_skills_test_crash"


class CrashAfter(gym.Wrapper):
    """Test-only: raises after `steps` env steps, to check that a dead worker ends the run with an error."""

    def __init__(self, env: gym.Env, steps: int):
        super().__init__(env)
        self.steps, self.count = steps, 0

    def step(self, action):
        self.count += 1
        if self.count > self.steps:
            raise RuntimeError(f"injected env crash after {self.steps} steps (test-only env "
                               f"{TEST_CRASH_ENV_NAME})")
        return self.env.step(action)


class IsolatedSkill(gym.Wrapper):
    """The paper's "learned in isolation" ablation (Fig. 8a-b): one skill for a whole episode, cycling
    through the skills episode by episode, no policy over skills. Same obs/info keys as OptionsWrapper."""

    def __init__(self, env: gym.Env, num_skills: int = NUM_SKILLS, first: int = 0):
        super().__init__(env)
        self.num_skills, self.skill = num_skills, first - 1
        self.observation_space = gym.spaces.Dict({
            **env.observation_space.spaces,
            "skill": gym.spaces.Box(0, num_skills - 1, (1,), np.int64),
            "skill_onehot": gym.spaces.Box(0.0, 1.0, (num_skills,), np.float32),
        })

    def _obs(self, obs):
        onehot = np.zeros(self.num_skills, dtype=np.float32)
        onehot[self.skill] = 1.0
        return {**obs, "skill": np.array([self.skill], dtype=np.int64), "skill_onehot": onehot}

    def reset(self, **kwargs):
        self.skill = (self.skill + 1) % self.num_skills
        obs, info = self.env.reset(**kwargs)
        info.update(skill=self.skill, skill_switched=False)
        return self._obs(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info.update(skill=self.skill, skill_switched=False)
        return self._obs(obs), reward, terminated, truncated, info


class HeldSkill(IsolatedSkill):
    """IsolatedSkill with one fixed skill: `skill` is set by the caller and never cycles."""

    def __init__(self, env: gym.Env, skill: int = 0):
        super().__init__(env, NUM_SKILLS, first=skill)
        self.skill = skill

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        info.update(skill=self.skill, skill_switched=False)
        return self._obs(obs), info


# --- the env factory ------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _intrinsic_reward(reward_dir: str, skills: tuple[str, ...], intrinsic_json: str):
    """One IntrinsicReward (and its score memo) per process, shared by all of the process's envs. The
    settings come in the cfg (`--mm_intrinsic`, the params' reward.intrinsic block as JSON); '' = the
    values of conf/reward/default.yaml."""
    from maestromotif.reward.intrinsic import IntrinsicConfig, IntrinsicReward

    cfg = (IntrinsicConfig(**json.loads(intrinsic_json)) if intrinsic_json
           else defaults("reward.intrinsic", IntrinsicConfig))
    return IntrinsicReward.from_dir(reward_dir, list(skills), cfg)


def skill_index_order(skills) -> tuple[str, ...]:
    """The reward models' order for IntrinsicReward: the options wrapper's skill index order
    (maestromotif.options.runtime.SKILLS), whatever order the params list the skills in.

    info["skill"] and the one-hot index skills in that fixed order; loading the models in the params'
    order instead scored e.g. every Worshipper step with the Merchant's model when the params listed the
    skills as the paper does (merchant before worshipper)."""
    from maestromotif.options.runtime import SKILLS

    missing = [s for s in SKILLS if s not in skills]
    unknown = [s for s in skills if s not in SKILLS]
    if missing or unknown:
        raise ValueError(f"the skill network trains all of {list(SKILLS)} (the programs may start any of "
                         f"them); the params `skills` {list(skills)} lack {missing} / add unknown {unknown}")
    return tuple(SKILLS)


# rl.program values that are not a policy over skills
ISOLATED = "isolated"  # the paper's ablation: one skill per episode, cycling, on the full game
SKILL_STARTS = "skill_starts"  # each env holds one skill on that skill's start (held_skill_at_start)
SKILLS_CROSSED = "skills_crossed"  # every skill on every start, drawn apart (skills_crossed_with_starts)
NO_PROGRAM = (ISOLATED, SKILL_STARTS, SKILLS_CROSSED)


def resolve_program(name: str, codegen_dir: str | Path | None, code_seed: int) -> str:
    """The program to run: codegen's output <codegen_dir>/<name>/seed<code_seed>/ when it exists, else the
    name itself (maestromotif.options' reference program of that name, the fallback)."""
    if name in NO_PROGRAM or codegen_dir is None:
        return name
    folder = Path(codegen_dir) / name / f"seed{code_seed}"
    return str(folder) if (folder / "program.py").is_file() else name


def wrap_skills(env: gym.Env, program, seed: int) -> gym.Env:
    """Add the skill protocol: a policy over skills (a Program, a name or a codegen folder), or the isolated
    ablation."""
    if program == ISOLATED:
        return IsolatedSkill(env, first=seed % NUM_SKILLS)
    from maestromotif.options.wrapper import OptionsWrapper

    return OptionsWrapper(env, program, seed=seed)


def held_skill_at_start(env_cfg: EnvConfig, cfg, env_index: int, env_seed: int) -> gym.Env:
    """The `skill_starts` training program: env `env_index` holds skill k = SKILLS[env_index % 5] for whole
    episodes of at most cfg.mm_held_steps steps, on start number (env_index // 5) of k's list in
    `rl.skill_starts` (by default the one start made for k), so every skill trains where it can act
    (docs/deviations.md, `rl.program`)."""
    from maestromotif.options.runtime import SKILLS
    from maestromotif.skill_starts import MAX_WALK_STEPS, make_start

    skill = env_index % len(SKILLS)
    starts = training_starts(cfg.mm_skill_starts)[SKILLS[skill]]
    steps = min(env_cfg.max_episode_steps, cfg.mm_held_steps) + MAX_WALK_STEPS
    env = make_start(starts[(env_index // len(SKILLS)) % len(starts)],
                     EnvConfig(**{**env_cfg.__dict__, "max_episode_steps": steps}), MAX_WALK_STEPS,
                     seed=env_seed)
    return HeldSkill(HeldSteps(env, cfg.mm_held_steps), skill)


def training_starts(skill_starts_json: str) -> dict[str, list[str]]:
    """`rl.skill_starts` (as the JSON of --mm_skill_starts) checked: every skill, each with known starts."""
    from maestromotif.options.runtime import SKILLS
    from maestromotif.skill_starts import STARTS

    table = json.loads(skill_starts_json or "{}")
    missing = [k for k in SKILLS if not table.get(k)]
    unknown = sorted({s for v in table.values() for s in v} - set(STARTS)) + sorted(set(table) - set(SKILLS))
    if missing or unknown:
        raise ConfigError(f"rl.skill_starts: give every skill of {list(SKILLS)} a non-empty list of starts "
                          f"from {list(STARTS)} (maestromotif/skill_starts.py); missing {missing}, unknown "
                          f"{unknown}")
    return {k: list(table[k]) for k in SKILLS}


def skills_crossed_with_starts(env_cfg: EnvConfig, cfg, env_index: int, env_seed: int) -> gym.Env:
    """The `skills_crossed` training program: env `env_index` plays start MEASURED_STARTS[env_index % 4]
    (the four of maestromotif.skill_starts that skill_behaviour measures from) and holds one skill per
    episode, cycling through all five episode by episode (offset by env_index // 4, so the envs of one
    start hold different skills at once). Skill and level are independent, so only the one-hot tells the
    skills apart; under `skill_starts` the level alone did (docs/investigations/skills.md, sections 8-9)."""
    from maestromotif.skill_starts import MAX_WALK_STEPS, MEASURED_STARTS, make_start

    starts = list(MEASURED_STARTS)
    steps = min(env_cfg.max_episode_steps, cfg.mm_held_steps) + MAX_WALK_STEPS
    env = make_start(starts[env_index % len(starts)],
                     EnvConfig(**{**env_cfg.__dict__, "max_episode_steps": steps}), MAX_WALK_STEPS,
                     seed=env_seed)
    return IsolatedSkill(HeldSteps(env, cfg.mm_held_steps), first=(env_index // len(starts)) % NUM_SKILLS)


class HeldSteps(gym.Wrapper):
    """Truncates an episode after `steps` steps of the skill (the walk to the start not counted)."""

    def __init__(self, env: gym.Env, steps: int):
        super().__init__(env)
        self.steps, self.count = steps, 0

    def reset(self, **kwargs):
        self.count = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.count += 1
        return obs, reward, terminated, truncated or self.count >= self.steps, info


def make_skill_env(full_env_name: str, cfg=None, env_config=None, render_mode=None) -> gym.Env:
    """sample-factory's env factory: (name, cfg, env_config) -> gymnasium env. Settings come from the
    cfg's appo_* (benchmark.appo.runner) and mm_* (add_args) arguments."""
    patches.apply(cfg.appo_error_file)
    worker, vector = env_slot(env_config)
    env_seed = derive_seed(cfg.appo_root_seed, "train_skills", cfg.appo_seed, "env", worker, vector)
    env_cfg = env_config_from_json(cfg.appo_env_config)
    if cfg.mm_program in (SKILL_STARTS, SKILLS_CROSSED):
        held = held_skill_at_start if cfg.mm_program == SKILL_STARTS else skills_crossed_with_starts
        env = held(env_cfg, cfg, worker * cfg.num_envs_per_worker + vector, env_seed)
    else:
        env = make(seed=env_seed, cfg=env_cfg)
        if full_env_name == TEST_CRASH_ENV_NAME:
            env = CrashAfter(env, cfg.mm_crash_after)
        program = resolve_program(cfg.mm_program, cfg.mm_codegen_dir or None, cfg.mm_code_seed)
        env = wrap_skills(env, program, env_seed)
    from maestromotif.reward.wrapper import IntrinsicRewardWrapper

    reward = _intrinsic_reward(cfg.mm_reward_dir, skill_index_order(cfg.mm_skills.split(",")),
                               cfg.mm_intrinsic)
    env = IntrinsicRewardWrapper(env, reward)
    env = CrashReport(env, cfg.appo_error_file)
    return OwnSeeds(PolicyObservation(env, cfg.mm_crop_mode), env_seed)


def register() -> None:
    """Register the env names, the skill encoder and the skill heads (idempotent; call before parsing SF
    arguments). The heads' factory builds sample-factory's own actor-critic unless rl.skill_heads asks."""
    from sample_factory.algo.utils.context import global_env_registry, global_model_factory
    from sample_factory.envs.env_utils import register_env

    from maestromotif.rl.heads import make_actor_critic

    registry = global_env_registry()
    for name in (ENV_NAME, TEST_CRASH_ENV_NAME):
        if name not in registry:
            register_env(name, make_skill_env)
    global_model_factory().register_encoder_factory(encoder_factory)
    global_model_factory().register_actor_critic_factory(make_actor_critic)


def add_args(parser) -> None:
    """The skill env's settings, carried inside sample-factory's cfg to the env factory in every worker."""
    from maestromotif.rl.heads import DEFAULT_HEADS, SKILL_HEADS
    from maestromotif.rl.network import add_network_args

    p = parser.add_argument
    p("--mm_skill_heads", default=DEFAULT_HEADS, choices=list(SKILL_HEADS),
      help="where the one-hot meets the heads (maestromotif.rl.heads; 'shared' = the paper's network)")
    p("--mm_intrinsic", default="",
      help="the params' reward.intrinsic block as JSON ('' = conf/reward/default.yaml's)")
    p("--mm_program", default="training",
      help="policy over skills, or 'isolated' (ablation), or 'skill_starts' (each env holds one skill), "
      "or 'skills_crossed' (every skill on every start)")
    p("--mm_skill_starts", default="",
      help="skill_starts: JSON {skill: [start, ...]}, the starts each skill trains on ('' = its own start)")
    p("--mm_held_steps", type=int, default=1000,
      help="skill_starts / skills_crossed: steps per episode of a held skill")
    p("--mm_codegen_dir", default="", help="codegen outputs: <dir>/<program>/seed<k>/program.py")
    p("--mm_code_seed", type=int, default=0, help="which codegen seed of the training program")
    p("--mm_reward_dir", default="data/reward", help="<dir>/<skill>/model.pt")
    p("--mm_skills", default="discoverer,descender,ascender,worshipper,merchant")
    p("--mm_crash_after", type=int, default=10**9, help="test-only env: raise after this many steps")
    add_network_args(parser)
