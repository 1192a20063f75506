"""The ci-profile regression check: recompute a set of metrics and compare them with committed references.

    python -m benchmark.regression              # check: prints a table, exits 1 when a metric fails
    python -m benchmark.regression --update     # recompute the reference (results/regression/reference.json)

What is checked (conf/regression/default.yaml, section `regression`), on the ci profile:

  exact (deterministic code paths; any change fails, by design)
    data/*       fingerprints of the collected observations, the pair sets and their captions
    oracle/*     the rule oracle's labels of every ci pair set
    tracker/*    the small variants' task trackers replaying one recorded scripted episode each
                 (the actions are stored in the reference, so a change of the scripted policy does not
                 move these numbers, only a change of the env or of a tracker does)
    options/*    the skill sequence and the skill one-hot of the options wrapper, and the network inputs
                 (maestromotif.rl.obs.PolicyObservation) along a seeded random trajectory
  float (floating point: |now - ref| <= atol + rtol |ref|)
    reward/*     a reward model per skill trained with a fixed seed on the rule oracle's labels of every
                 pair of a fixed probe set of real NetHack messages, scored on that probe set
    intrinsic/*  the paper's intrinsic reward along a recorded trajectory (ci collect, episode 0)
    stats/*      mean/SE, IQM, bootstrap CIs (fixed bootstrap seed) and P(X > Y) on fixed matrices
    options/encoder_*   the skill network's encoder (seeded init) on those network inputs
  machine (exact on the machine kind the reference was measured on)
    weights/*    the trained rows' networks (below)
  stochastic (a bound from the measured spread)
    policy/<method>/<task>   mean task value of `episodes` seeded episodes on a small variant, for every
                 method in `regression.methods` (reference methods: nothing to train) and every method in
                 `regression.trained_methods` on `regression.trained_tasks`: the check trains that method
                 itself (training seed 0, `train_for_env_steps` env steps) and plays it, so a change
                 anywhere in the training stack (env, rewards, network, APPO) can move the row.

Stochastic bound. `--update` plays `repeats` independent blocks of `episodes` episodes (block r, episode k
plays the NetHack game derive_seed(root_seed, "regression", task, r, k)); the check plays block 0, which
the reference does not include. The reference value is the mean over blocks 1..R; se_run is the measured
standard deviation of one block's mean across the R blocks, se_ref = se_run / sqrt(R). Both are floored by
the standard error of the pooled episodes with two pseudo-episodes of value 0 and 1 added (the Laplace
rule: a reference that never failed in R x N episodes still admits a rare failure). The check passes when

    |now - ref| <= z * sqrt(se_ref^2 + se_run^2),   z = Phi^-1(1 - alpha / (2 K))

with K the number of stochastic rows and alpha (`false_alarm_rate`) the family-wise false-alarm rate
(Bonferroni). Unchanged code replays block 0 exactly; the bound matters when a legitimate change
re-randomises the episodes (a new NLE build, a policy that consumes its RNG differently).

Trained rows. The check trains with rl.reproducible (sample-factory's serial, synchronous mode, one torch
thread, env seeds fixed by the env factory): the run is a function of the code and settings on one kind
of machine, whatever else runs beside it. Two rows per trained method and task:
  weights/<method>/<task>  (kind "machine") a hash of the trained network. Compared exactly when the check
                 runs on the machine kind the reference was measured on (benchmark.provenance.machine():
                 CPU model, instruction set, torch build); elsewhere reported, not compared, since another
                 CPU computes other floats and the run diverges.
  policy/<method>/<task>   (stochastic) the trained policy's mean task value. `--update` trains seeds
                 1..`train_repeats` (block r = training seed r, then block r's episodes), so the block means'
                 spread holds the training-to-training variation as well as the episodes'; the check
                 (training seed 0, block 0) is compared with the same formula. Because training no longer
                 depends on machine load, the spread measured on a quiet machine holds on a busy one.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import math
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf

from benchmark import provenance
from benchmark.config import REPO_ROOT, ConfigError, compose, root, section
from benchmark.io import read_json, write_json
from benchmark.logs import setup_logging
from benchmark.seeding import derive_seed

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SECTIONS = ("data", "oracle", "reward", "intrinsic", "stats", "tracker", "options", "policy")
ACTION_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"  # one letter per action index


@dataclass
class RegressionConfig:
    """The `regression` section of the params (conf/regression/default.yaml)."""

    reference: str = "results/regression/reference.json"   # relative to the repository root
    profile: str = "ci"                  # the profile the check composes and the reference was measured on
    methods: list[str] = field(default_factory=lambda: ["random", "scripted"])  # conf/method/<name>.yaml
    tasks: list[str] = field(default_factory=lambda: [
        "gnomish_small", "delphi_small", "transactions_small", "price_small", "buc_small",
        "goldenexit_small", "levelupsell_small"])
    episodes: int = 16                   # per method x task in one check run (one block)
    # Trained rows: methods the check trains itself (per-task methods fit each of trained_tasks).
    trained_methods: list[str] = field(default_factory=list)
    trained_tasks: list[str] = field(default_factory=list)
    train_for_env_steps: int = 200_000   # the trained methods' budget here (overrides <method>.trainer)
    train_repeats: int = 4               # --update: independent training runs (seeds 1..R) that measure the spread
    trained_episodes: int = 32           # per trained row and block (a trained score is noisier than a script's)
    trained_max_episode_steps: int = 1000  # episode cap of the trained rows' evaluation
    trained_num_envs: int = 8            # envs stepped together when playing a trained policy
    # Train the trained rows reproducibly (rl.reproducible: serial, synchronous, one torch thread): the same
    # machine gives the same weights under any load, so the weights/* rows compare exactly there.
    trained_reproducible: bool = True
    max_episode_steps: int = 300         # episode cap of the policy runs and of the tracker replays
    repeats: int = 40                    # --update: independent blocks that measure the spread
    false_alarm_rate: float = 0.01       # family-wise, over all stochastic rows
    rtol: float = 1.0e-4                 # float rows: |now - ref| <= atol + rtol * |ref|
    atol: float = 1.0e-5
    bootstrap_reps: int = 200            # stats rows
    options_program: str = "training"    # reference program whose layers drive the options wrapper
    options_max_depth: int = 2           # its settings: a short Discoverer, so skills switch often
    options_discoverer_steps: int = 20
    options_steps: int = 300             # length of the seeded random trajectory
    probe_messages: list[str] = field(default_factory=list)  # real NetHack messages (depth change 0)


class RegressionError(RuntimeError):
    """The reference is missing or from another profile/format; the message says how to fix it."""


# ----- results ----------------------------------------------------------------------------------------
@dataclass
class Metric:
    """One measured number (or fingerprint) and how to compare it with its reference."""

    name: str
    kind: str                      # exact | float | stochastic
    value: Any                     # str/int (exact), float or list of floats (float), float (stochastic)
    extra: dict = field(default_factory=dict)  # stochastic: episode values and seeds of this run

    def reference_entry(self) -> dict:
        entry = {"kind": self.kind, "value": self.value}
        if self.kind == "machine":
            entry["machine"] = self.extra["machine"]
        return entry


@dataclass
class Row:
    metric: str
    kind: str
    reference: str
    now: str
    bound: str
    passed: bool


def sha(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:16]


def _array_sha(*arrays: np.ndarray) -> str:
    return sha(*(np.ascontiguousarray(a).tobytes() + str(a.dtype).encode() + str(a.shape).encode()
                 for a in arrays))


def _frame_sha(df) -> str:
    import pandas as pd

    return sha(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes(), ",".join(df.columns))


def run_length(seq: Sequence[int]) -> str:
    """'0x20,1x5,...': a short exact record of a long sequence of small integers."""
    out, prev, n = [], None, 0
    for s in seq:
        if s == prev:
            n += 1
            continue
        if prev is not None:
            out.append(f"{prev}x{n}")
        prev, n = s, 1
    if prev is not None:
        out.append(f"{prev}x{n}")
    return ",".join(out)


# ----- inputs shared by the sections --------------------------------------------------------------------
class Inputs:
    """The ci params and the real ci data (collect + pairs), computed once and shared by the sections."""

    def __init__(self, params: DictConfig, cfg: RegressionConfig, obs_dir: Path | None = None,
                 pairs_dir: Path | None = None):
        self.params, self.cfg = params, cfg
        self.top = root(params)
        self._obs_dir, self._pairs_dir = obs_dir, pairs_dir
        self._cache: dict[str, Any] = {}

    @property
    def obs_dir(self) -> Path:
        if self._obs_dir is None:
            from maestromotif.data.collect import collect

            log.info("regression: collecting the ci observations (real NLE)")
            self._obs_dir = collect(self.params)
        return self._obs_dir

    @property
    def pairs_dir(self) -> Path:
        if self._pairs_dir is None:
            from maestromotif.data.pairs import make_pairs

            self.obs_dir  # noqa: B018  (collect first)
            self._pairs_dir = make_pairs(self.params)
        return self._pairs_dir

    def cached(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def observations(self):
        from maestromotif.data.collect import load_observations

        return self.cached("obs", lambda: load_observations(self.obs_dir)
                           .sort_values(["episode_id", "step"], kind="stable").reset_index(drop=True))

    def pair_sets(self) -> dict:
        from maestromotif.data.pairs import load_pairs

        def load():
            meta = read_json(self.pairs_dir / "meta.json")
            return {name: load_pairs(self.pairs_dir / info["file"])
                    for name, info in sorted(meta["sets"].items())}
        return self.cached("pairs", load)

    def env_config(self):
        from benchmark.env import EnvConfig

        env_cfg = OmegaConf.to_object(section(self.params, "env", EnvConfig))
        env_cfg.max_episode_steps = self.cfg.max_episode_steps
        return env_cfg

    def seed(self, *names: object) -> int:
        return derive_seed(self.top.root_seed, "regression", *names)


# ----- deterministic sections -----------------------------------------------------------------------------
def check_data(inp: Inputs) -> list[Metric]:
    """Fingerprints of the collected observations, of every pair set and of the captions the annotator
    reads."""
    from maestromotif.data.captions import caption, motif_caption
    from maestromotif.data.pairs import MOTIF_SET

    obs = inp.observations()
    out = [Metric("data/observations/rows", "exact", int(len(obs))),
           Metric("data/observations/sha", "exact", _frame_sha(obs))]
    for name, pairs in inp.pair_sets().items():
        out.append(Metric(f"data/pairs/{name}/sha", "exact", _frame_sha(pairs)))
        rows = pairs.to_dict("records")
        text = motif_caption if name == MOTIF_SET else caption
        out.append(Metric(f"data/captions/{name}/sha", "exact",
                          sha(*(text(r, s) for r in rows for s in ("_1", "_2")))))
    return out


def oracle_labels(inp: Inputs) -> dict[str, np.ndarray]:
    from maestromotif.data.pairs import MOTIF_SET
    from maestromotif.oracle import oracle_label

    def compute():
        return {name: np.array([oracle_label(name, r)[0] for r in pairs.to_dict("records")], dtype=np.int64)
                for name, pairs in inp.pair_sets().items() if name != MOTIF_SET}
    return inp.cached("oracle", compute)


def check_oracle(inp: Inputs) -> list[Metric]:
    return [Metric(f"oracle/{skill}/labels", "exact", "".join(map(str, labels)))
            for skill, labels in oracle_labels(inp).items()]


def probe_keys(cfg: RegressionConfig) -> list[tuple[str, int]]:
    """The probe set: (message, depth-change sign) keys; every message at change 0, plus three depth
    changes."""
    if not cfg.probe_messages:
        raise ConfigError("regression.probe_messages is empty; list real NetHack messages in "
                          "conf/regression/default.yaml")
    return [(m, 0) for m in cfg.probe_messages] + [("", -1), ("", 1), ("You kill the newt!", 1)]


def probe_pairs(keys: Sequence[tuple[str, int]], skill: str):
    """Every pair of probe keys, labelled by the rule oracle for `skill` (the reward models' training set)."""
    import pandas as pd

    from maestromotif.oracle import oracle_label

    def side(key: tuple[str, int], k: int) -> dict:
        message, change = key  # depth 2 before, so that both directions exist; gold and XP unchanged
        return {f"message_{k}": message, f"dlvl_prev_{k}": 2, f"dlvl_{k}": 2 + change, f"gold_prev_{k}": 0,
                f"gold_{k}": 0, f"xp_prev_{k}": 1, f"xp_{k}": 1, f"dlvl_change_{k}": change}

    rows = []
    for i in range(len(keys)):
        for j in range(i + 1, len(keys)):
            row = {**side(keys[i], 1), **side(keys[j], 2)}
            row["label"] = oracle_label(skill, row)[0]
            rows.append(row)
    return pd.DataFrame(rows)


def reward_checkpoints(inp: Inputs) -> dict:
    """One reward model per skill, trained (ci reward settings, fixed seed) on the oracle labels of the pairs
    of probe messages. (The ci pairs of random play are nearly all ties: a model trained on them is flat.)"""
    import torch

    from maestromotif.reward.train import RewardConfig, train_reward_model

    def compute():
        cfg: RewardConfig = OmegaConf.to_object(section(inp.params, "reward", RewardConfig))
        cfg.device = "cpu"
        if cfg.torch_threads > 0:
            torch.set_num_threads(cfg.torch_threads)
        keys = probe_keys(inp.cfg)
        return {skill: train_reward_model(probe_pairs(keys, skill), skill, cfg, inp.seed("reward", skill))
                for skill in inp.top.skills}
    return inp.cached("reward", compute)


def check_reward(inp: Inputs) -> list[Metric]:
    from maestromotif.reward.model import score

    keys = probe_keys(inp.cfg)
    out = []
    for skill, (ckpt, metrics) in reward_checkpoints(inp).items():
        raw = score(ckpt.model, [m for m, _ in keys], [d for _, d in keys]).astype(np.float64)
        normalised = (raw - ckpt.reward_mean) / ckpt.reward_std
        pairs = probe_pairs(keys, skill)
        index = {k: i for i, k in enumerate(keys)}
        r1 = normalised[[index[(m, d)] for m, d in zip(pairs.message_1, pairs.dlvl_change_1)]]
        r2 = normalised[[index[(m, d)] for m, d in zip(pairs.message_2, pairs.dlvl_change_2)]]
        strict = pairs.label.to_numpy() != 2
        agree = np.where(r1 > r2, 0, 1)[strict] == pairs.label.to_numpy()[strict]
        out += [Metric(f"reward/{skill}/probe", "float", [round(float(x), 8) for x in normalised]),
                Metric(f"reward/{skill}/mean", "float", float(ckpt.reward_mean)),
                Metric(f"reward/{skill}/var", "float", float(ckpt.reward_var)),
                Metric(f"reward/{skill}/train_loss", "float", float(metrics["history"][-1]["train_loss"])),
                Metric(f"reward/{skill}/oracle_agreement", "exact",
                       f"{int(agree.sum())}/{int(strict.sum())}")]
    return out


def check_intrinsic(inp: Inputs) -> list[Metric]:
    """The intrinsic reward of each skill's model along the recorded ci episode 0."""
    from maestromotif.reward.intrinsic import EpisodeState, IntrinsicReward, intrinsic_config

    ckpts = reward_checkpoints(inp)
    reward = IntrinsicReward([ckpts[s][0] for s in inp.top.skills], intrinsic_config(inp.params))
    obs = inp.observations()
    episode = obs[obs["episode_id"] == obs["episode_id"].min()]
    messages, depths = episode["message"].tolist(), episode["dlvl"].astype(int).tolist()
    weights = np.arange(1, len(messages)) / len(messages)  # a weighted sum also notices reordering
    out = []
    for index, skill in enumerate(inp.top.skills):
        state = EpisodeState(reward)
        state.reset(messages[0], depths[0])
        steps = [state.step(index, m, d, 0.0, False) for m, d in zip(messages[1:], depths[1:])]
        r_int = np.array([s.intrinsic for s in steps])
        out += [Metric(f"intrinsic/{skill}/sum", "float", float(r_int.sum())),
                Metric(f"intrinsic/{skill}/weighted_sum", "float", float((weights * r_int).sum())),
                Metric(f"intrinsic/{skill}/total_sum", "float", float(sum(s.total for s in steps))),
                Metric(f"intrinsic/{skill}/normalised_sum", "float", float(sum(s.normalised for s in steps))),
                Metric(f"intrinsic/{skill}/rewarded_steps", "exact", int((r_int != 0).sum()))]
    return out


def stats_matrices() -> tuple[np.ndarray, np.ndarray]:
    """Two fixed (runs=6, tasks=4) score matrices, written out by formula (no RNG to drift)."""
    a = np.array([[((7 * i + 3 * j) % 11) / 10 for j in range(4)] for i in range(6)])
    b = np.array([[((5 * i + 4 * j + 2) % 13) / 12 for j in range(4)] for i in range(6)])
    return a, b


def check_stats(inp: Inputs) -> list[Metric]:
    from benchmark import stats

    a, b = stats_matrices()
    reps = inp.cfg.bootstrap_reps
    seed = inp.seed("stats")
    mean, se = stats.mean_stderr(a[:, 0])
    ci = stats.interval_estimates({"a": a, "b": b}, "iqm", reps=reps, seed=seed)
    ci_mean = stats.interval_estimates({"a": a}, "mean", reps=reps, seed=seed)
    return [
        Metric("stats/mean_stderr", "float", [mean, se]),
        Metric("stats/iqm", "float", [stats.iqm(a), stats.iqm(b)]),
        Metric("stats/aggregate_mean", "float", [stats.aggregate_mean(a), stats.aggregate_mean(b)]),
        Metric("stats/iqm_ci", "float", [*ci["a"], *ci["b"]]),
        Metric("stats/mean_ci", "float", list(ci_mean["a"])),
        Metric("stats/probability_of_improvement", "float",
               list(stats.probability_of_improvement_ci(a, b, reps=reps, seed=seed))),
    ]


# ----- task trackers on recorded scripted episodes -------------------------------------------------------
def encode_actions(actions: Sequence[int]) -> str:
    return "".join(ACTION_ALPHABET[int(a)] for a in actions)


def decode_actions(text: str) -> list[int]:
    return [ACTION_ALPHABET.index(c) for c in text]


def record_scripted_episode(inp: Inputs, task: str) -> dict:
    """Play the scripted reference once on `task` and keep its actions (for --update)."""
    from benchmark.calibrate import ScriptedPolicy
    from benchmark.env import make

    seed = inp.seed("tracker", task)
    policy = ScriptedPolicy(task)
    state = policy.seed_episodes(policy.initial_state(1), [0], [seed])
    env = make(task=task, cfg=inp.env_config())
    actions = []
    try:
        obs, _ = env.reset(seed=seed)
        start = np.array([True])
        while True:
            batch = {k: np.asarray(v)[None] for k, v in obs.items()}
            action, state = policy.act(batch, state, start)
            start = np.array([False])
            actions.append(int(action[0]))
            obs, _, terminated, truncated, _ = env.step(int(action[0]))
            if terminated or truncated:
                break
    finally:
        env.close()
    return {"seed": seed, "actions": encode_actions(actions)}


def replay_tracker(inp: Inputs, task: str, seed: int, actions: Sequence[int]) -> dict:
    """Replay `actions` in the game of `seed`; return the tracker's trace: when its value changed."""
    from benchmark.env import make

    env = make(task=task, cfg=inp.env_config())
    changes, value, steps, ended = [], 0.0, 0, False
    try:
        env.reset(seed=seed)
        for steps, action in enumerate(actions, start=1):
            _, _, terminated, truncated, info = env.step(int(action))
            if info["task"]["value"] != value:
                value = float(info["task"]["value"])
                changes.append(f"{steps}:{value:g}")
            if terminated or truncated:
                ended = True
                break
    finally:
        env.close()
    return {"value": value, "steps": steps, "trace": ",".join(changes), "ended": ended}


def check_tracker(inp: Inputs, recorded: dict[str, dict]) -> list[Metric]:
    out = []
    for task in inp.cfg.tasks:
        if task not in recorded:
            raise RegressionError(f"the reference has no recorded scripted episode for {task!r}; "
                                  "run `python -m benchmark.regression --update`")
        rec = recorded[task]
        trace = replay_tracker(inp, task, rec["seed"], decode_actions(rec["actions"]))
        out += [Metric(f"tracker/{task}/value", "exact", trace["value"]),
                Metric(f"tracker/{task}/trace", "exact", f"{trace['trace']}|end@{trace['steps']}"
                                                         f"{'' if trace['ended'] else '(not ended)'}")]
    return out


# ----- options wrapper and network inputs ----------------------------------------------------------------
def options_trajectory(inp: Inputs) -> dict[str, np.ndarray]:
    """A seeded random trajectory through OptionsWrapper + PolicyObservation ("embed" crops)."""
    from benchmark.env import ACTIONS, make
    from maestromotif.options.program import Program, Settings, compose, reference_layers
    from maestromotif.options.wrapper import OptionsWrapper
    from maestromotif.rl.obs import PolicyObservation

    cfg = inp.cfg
    settings = Settings((cfg.options_max_depth, cfg.options_max_depth), cfg.options_discoverer_steps)
    source = compose(cfg.options_program, reference_layers(cfg.options_program), settings, "regression")
    program = Program(cfg.options_program, source, "regression", trusted=True)
    env = PolicyObservation(OptionsWrapper(make(cfg=inp.env_config()), program, runner="inprocess",
                                           seed=inp.seed("options", "program"), on_error="raise"),
                            crop_mode="embed")
    rng = np.random.default_rng(inp.seed("options", "actions"))
    frames: dict[str, list] = {k: [] for k in ("stats", "crop_chars", "crop_colors", "message")}
    skills, switches, episode = [], 0, 0
    try:
        obs, _ = env.reset(seed=inp.seed("options", "episode", episode))
        for _ in range(cfg.options_steps):
            obs, _, terminated, truncated, info = env.step(int(rng.integers(len(ACTIONS))))
            for k in frames:
                frames[k].append(np.array(obs[k]))
            skills.append(int(info["next_skill"]))
            switches += bool(info["skill_switched"])
            if terminated or truncated:
                episode += 1
                obs, _ = env.reset(seed=inp.seed("options", "episode", episode))
    finally:
        env.close()
    out = {k: np.stack(v) for k, v in frames.items()}
    out.update(skills=np.array(skills), switches=np.array(switches), episodes=np.array(episode + 1))
    return out


def check_options(inp: Inputs) -> list[Metric]:
    import torch

    from maestromotif.rl.network import SkillEncoder
    from maestromotif.rl.obs import NUM_SKILLS, observation_space

    t = options_trajectory(inp)
    onehot = t["stats"][:, -NUM_SKILLS:]
    valid = int((onehot == np.eye(NUM_SKILLS, dtype=np.float32)[t["skills"]]).all(axis=1).sum())
    torch.manual_seed(inp.seed("options", "encoder"))
    encoder = SkillEncoder(None, observation_space("embed")).eval()
    with torch.inference_mode():
        keys = ("stats", "crop_chars", "crop_colors", "message")
        features = encoder({k: torch.from_numpy(t[k]) for k in keys})
    features = features.double().numpy()
    weights = np.arange(1, len(features) + 1)[:, None] / len(features)
    return [
        Metric("options/skills", "exact", run_length(t["skills"].tolist())),
        Metric("options/switches", "exact", int(t["switches"])),
        Metric("options/onehot_valid_steps", "exact", valid),
        Metric("options/onehot_sha", "exact", _array_sha(onehot)),
        Metric("options/network_input_sha", "exact",
               _array_sha(t["stats"], t["crop_chars"], t["crop_colors"], t["message"])),
        Metric("options/encoder_sum", "float", float(features.sum())),
        Metric("options/encoder_weighted_sum", "float", float((weights * features).sum())),
    ]


# ----- seeded policy runs on the small variants ---------------------------------------------------------
def episode_seed(root_seed: int, task: str, block: int, episode: int) -> int:
    """The NetHack game of episode `episode` of block `block` (block 0: the check's; 1..R: the
    reference's)."""
    return derive_seed(root_seed, "regression", task, block, episode)


def method_params(inp: Inputs, method_name: str) -> DictConfig:
    """The params a row's method is fitted and played with: a trained method gets the trained rows' budget on
    the trained tasks and, with `trained_reproducible`, reproducible training."""
    from benchmark.calibrate import variant_fit_params

    if method_name not in inp.cfg.trained_methods:
        return inp.params
    params = variant_fit_params(inp.params, method_name, inp.cfg.trained_tasks, inp.cfg.train_for_env_steps)
    if inp.cfg.trained_reproducible:
        params = OmegaConf.merge(params, {method_name: {"trainer": {"rl": {"reproducible": True}}}})
    return params


def fitted(inp: Inputs, method_name: str, task: str, train_seed: int = 0) -> Path | None:
    """The row's fit() artefact (training seed `train_seed`), fitted first when missing: instant for the
    reference methods, the trained rows' budget for trained ones. A method whose fit needs upstream stages
    (MaestroMotif: reward models, programs) should be given a ci data dir that has them."""
    from benchmark.calibrate import fit_if_missing

    try:
        return fit_if_missing(method_name, task, train_seed, method_params(inp, method_name))
    except Exception as e:
        raise RegressionError(
            f"{method_name} has no ci-profile fit() artefact for {task} and fitting it failed ({e}); "
            "run its pipeline on the ci profile and pass that data dir with --data-dir, or remove it "
            "from regression.methods / regression.trained_methods") from e


def play_block(inp: Inputs, method_name: str, task: str, block: int, progress: bool = False,
               train_seed: int = 0) -> dict:
    """`episodes` seeded episodes of `method_name` on `task`: their values and seeds. A trained method plays
    its training run `train_seed` (fitted here when missing)."""
    from benchmark.evaluate import _seed_process, build_method, play
    from benchmark.env import make

    trained = method_name in inp.cfg.trained_methods
    method = build_method(method_name)
    params = method_params(inp, method_name)
    artefact = fitted(inp, method_name, task, train_seed)
    episodes = inp.cfg.trained_episodes if trained else inp.cfg.episodes
    seeds = [episode_seed(inp.top.root_seed, task, block, k) for k in range(episodes)]
    policy = method.policy(artefact, task, params)
    _seed_process(inp.seed("policy", method_name, task, block))
    records: list[dict] = []
    env_cfg = inp.env_config()
    num_envs = 1
    if trained:
        env_cfg.max_episode_steps, num_envs = inp.cfg.trained_max_episode_steps, inp.cfg.trained_num_envs
    play(policy, lambda: make(task=task, cfg=env_cfg), list(enumerate(seeds)), num_envs, records.append, progress)
    records.sort(key=lambda r: r["episode"])
    return {"seeds": seeds, "values": [float(r["value"]) for r in records],
            "steps": [int(r["steps"]) for r in records], "train_seed": train_seed,
            "weights": weights_fingerprint(artefact) if trained else None}


def weights_fingerprint(artefact: Path | None) -> str | None:
    """Hash of the trained network in a fit() artefact: the newest sample-factory checkpoint's model tensors
    (names, dtypes, shapes, bytes); None when the artefact holds no sample-factory checkpoint."""
    ckpts = sorted(Path(artefact).rglob("checkpoint_p0/checkpoint_*.pth")) if artefact is not None else []
    if not ckpts:
        return None
    import torch

    state = torch.load(ckpts[-1], map_location="cpu", weights_only=False)["model"]
    return sha(*(f"{k}|{v.dtype}|{tuple(v.shape)}".encode() + v.contiguous().numpy().tobytes()
                 for k, v in sorted(state.items())))


def policy_rows(cfg: RegressionConfig) -> list[tuple[str, str]]:
    """(method, task) of every stochastic row: reference methods x tasks, then trained methods x trained tasks."""
    return ([(m, t) for m in cfg.methods for t in cfg.tasks]
            + [(m, t) for m in cfg.trained_methods for t in cfg.trained_tasks])


def trained_metric_names(cfg: RegressionConfig | dict) -> set[str]:
    """Names of the trained rows' metrics (`cfg`: the config, or the reference's recorded config dict)."""
    get = cfg.get if isinstance(cfg, dict) else lambda key: getattr(cfg, key)
    return {f"policy/{m}/{t}" for m in get("trained_methods") for t in get("trained_tasks")}


def check_policy(inp: Inputs, block: int = 0, progress: bool = False, trained: bool = True,
                 reference: bool = True) -> list[Metric]:
    """Block `block` of the rows asked for: the reference methods' (`reference`) and the trained methods'
    (`trained`; training seed `block`)."""
    out = []
    for method_name, task in policy_rows(inp.cfg):
        is_trained = method_name in inp.cfg.trained_methods
        if not (trained if is_trained else reference):
            continue
        t0 = time.perf_counter()
        run = play_block(inp, method_name, task, block, progress, train_seed=block if is_trained else 0)
        log.info("policy %s on %s, block %d: mean %.3f over %d episodes (%.1f s)", method_name, task,
                 block, np.mean(run["values"]), len(run["values"]), time.perf_counter() - t0)
        mean = float(np.mean(run["values"]))
        out.append(Metric(f"policy/{method_name}/{task}", "stochastic", mean, run))
        if run["weights"] is not None and block == 0:
            out.append(Metric(f"weights/{method_name}/{task}", "machine", run["weights"],
                              {"machine": provenance.machine()}))
    return out


# ----- running and comparing -------------------------------------------------------------------------------
def run(inp: Inputs, reference: dict | None, sections: Sequence[str] = SECTIONS) -> list[Metric]:
    """Measure the metrics of `sections` (the tracker replay needs the reference's recorded actions)."""
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise ConfigError(f"unknown regression section(s) {sorted(unknown)}; choose from {SECTIONS}")
    fns: dict[str, Callable[[], list[Metric]]] = {
        "data": lambda: check_data(inp), "oracle": lambda: check_oracle(inp),
        "reward": lambda: check_reward(inp), "intrinsic": lambda: check_intrinsic(inp),
        "stats": lambda: check_stats(inp),
        "tracker": lambda: check_tracker(inp, (reference or {}).get("tracker_episodes", {})),
        "options": lambda: check_options(inp), "policy": lambda: check_policy(inp),
    }
    metrics = []
    for name in SECTIONS:
        if name in sections:
            t0 = time.perf_counter()
            metrics += fns[name]()
            log.info("regression section %s: %.1f s", name, time.perf_counter() - t0)
    return metrics


def z_value(cfg: RegressionConfig) -> float:
    """Two-sided z for a family-wise false-alarm rate over all stochastic rows (Bonferroni)."""
    k = max(len(policy_rows(cfg)), 1)
    return NormalDist().inv_cdf(1 - cfg.false_alarm_rate / (2 * k))


def stochastic_bound(entry: dict, z: float) -> float:
    return z * math.hypot(entry["se_ref"], entry["se_run"])


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.6g}"
    if isinstance(x, list):
        return f"[{len(x)} values]"
    text = str(x)
    return text if len(text) <= 28 else text[:25] + "..."


