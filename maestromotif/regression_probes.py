"""MaestroMotif's regression probes (benchmark.probes.Probe), named by `_target_` in
conf/regression/default.yaml `probes`: the data it collects and pairs, its rule oracle, its reward models and
intrinsic reward, its options wrapper and network inputs. How rows are compared: benchmark.regression.

The probes share one ci collect + pairs run (made on first use, or handed in by the caller through
benchmark.probes.Inputs `given`: keys "obs_dir" and "pairs_dir") and one set of reward models.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from omegaconf import OmegaConf

from benchmark.config import ConfigError, section
from benchmark.io import read_json
from benchmark.probes import Inputs, Metric, Probe, run_length
from benchmark.provenance import array_digest, digest, frame_digest, machine


# ----- the ci data, shared by the probes ------------------------------------------------------------------
def obs_dir(inp: Inputs) -> Path:
    def compute():
        from maestromotif.data.collect import collect

        return collect(inp.params)  # real NLE, the ci profile's collect settings
    return inp.cached("obs_dir", compute)


def pairs_dir(inp: Inputs) -> Path:
    def compute():
        from maestromotif.data.pairs import make_pairs

        obs_dir(inp)  # collect first
        return make_pairs(inp.params)
    return inp.cached("pairs_dir", compute)


def observations(inp: Inputs):
    from maestromotif.data.collect import load_observations

    return inp.cached("obs", lambda: load_observations(obs_dir(inp))
                      .sort_values(["episode_id", "step"], kind="stable").reset_index(drop=True))


def pair_sets(inp: Inputs) -> dict:
    from maestromotif.data.pairs import load_pairs

    def load():
        meta = read_json(pairs_dir(inp) / "meta.json")
        return {name: load_pairs(pairs_dir(inp) / info["file"])
                for name, info in sorted(meta["sets"].items())}
    return inp.cached("pairs", load)


# ----- data and oracle ------------------------------------------------------------------------------------
class DataProbe(Probe):
    """data/*: fingerprints of the collected observations, of every pair set and of the captions the
    annotator reads."""

    def measure(self, inp: Inputs, reference: Mapping[str, Any]) -> list[Metric]:
        from maestromotif.data.captions import caption, motif_caption
        from maestromotif.data.pairs import MOTIF_SET

        obs = observations(inp)
        out = [Metric("data/observations/rows", "exact", int(len(obs))),
               Metric("data/observations/sha", "exact", frame_digest(obs))]
        for name, pairs in pair_sets(inp).items():
            out.append(Metric(f"data/pairs/{name}/sha", "exact", frame_digest(pairs)))
            rows = pairs.to_dict("records")
            text = motif_caption if name == MOTIF_SET else caption
            out.append(Metric(f"data/captions/{name}/sha", "exact",
                              digest(*(text(r, s) for r in rows for s in ("_1", "_2")))))
        return out


class OracleProbe(Probe):
    """oracle/*: the rule oracle's labels of every ci pair set."""

    def measure(self, inp: Inputs, reference: Mapping[str, Any]) -> list[Metric]:
        from maestromotif.data.pairs import MOTIF_SET
        from maestromotif.oracle import oracle_label

        return [Metric(f"oracle/{skill}/labels", "exact",
                       "".join(str(oracle_label(skill, r)[0]) for r in pairs.to_dict("records")))
                for skill, pairs in pair_sets(inp).items() if skill != MOTIF_SET]


# ----- reward models and intrinsic reward -------------------------------------------------------------------
def probe_keys(messages: Sequence[str]) -> list[tuple[str, int]]:
    """The probe set: (message, depth-change sign) keys; every message at change 0, plus three depth
    changes."""
    if not messages:
        raise ConfigError("regression.probes.reward.messages is empty; list real NetHack messages in "
                          "conf/regression/default.yaml")
    return [(m, 0) for m in messages] + [("", -1), ("", 1), ("You kill the newt!", 1)]


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


def reward_checkpoints(inp: Inputs, messages: Sequence[str]) -> dict:
    """One reward model per skill, trained (ci reward settings, fixed seed) on the oracle labels of the pairs
    of probe messages. (The ci pairs of random play are nearly all ties: a model trained on them is flat.)"""
    import torch

    from maestromotif.reward.train import RewardConfig, train_reward_model

    def compute():
        cfg: RewardConfig = OmegaConf.to_object(section(inp.params, "reward", RewardConfig))
        cfg.device = "cpu"
        if cfg.torch_threads > 0:
            torch.set_num_threads(cfg.torch_threads)
        keys = probe_keys(messages)
        return {skill: train_reward_model(probe_pairs(keys, skill), skill, cfg, inp.seed("reward", skill))
                for skill in inp.top.skills}
    return inp.cached(f"reward/{digest(*messages)}", compute)


class RewardProbe(Probe):
    """reward/*: a reward model per skill trained with a fixed seed on the rule oracle's labels of every pair
    of a fixed probe set of real NetHack messages, scored on that probe set."""

    def __init__(self, messages: Sequence[str]):
        self.messages = list(messages)

    def measure(self, inp: Inputs, reference: Mapping[str, Any]) -> list[Metric]:
        from maestromotif.reward.model import score

        keys = probe_keys(self.messages)
        out = []
        here = {"machine": machine()}  # trained models: compared on the reference's machine kind only
        for skill, (ckpt, metrics) in reward_checkpoints(inp, self.messages).items():
            raw = score(ckpt.model, [m for m, _ in keys], [d for _, d in keys]).astype(np.float64)
            normalised = (raw - ckpt.reward_mean) / ckpt.reward_std
            pairs = probe_pairs(keys, skill)
            index = {k: i for i, k in enumerate(keys)}
            r1 = normalised[[index[(m, d)] for m, d in zip(pairs.message_1, pairs.dlvl_change_1)]]
            r2 = normalised[[index[(m, d)] for m, d in zip(pairs.message_2, pairs.dlvl_change_2)]]
            strict = pairs.label.to_numpy() != 2
            agree = np.where(r1 > r2, 0, 1)[strict] == pairs.label.to_numpy()[strict]
            out += [Metric(f"reward/{skill}/probe", "machine_float", [round(float(x), 8) for x in normalised],
                           here),
                    Metric(f"reward/{skill}/mean", "machine_float", float(ckpt.reward_mean), here),
                    Metric(f"reward/{skill}/var", "machine_float", float(ckpt.reward_var), here),
                    Metric(f"reward/{skill}/train_loss", "machine_float",
                           float(metrics["history"][-1]["train_loss"]), here),
                    Metric(f"reward/{skill}/oracle_agreement", "exact",
                           f"{int(agree.sum())}/{int(strict.sum())}")]
        return out


class IntrinsicProbe(Probe):
    """intrinsic/*: the paper's intrinsic reward of each skill's model (RewardProbe's models, trained on
    `messages`) along the recorded ci episode 0."""

    def __init__(self, messages: Sequence[str]):
        self.messages = list(messages)

    def measure(self, inp: Inputs, reference: Mapping[str, Any]) -> list[Metric]:
        from maestromotif.reward.intrinsic import EpisodeState, IntrinsicReward
        from maestromotif.reward.train import intrinsic_config

        ckpts = reward_checkpoints(inp, self.messages)
        reward = IntrinsicReward([ckpts[s][0] for s in inp.top.skills], intrinsic_config(inp.params))
        obs = observations(inp)
        episode = obs[obs["episode_id"] == obs["episode_id"].min()]
        messages, depths = episode["message"].tolist(), episode["dlvl"].astype(int).tolist()
        weights = np.arange(1, len(messages)) / len(messages)  # a weighted sum also notices reordering
        out = []
        here = {"machine": machine()}  # RewardProbe's trained models: their machine kind only
        for index, skill in enumerate(inp.top.skills):
            state = EpisodeState(reward)
            state.reset(messages[0], depths[0])
            steps = [state.step(index, m, d, 0.0, False) for m, d in zip(messages[1:], depths[1:])]
            r_int = np.array([s.intrinsic for s in steps])
            out += [Metric(f"intrinsic/{skill}/sum", "machine_float", float(r_int.sum()), here),
                    Metric(f"intrinsic/{skill}/weighted_sum", "machine_float", float((weights * r_int).sum()),
                           here),
                    Metric(f"intrinsic/{skill}/total_sum", "machine_float",
                           float(sum(s.total for s in steps)), here),
                    Metric(f"intrinsic/{skill}/normalised_sum", "machine_float",
                           float(sum(s.normalised for s in steps)), here),
                    Metric(f"intrinsic/{skill}/rewarded_steps", "machine", int((r_int != 0).sum()), here)]
        return out


# ----- options wrapper and network inputs ----------------------------------------------------------------
class OptionsProbe(Probe):
    """options/*: the skill sequence and the skill one-hot of the options wrapper, and the network inputs
    (maestromotif.rl.obs.PolicyObservation) along a seeded random trajectory; options/encoder_* (float): the
    skill network's encoder (seeded init) on those inputs."""

    def __init__(self, program: str = "training", max_depth: int = 2, discoverer_steps: int = 20,
                 steps: int = 300):
        self.program, self.max_depth = program, int(max_depth)
        self.discoverer_steps, self.steps = int(discoverer_steps), int(steps)

    def trajectory(self, inp: Inputs) -> dict[str, np.ndarray]:
        """A seeded random trajectory through OptionsWrapper + PolicyObservation ("embed" crops)."""
        from benchmark.env import ACTIONS, make
        from maestromotif.options.program import Program, Settings, compose, reference_layers
        from maestromotif.options.wrapper import OptionsWrapper
        from maestromotif.rl.obs import PolicyObservation

        settings = Settings((self.max_depth, self.max_depth), self.discoverer_steps)
        source = compose(self.program, reference_layers(self.program), settings, "regression")
        program = Program(self.program, source, "regression", trusted=True)
        env = PolicyObservation(OptionsWrapper(make(cfg=inp.env_config()), program, runner="inprocess",
                                               seed=inp.seed("options", "program"), on_error="raise"),
                                crop_mode="embed")
        rng = np.random.default_rng(inp.seed("options", "actions"))
        frames: dict[str, list] = {k: [] for k in ("stats", "crop_chars", "crop_colors", "message")}
        skills, switches, episode = [], 0, 0
        try:
            obs, _ = env.reset(seed=inp.seed("options", "episode", episode))
            for _ in range(self.steps):
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

    def measure(self, inp: Inputs, reference: Mapping[str, Any]) -> list[Metric]:
        import torch

        from maestromotif.rl.network import SkillEncoder
        from maestromotif.rl.obs import NUM_SKILLS, observation_space

        t = self.trajectory(inp)
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
            Metric("options/onehot_sha", "exact", array_digest(onehot)),
            Metric("options/network_input_sha", "exact",
                   array_digest(t["stats"], t["crop_chars"], t["crop_colors"], t["message"])),
            Metric("options/encoder_sum", "float", float(features.sum())),
            Metric("options/encoder_weighted_sum", "float", float((weights * features).sum())),
        ]
