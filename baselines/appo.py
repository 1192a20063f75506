"""The trained baselines' shared part: the shared APPO trainer (benchmark.appo) with MaestroMotif's
network, minus the skills.

Every trained baseline (score_ppo, task_ppo, motif, embedding_similarity) trains with
`benchmark.appo.trainer.train` on sample-factory's env ENV_NAME, registered by this module (its env module
for benchmark.appo.runner), whose env comes from `make_baseline_env` below, configured by the JSON keyword
arguments of `--baseline_env`:

    env = benchmark.env.make(seed)            the paper's Monk (+ the task tracker for task_ppo)
        + NoSkill                             skill 0, skill_onehot = zeros(5)
        + reward    "score"      clip(0.1 * score delta, +-10)                   (CDGPT5-style, SF config)
                    "task"       the score term + task_coef * increment of the task's value
                    "intrinsic"  IntrinsicRewardWrapper: ONE frozen model (Motif's r_phi or the
                                 embedding similarity), extrinsic_coef * score term + llm_coef * r_int
        + CrashReport + PolicyObservation     exactly as for the skills

No skill conditioning: the network is MaestroMotif's, unchanged, and its 5 one-hot inputs are always 0.
A zero input contributes nothing to the stats MLP's first linear layer (W @ 0 = 0) nor to the GRU (the
raw stats copy), so this network computes exactly what the same network without those inputs would,
while checkpoints, deployment and speed stay those of the shared trainer.

`BaselinePolicy` deploys a trained run in benchmark.evaluate with the same wrappers (NoSkill +
PolicyObservation), sampling actions as the official evaluation does.
"""
from __future__ import annotations

from abc import abstractmethod

import functools
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import gymnasium as gym
import numpy as np
from omegaconf import OmegaConf

from benchmark.appo.wrappers import CrashReport, OwnSeeds, env_slot
from benchmark.config import ConfigError, defaults, root, section
from benchmark.env import env_config_from_json, env_settings, make
from benchmark.io import write_json
from benchmark.method import Method, Policy
from benchmark.seeding import derive_seed

log = logging.getLogger(__name__)

ENV_MODULE = "baselines.appo"  # this module: register() and add_args() for benchmark.appo.runner
ENV_NAME = "baseline"
RUN_DIR = "policy"  # the APPO run inside a baseline's artefact folder
NUM_SKILLS = 5  # width of the (constant zero) one-hot the shared network expects
REWARDS = ("score", "task", "intrinsic")


@dataclass
class TrainerConfig:
    """How a baseline trains (values: conf/method/<name>.yaml `trainer:`, each method file gives every key;
    profile sizes in params `<name>.trainer`)."""

    train_for_env_steps: int
    reward_scale: float  # the score delta is scaled by this ...
    reward_clip: float  # ... then clipped to +-reward_clip
    rl: dict  # any other field of the `rl` section for this baseline
    deterministic: bool  # evaluation: argmax instead of sampling


# --- training env -------------------------------------------------------------------------------------
class NoSkill(gym.Wrapper):
    """Every step is skill 0 and the one-hot is all zeros: the shared network without skill conditioning."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = gym.spaces.Dict({
            **env.observation_space.spaces,
            "skill_onehot": gym.spaces.Box(0.0, 1.0, (NUM_SKILLS,), np.float32),
        })
        self._zeros = np.zeros(NUM_SKILLS, dtype=np.float32)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        info.update(skill=0, skill_switched=False)
        return {**obs, "skill_onehot": self._zeros}, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info.update(skill=0, skill_switched=False)
        return {**obs, "skill_onehot": self._zeros}, reward, terminated, truncated, info


def scaled_score(reward: float, scale: float, clip: float) -> float:
    return min(max(scale * float(reward), -clip), clip)


class ScoreReward(gym.RewardWrapper):
    """CDGPT5-style: the score delta x reward_scale, clipped (what SF does with --reward_scale 0.1)."""

    def __init__(self, env: gym.Env, scale: float, clip: float):
        super().__init__(env)
        self.scale, self.clip = scale, clip

    def reward(self, reward):
        return scaled_score(reward, self.scale, self.clip)


class TaskScoreReward(gym.Wrapper):
    """Privileged "RL w/ task reward + score": the score term + task_coef x (task value now - before).

    The task value is the tracker's (benchmark.tasks): 0/1 for success tasks, a count for count tasks, so
    each success or counted event pays task_coef once."""

    def __init__(self, env: gym.Env, task_coef: float, scale: float, clip: float):
        super().__init__(env)
        self.task_coef, self.scale, self.clip = task_coef, scale, clip
        self.value = 0.0

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.value = float(info.get("task", {}).get("value", 0.0))
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        value = float(info["task"]["value"])
        gained, self.value = value - self.value, value
        total = scaled_score(reward, self.scale, self.clip) + self.task_coef * gained
        return obs, total, terminated, truncated, info


@functools.lru_cache(maxsize=2)
def _intrinsic(kind: str, path: str, config_json: str):
    """One IntrinsicReward (and its score memo) per worker process, shared by the process's envs."""
    from maestromotif.reward.intrinsic import IntrinsicConfig, IntrinsicReward
    from maestromotif.reward.model import load_checkpoint

    cfg = defaults("reward.intrinsic", IntrinsicConfig, **json.loads(config_json))  # the rest: conf/reward's
    if kind == "checkpoint":
        return IntrinsicReward([load_checkpoint(path)], cfg)
    if kind == "embedding":
        from baselines.embedding_reward import load_reward

        return IntrinsicReward([load_reward(path)], cfg)
    raise ValueError(f"unknown intrinsic reward kind {kind!r} (checkpoint | embedding)")