def compare(metrics: Sequence[Metric], reference: dict, cfg: RegressionConfig,
            require_all: bool = False) -> list[Row]:
    """One row per metric: reference, now, bound, pass. With `require_all`, a reference metric that was not
    measured is a failure too (a full check must cover everything the reference holds)."""
    ref_metrics = reference["metrics"]
    z = z_value(cfg)
    rows = []
    for m in metrics:
        entry = ref_metrics.get(m.name)
        if entry is None:
            rows.append(Row(m.name, m.kind, "(none)", _fmt(m.value), "-", False))
            continue
        ref = entry["value"]
        if m.kind != entry["kind"]:
            rows.append(Row(m.name, m.kind, f"kind {entry['kind']}", _fmt(m.value), "-", False))
        elif m.kind == "exact":
            rows.append(Row(m.name, m.kind, _fmt(ref), _fmt(m.value), "exact", m.value == ref))
        elif m.kind == "machine":
            if entry.get("machine") == m.extra["machine"]:
                rows.append(Row(m.name, m.kind, _fmt(ref), _fmt(m.value), "exact (same machine)", m.value == ref))
            else:  # another CPU or torch build computes other floats: only the stochastic row applies
                rows.append(Row(m.name, m.kind, _fmt(ref), _fmt(m.value), "other machine: not compared", True))
        elif m.kind == "float":
            now_v, ref_v = np.atleast_1d(np.asarray(m.value, float)), np.atleast_1d(np.asarray(ref, float))
            if now_v.shape != ref_v.shape:
                rows.append(Row(m.name, m.kind, f"{ref_v.size} values", f"{now_v.size} values", "-", False))
                continue
            diff = np.abs(now_v - ref_v)
            ok = bool(np.all(diff <= cfg.atol + cfg.rtol * np.abs(ref_v)))
            bound = f"atol {cfg.atol:g} + rtol {cfg.rtol:g}|ref|"
            now_text = _fmt(m.value) if now_v.size == 1 else f"max|diff| {diff.max():.2g}"
            rows.append(Row(m.name, m.kind, _fmt(ref), now_text, bound, ok))
        else:
            bound = stochastic_bound(entry, z)
            rows.append(Row(m.name, m.kind, _fmt(ref), _fmt(m.value), f"±{bound:.3f}",
                            abs(m.value - ref) <= bound))
    if require_all:
        seen = {m.name for m in metrics}
        for name, entry in ref_metrics.items():
            if name not in seen:
                rows.append(Row(name, entry["kind"], _fmt(entry["value"]), "(not measured)", "-", False))
    return rows


