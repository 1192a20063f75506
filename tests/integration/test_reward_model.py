"""The reward model learns real game messages labelled by simple rules (real NLE, real training).

Data: seeded random play in the paper env (wizard mode, so that level teleports give real descents and
ascents among the random moves); each sample is the current message and the sign of the depth change
over the last GAP steps. Pairs are labelled by a deterministic rule written here, standing in for the
LLM annotator: the Descender prefers the deeper sample, the Ascender the shallower one, and a
Discoverer-like rule prefers messages about fighting or gold. Ties when the rule cannot tell.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
from nle.nethack import actions as A

from benchmark.config import defaults
from benchmark.env import ACTION_NAMES, ACTIONS, decode_message, make
from maestromotif.reward.model import load_checkpoint, save_checkpoint, score
from maestromotif.reward.train import RewardConfig, train_reward_model

GAP = 20
_TELEPORT = (A.WizardCommand.WIZLEVELPORT, *(getattr(A.TextCharacters, f"NUM_{i}") for i in range(1, 6)))
# Actions that open an inventory prompt would answer it with random keys in allow_all_modes: left out.
_PROMPTING = ("EAT", "DROP", "QUAFF", "CAST", "ENHANCE", "PRAY")
_RANDOM_ACTIONS = [i for i, n in enumerate(ACTION_NAMES) if n not in _PROMPTING]
DISCOVERER_WORDS = re.compile(r"gold|kill|bites|hits|miss", re.IGNORECASE)


def rollout_samples(episodes: int, seed: int, max_steps: int = 600) -> pd.DataFrame:
    """(message, dlvl_change) per step of seeded random play with occasional level teleports."""
    env = make(seed=seed, max_episode_steps=max_steps, wizard=True, allow_all_modes=True,
               actions=ACTIONS + _TELEPORT)
    rng = np.random.default_rng(seed)
    rows = []
    try:
        for _ in range(episodes):
            obs, _ = env.reset()
            depths, done = [int(obs["blstats"][12])], False
            while not done:
                if rng.random() < 0.01:  # Ctrl-V, a level 1-5, Enter
                    plan = [len(ACTIONS), len(ACTIONS) + int(rng.integers(1, 6)), 0]
                else:
                    plan = [int(rng.choice(_RANDOM_ACTIONS))]
                for a in plan:
                    obs, _, terminated, truncated, _ = env.step(a)
                    depths.append(int(obs["blstats"][12]))
                    if len(depths) > GAP:
                        change = int(np.sign(depths[-1] - depths[-1 - GAP]))
                        rows.append((decode_message(obs["message"]), change))
                    done = terminated or truncated
                    if done:
                        break
    finally:
        env.close()
    return pd.DataFrame(rows, columns=["message", "dlvl_change"])


def rule_feature(rule: str, samples: pd.DataFrame) -> np.ndarray:
    if rule == "descender":
        return samples["dlvl_change"].to_numpy()
    if rule == "ascender":
        return -samples["dlvl_change"].to_numpy()
    if rule == "discoverer":
        return samples["message"].str.contains(DISCOVERER_WORDS).to_numpy().astype(int)
    raise ValueError(rule)


def label_pairs(samples: pd.DataFrame, rule: str, n_pairs: int, seed: int) -> pd.DataFrame:
    """Pairs of samples labelled by `rule` (higher feature preferred; equal = tie). Half the second
    samples are drawn among those the rule ranks differently, so that not every pair is a tie."""
    rng = np.random.default_rng(seed)
    feature = rule_feature(rule, samples)
    i = rng.integers(len(samples), size=n_pairs)
    j = rng.integers(len(samples), size=n_pairs)
    for k in np.flatnonzero(rng.random(n_pairs) < 0.5):
        other = np.flatnonzero(feature != feature[i[k]])
        if len(other):
            j[k] = rng.choice(other)
    f1, f2 = feature[i], feature[j]
    return pd.DataFrame({
        "pair_id": np.arange(n_pairs),
        "message_1": samples["message"].to_numpy()[i],
        "message_2": samples["message"].to_numpy()[j],
        "dlvl_change_1": samples["dlvl_change"].to_numpy()[i],
        "dlvl_change_2": samples["dlvl_change"].to_numpy()[j],
        "label": np.where(f1 > f2, 0, np.where(f1 < f2, 1, 2)),
    })


# --- fixtures --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def one_thread():
    """One torch thread: the 2 CI cores are shared, and oversubscribed torch is many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def samples() -> pd.DataFrame:
    s = rollout_samples(episodes=12, seed=1000)
    assert set(s["dlvl_change"]) == {-1, 0, 1}, "the rollout should contain real descents and ascents"
    return s


FAST = defaults("reward", RewardConfig, lr=1e-3, batch_size=100, epochs=4, holdout_fraction=0.2)


# --- tests -----------------------------------------------------------------------------------------