def make_baseline_env(cfg, env_config, method: str, reward: str, *, reward_scale: float, reward_clip: float,
                      task: Optional[str] = None, track_task: bool = False, task_coef: float = 0.0,
                      intrinsic: Optional[dict] = None) -> gym.Env:
    """The baselines' training env, for `env_factory`."""
    from maestromotif.rl.obs import PolicyObservation

    if reward not in REWARDS:
        raise ValueError(f"reward={reward!r}: choose one of {REWARDS}")
    worker, vector = env_slot(env_config)
    env_seed = derive_seed(cfg.appo_root_seed, "fit", method, cfg.appo_seed, task or "", "env", worker,
                           vector)
    env_cfg = env_config_from_json(cfg.appo_env_config)
    env = NoSkill(make(task=task if track_task else None, seed=env_seed, cfg=env_cfg))
    if reward == "score":
        env = ScoreReward(env, reward_scale, reward_clip)
    elif reward == "task":
        env = TaskScoreReward(env, task_coef, reward_scale, reward_clip)
    else:
        from maestromotif.reward.wrapper import IntrinsicRewardWrapper

        spec = intrinsic or {}
        env = IntrinsicRewardWrapper(env, _intrinsic(spec["kind"], spec["path"],
                                                     json.dumps(spec.get("config", {}), sort_keys=True)))
    env = CrashReport(env, getattr(cfg, "appo_error_file", ""))  # the run's error file, for the watchdog
    return OwnSeeds(PolicyObservation(env, cfg.mm_crop_mode), env_seed)


def env_factory(full_env_name: str, cfg=None, env_config=None, render_mode=None) -> gym.Env:
    """sample-factory's env factory for ENV_NAME: make_baseline_env with the JSON of `--baseline_env`."""
    from benchmark.appo import patches

    patches.apply(getattr(cfg, "appo_error_file", ""))
    return make_baseline_env(cfg, env_config, **json.loads(cfg.baseline_env or "{}"))


def register() -> None:
    """Register ENV_NAME and MaestroMotif's encoder with sample-factory (idempotent)."""
    from sample_factory.algo.utils.context import global_env_registry, global_model_factory
    from sample_factory.envs.env_utils import register_env

    from maestromotif.rl.network import encoder_factory

    if ENV_NAME not in global_env_registry():
        register_env(ENV_NAME, env_factory)
    global_model_factory().register_encoder_factory(encoder_factory)


def add_args(parser) -> None:
    """The baseline env's settings (and the network's flag), carried in sample-factory's cfg."""
    from maestromotif.rl.network import add_network_args

    parser.add_argument("--baseline_env", default="{}", help="JSON keyword arguments of make_baseline_env")
    add_network_args(parser)


# --- training -------------------------------------------------------------------------------------------
def trainer_config(method: str, settings: Any, params: Any = None) -> TrainerConfig:
    """Constructor `trainer` settings, overridden by the params' optional `<method>.trainer` (profile
    sizes)."""
    merged = OmegaConf.merge(OmegaConf.structured(TrainerConfig), settings or {})
    block = params.get(method) if params is not None else None
    if block is not None and "trainer" in block:
        merged = OmegaConf.merge(merged, block["trainer"])
    missing = sorted(OmegaConf.missing_keys(merged))
    if missing:
        raise ConfigError(f"{method}'s trainer settings have no {missing}: add them to its trainer settings "
                          f"in conf/method/{method}.yaml")
    try:
        cfg: TrainerConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except Exception as e:
        raise ConfigError(f"bad trainer settings of {method} (conf/method/{method}.yaml or params "
                          f"`{method}.trainer`): {e}") from e
    if cfg.train_for_env_steps < 1:
        raise ConfigError(f"{method}.trainer.train_for_env_steps must be >= 1, got {cfg.train_for_env_steps}")
    return cfg


def appo_settings(params: Any, method: str, trainer: TrainerConfig):
    """The params' `rl` section (the paper's APPO settings) with the trainer's `rl` overrides and budget."""
    from maestromotif.rl.train import RLConfig

    overrides = {**trainer.rl, "train_for_env_steps": int(trainer.train_for_env_steps)}
    rl = section(params, "rl", RLConfig)
    try:
        return OmegaConf.to_object(OmegaConf.merge(rl, overrides))
    except Exception as e:
        raise ConfigError(f"{method}.trainer.rl {trainer.rl}: not fields of the `rl` section ({e}); fix "
                          f"conf/method/{method}.yaml or params `{method}.trainer`") from e