def format_table(rows: Sequence[Row]) -> str:
    header = ("metric", "kind", "reference", "now", "bound", "result")
    cells = [header] + [(r.metric, r.kind, r.reference, r.now, r.bound, "pass" if r.passed else "FAIL")
                        for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(header))) for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    failed = sum(not r.passed for r in rows)
    lines.append(f"{len(rows) - failed} passed, {failed} failed")
    return "\n".join(lines)


# ----- the reference ---------------------------------------------------------------------------------------
def reference_path(cfg: RegressionConfig) -> Path:
    path = Path(cfg.reference)
    return path if path.is_absolute() else REPO_ROOT / path


def load_reference(path: Path, cfg: RegressionConfig) -> dict:
    if not path.exists():
        raise RegressionError(f"no regression reference at {path}: create it with "
                              "`python -m benchmark.regression --update`")
    ref = read_json(path)
    if ref.get("format_version") != FORMAT_VERSION:
        raise RegressionError(f"{path} has format {ref.get('format_version')}, this code reads "
                              f"{FORMAT_VERSION}; "
                              "rerun `python -m benchmark.regression --update`")
    if ref.get("measured", {}).get("profile") != cfg.profile:
        raise RegressionError(f"{path} was measured on profile {ref.get('measured', {}).get('profile')!r}, "
                              f"the check runs {cfg.profile!r}; rerun with --update")
    return ref