@pytest.mark.timeout(600)
@pytest.mark.parametrize("rule", ["descender", "ascender", "discoverer"])
def test_reward_model_learns_rule_labels_on_real_messages(rule, samples, one_thread, tmp_path):
    pairs = label_pairs(samples, rule, n_pairs=1200, seed=1)
    ckpt, metrics = train_reward_model(pairs, rule, FAST, seed=7)
    assert metrics["history"][-1]["heldout_non_tie"] > 50
    assert metrics["heldout_accuracy"] >= 0.9, metrics["history"]
    assert len(metrics["history"]) == FAST.epochs and metrics["pairs_per_s"] > 0
    # normalisation over the unique keys: the normalised rewards of those keys have mean 0, std 1
    keys = pd.concat([pairs[["message_1", "dlvl_change_1"]].set_axis(["m", "d"], axis=1),
                      pairs[["message_2", "dlvl_change_2"]].set_axis(["m", "d"], axis=1)]).drop_duplicates()
    raw = score(ckpt.model, list(keys["m"]), list(keys["d"]))
    norm = (raw - ckpt.reward_mean) / ckpt.reward_std
    assert abs(norm.mean()) < 1e-3 and abs(norm.std() - 1) < 1e-3
    levels = sorted(ckpt.quantiles)
    assert levels[0] == 0.05 and levels[-1] == 0.95 and len(levels) == 19
    assert ckpt.quantiles[0.85] == pytest.approx(np.quantile(norm, 0.85), abs=1e-3)
    # the checkpoint file gives the same rewards
    save_checkpoint(tmp_path / "model.pt", ckpt)
    back = load_checkpoint(tmp_path / "model.pt", skill=rule)
    assert np.allclose(score(back.model, list(keys["m"]), list(keys["d"])), raw, atol=1e-5)


@pytest.mark.timeout(600)
def test_interrupted_training_resumes_to_the_same_weights(samples, one_thread, tmp_path):
    pairs = label_pairs(samples, "descender", n_pairs=300, seed=2)
    cfg = defaults("reward", RewardConfig, lr=1e-3, batch_size=50, epochs=3, holdout_fraction=0.2)
    whole, _ = train_reward_model(pairs, "descender", cfg, seed=3)

    class Killed(Exception):
        pass

    def kill_after_epoch_2(epoch):
        if epoch == 2:
            raise Killed

    resume = tmp_path / "resume.pt"
    with pytest.raises(Killed):
        train_reward_model(pairs, "descender", cfg, seed=3, resume_path=resume,
                           on_epoch_end=kill_after_epoch_2)
    resumed, metrics = train_reward_model(pairs, "descender", cfg, seed=3, resume_path=resume)
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3]
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.timeout(600)
def test_reward_stage_writes_checkpoint_and_metrics(samples, one_thread, tmp_path):
    from benchmark.config import compose
    from benchmark.io import read_json
    from maestromotif.reward.train import run_skill

    params = compose("ci", [f"data_dir={tmp_path}"])
    pairs = label_pairs(samples, "descender", n_pairs=200, seed=3)
    pairs["model_id"] = "rule-oracle"
    path = run_skill(params, "descender", pairs=pairs)
    assert path == tmp_path / "reward" / "descender" / "model.pt"
    ckpt = load_checkpoint(path, skill="descender")
    assert ckpt.metadata["profile"] == "ci" and ckpt.metadata["annotator"] == "rule-oracle"
    assert ckpt.metadata["epochs"] == params.reward.epochs
    metrics = read_json(path.parent / "metrics.json")
    assert len(metrics["history"]) == params.reward.epochs and "heldout_accuracy" in metrics
    assert not (path.parent / "resume.pt").exists()


@pytest.mark.timeout(600)
def test_motif_baseline_reward_model_sees_the_message_only(samples, one_thread, tmp_path):
    from omegaconf import OmegaConf

    from baselines.motif import Motif
    from benchmark.config import compose

    pairs = label_pairs(samples, "discoverer", n_pairs=400, seed=3)

    class GivenLabels(Motif):  # the labels come from the rule here instead of the annotate stage
        def labels(self, params, task):
            return pairs, tmp_path

    params = compose("ci", [f"data_dir={tmp_path / 'data'}"])
    conf = {k: v for k, v in OmegaConf.to_container(OmegaConf.load("conf/method/motif.yaml")).items()
            if k not in ("_target_", "benchmark")}
    path = GivenLabels(**conf).fit_reward(params, tmp_path / "fit", task="delphi")
    ckpt = load_checkpoint(path)
    assert ckpt.model.diffstats_encoder is None and not ckpt.model.cfg.use_diffstats
    assert ckpt.model.fc[0].in_features == ckpt.model.cfg.message_dim  # Linear(128 -> 256): message only
    messages = sorted(set(pairs.message_1) | set(pairs.message_2))[:20]
    by_change = [score(ckpt.model, messages, [d] * len(messages)) for d in (-1, 0, 1)]
    assert np.array_equal(by_change[0], by_change[1]) and np.array_equal(by_change[1], by_change[2])
    # normalisation and quantiles count each message once, whatever depth changes it was seen with
    assert ckpt.metadata["distinct_keys"] == len(set(pairs.message_1) | set(pairs.message_2))