def baseline_argv(params: Any, rl, run: Path, seed: int, method: str, env_kwargs: dict) -> list[str]:
    """The shared trainer's command line for a baseline: its env (`--baseline_env`), no skill settings."""
    from benchmark.appo.trainer import appo_argv

    return appo_argv(rl, run=run, seed=seed, root_seed=root(params).root_seed, env_module=ENV_MODULE,
                     env_name=ENV_NAME, env_config=env_settings(params), curve_names=[method],
                     env_args={"baseline_env": json.dumps(env_kwargs, sort_keys=True),
                               "mm_crop_mode": rl.crop_mode})


def train_appo(params: Any, out_dir: Path, seed: int, method: str, trainer: TrainerConfig,
               env_kwargs: dict, task: Optional[str] = None) -> Path:
    """Train the shared APPO network on the baseline env; the run goes to <out_dir>/policy/."""
    from benchmark.appo.trainer import train
    from benchmark.provenance import record

    kwargs = {"method": method, "task": task, "reward_scale": trainer.reward_scale,
              "reward_clip": trainer.reward_clip, **env_kwargs}
    run = Path(out_dir) / RUN_DIR
    rl = appo_settings(params, method, trainer)
    top = root(params)
    log.info("%s: APPO for %d env steps%s -> %s", method, trainer.train_for_env_steps,
             f" on task {task}" if task else "", run)
    summary = {"root_seed": top.root_seed, "profile": top.profile, "method": method, "task": task,
               "crop_mode": rl.crop_mode, "rl": asdict(rl)}
    train(run, rl, baseline_argv(params, rl, run, seed, method, kwargs), seed=seed,
          label=method if task is None else f"{method} {task}", summary=summary,
          provenance=lambda steps: record(stage="fit", profile=top.profile, root_seed=top.root_seed,
                                          seed=seed, method=method, env_steps=steps))
    write_json(Path(out_dir) / "trainer.json", {"method": method, "task": task, "seed": seed,
                                                "trainer": asdict(trainer), "env": kwargs})
    return run


# --- deployment -----------------------------------------------------------------------------------------
def load_policy(artefact: Path, deterministic: bool = False, seed: int = 0, device: str = "cpu") -> Policy:
    """The trained network of a baseline's artefact, on `device` (benchmark.evaluate.policy_device)."""
    from maestromotif.rl.policy import SkillPolicy, load_actor_critic
    from maestromotif.rl.obs import PolicyObservation

    class BaselinePolicy(SkillPolicy):
        """The trained shared network with NoSkill instead of a program over skills."""

        def wrap_env(self, env: gym.Env) -> gym.Env:
            return PolicyObservation(NoSkill(env), self.cfg.mm_crop_mode, keep_raw=True)

    run = Path(artefact) / RUN_DIR
    if not run.exists():
        raise FileNotFoundError(f"no trained policy at {run}: run `python -m benchmark.fit` for this method")
    model, cfg, ckpt = load_actor_critic(run, device=device,
                                         retrain=f"delete {artefact} and fit it again (`python -m "
                                                 "benchmark.fit` with its method, seed and task, or `dvc "
                                                 "repro`)")
    log.info("baseline policy from %s on %s", ckpt, device)
    return BaselinePolicy(model, cfg, program="none", deterministic=deterministic, seed=seed)


class TrainedBaseline(Method):
    """A baseline = a reward for the shared APPO trainer. Subclasses say which (`env_kwargs`)."""

    name = "baseline"
    per_task = True

    def __init__(self, *, trainer: dict):  # conf/method/<name>.yaml `trainer:` (every key of TrainerConfig)
        self.trainer_settings = trainer

    def trainer(self, params: Any) -> TrainerConfig:
        return trainer_config(self.name, self.trainer_settings, params)

    @abstractmethod
    def env_kwargs(self, params: Any, out_dir: Path, seed: int, task: Optional[str]) -> dict:
        """The training env's reward settings for this baseline (e.g. {"reward": "score"})."""

    def fit(self, params: Any, out_dir: Path, seed: int, task: str | None = None) -> Path:
        if self.per_task and task is None:
            raise ConfigError(f"{self.name} is fitted per task: pass --task (or let benchmark.fit loop)")
        out_dir = Path(out_dir)
        train_appo(params, out_dir, seed, self.name, self.trainer(params),
                   self.env_kwargs(params, out_dir, seed, task), task if self.per_task else None)
        return out_dir

    def policy(self, artefact: Path, task: str, params: Any) -> Policy:
        from benchmark.evaluate import policy_device

        return load_policy(Path(artefact), deterministic=self.trainer(params).deterministic,
                           device=policy_device(params))