def spread(block_values: Sequence[Sequence[float]], episodes: int) -> dict:
    """Reference value and standard errors from R independent blocks of `episodes` episodes each."""
    blocks = np.array([np.mean(v) for v in block_values])
    pooled = np.concatenate([np.asarray(v, float) for v in block_values] + [np.array([0.0, 1.0])])
    r = len(blocks)
    floor_sd = float(pooled.std(ddof=1))  # per-episode sd, with the two Laplace pseudo-episodes
    block_sd = float(blocks.std(ddof=1)) if r > 1 else 0.0
    se_run = max(block_sd, floor_sd / math.sqrt(episodes))
    se_ref = max(block_sd / math.sqrt(r), floor_sd / math.sqrt(r * episodes))
    return {"value": float(blocks.mean()), "se_run": se_run, "se_ref": se_ref, "block_sd": block_sd,
            "block_means": [float(b) for b in blocks]}


def update(inp: Inputs, path: Path, progress: bool = True) -> dict:
    """Recompute every metric, measure the stochastic spread over `repeats` blocks, write the reference."""
    from tqdm import tqdm

    cfg = inp.cfg
    t0 = time.perf_counter()
    tracker_episodes = {task: record_scripted_episode(inp, task) for task in cfg.tasks}
    seed_ref = {"tracker_episodes": tracker_episodes}
    metrics = run(inp, seed_ref, [s for s in SECTIONS if s != "policy"])
    entries = {m.name: m.reference_entry() for m in metrics}
    check_block = {}
    for m in check_policy(inp, block=0):
        if m.kind == "stochastic":
            check_block[m.name] = m
        else:  # the trained rows' weights: exact on this machine
            entries[m.name] = m.reference_entry()
    blocks: dict[str, list[list[float]]] = {name: [] for name in check_block}
    for block in tqdm(range(1, max(cfg.repeats, cfg.train_repeats) + 1), desc="reference blocks",
                      disable=not progress):
        for m in check_policy(inp, block=block, trained=block <= cfg.train_repeats, reference=block <= cfg.repeats):
            blocks[m.name].append(m.extra["values"])
    z = z_value(cfg)
    trained_names = trained_metric_names(cfg)
    for name, block_values in blocks.items():
        episodes = cfg.trained_episodes if name in trained_names else cfg.episodes
        entry = {"kind": "stochastic", **spread(block_values, episodes),
                 "check_block": {"value": check_block[name].value, "seeds": check_block[name].extra["seeds"],
                                 "values": check_block[name].extra["values"]}}
        entries[name] = entry
        if abs(check_block[name].value - entry["value"]) > stochastic_bound(entry, z):
            log.warning("%s: the check's own block (%.3f) is outside the new bound %.3f ± %.3f: the "
                        "committed reference would fail `make test`; look at the policy before committing",
                        name, check_block[name].value, entry["value"], stochastic_bound(entry, z))
    seconds = time.perf_counter() - t0
    prov = provenance.record(
        stage="regression", profile=inp.top.profile, root_seed=inp.top.root_seed,
        command="python -m benchmark.regression --update", seconds=round(seconds, 1),
        config=OmegaConf.to_container(OmegaConf.structured(cfg)),
        stochastic={"blocks": cfg.repeats, "episodes_per_block": cfg.episodes,
                    "episode_seeds": "derive_seed(root_seed, 'regression', task, block, episode); "
                                     "block 0 = the check, blocks 1..repeats = the reference",
                    "bound": "|now - ref| <= z * sqrt(se_ref^2 + se_run^2)",
                    "se_run": "max(sd of the block means, "
                              "sd of the pooled episodes + {0, 1} / sqrt(episodes))",
                    "se_ref": "max(sd of the block means / sqrt(R), pooled sd / sqrt(R * episodes))",
                    "z": z, "false_alarm_rate": cfg.false_alarm_rate,
                    "comparisons": len(policy_rows(cfg)),
                    "trained_rows": "block r = training seed r (train_for_env_steps env steps), then block r's "
                                    "episodes; the reference trains seeds 1..train_repeats"},
    )
    reference = {"format_version": FORMAT_VERSION, "measured": prov, "metrics": entries,
                 "tracker_episodes": tracker_episodes}
    write_json(path, reference)
    log.info("wrote %s: %d metrics in %.0f s", path, len(entries), seconds)
    return reference


# ----- entry points --------------------------------------------------------------------------------------
@contextmanager
def ci_inputs(data_dir: str | Path | None = None, overrides: Sequence[str] = ()) -> Iterator[Inputs]:
    """The ci params (conf/ composed for regression.profile) with data under `data_dir` (default: a temp dir,
    deleted afterwards). An existing ci collect/pairs output there is reused."""
    with tempfile.TemporaryDirectory(prefix="mm-regression-") as tmp:
        base = Path(data_dir) if data_dir else Path(tmp) / "data"
        params = compose("ci", [f"data_dir={base}", *overrides])
        cfg: RegressionConfig = OmegaConf.to_object(section(params, "regression", RegressionConfig))
        if cfg.profile != "ci":  # the reference was measured on another profile: compose that one
            params = compose(cfg.profile, [f"data_dir={base}", *overrides])
            cfg = OmegaConf.to_object(section(params, "regression", RegressionConfig))
        yield Inputs(params, cfg)


def check(inp: Inputs, sections: Sequence[str] = SECTIONS, reference: dict | None = None) -> list[Row]:
    """Run `sections` and compare them with the reference (a full run also fails on metrics it lacks)."""
    reference = reference or load_reference(reference_path(inp.cfg), inp.cfg)
    metrics = run(inp, reference, sections)
    return compare(metrics, reference, inp.cfg, require_all=set(sections) == set(SECTIONS))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--update", action="store_true", help="recompute and rewrite the reference")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="check only these sections")
    parser.add_argument("--data-dir", default=None,
                        help="where the ci collect/pairs outputs go (default: a temporary folder)")
    parser.add_argument("--reference", default=None, help="reference file (default: regression.reference)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. regression.episodes=16")
    args = parser.parse_args(argv)
    setup_logging()
    t0 = time.perf_counter()
    with ci_inputs(args.data_dir, args.overrides) as inp:
        path = Path(args.reference) if args.reference else reference_path(inp.cfg)
        if args.update:
            update(inp, path)
            return 0
        rows = check(inp, args.sections, load_reference(path, inp.cfg))
    print(format_table(rows))  # the CLI's output: the table
    log.info("regression check: %.0f s", time.perf_counter() - t0)
    return 0 if all(r.passed for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
