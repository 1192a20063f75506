"""baselines.embedding_similarity with the real packaged sentence encoder and real NetHack messages."""
import math

import numpy as np
import pytest

from baselines.embedding_similarity import (
    EmbeddingSimilarity, MessageGoalSimilarity, intrinsic_reward, load_encoder, load_reward, normalisation,
)
from benchmark.config import ConfigError
from benchmark.env import decode_message, make
from benchmark.io import read_json
from maestromotif.reward.model import QUANTILE_LEVELS, score

UNTRAINED = {"trainer": None, "policy_loader": None, "observations_dir": None}  # the reward alone

NAVIGATION = "Find the staircase down and descend to the next dungeon level."


@pytest.fixture(scope="module")
def encoder():
    return load_encoder()  # ~5 s, once per process


@pytest.fixture(scope="module")
def real_messages():
    """Messages of 300 random steps of a real game, plus a few a navigating agent sees."""
    env = make(seed=11)
    rng = np.random.default_rng(0)
    env.reset()
    messages = []
    for _ in range(300):
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        messages.append(decode_message(obs["message"]))
        if terminated or truncated:
            env.reset()
    env.close()
    return messages + ["You descend the stairs.", "There is a staircase down here.", "You hear some noises."]


def test_task_relevant_message_scores_higher(encoder):
    sim = MessageGoalSimilarity(NAVIGATION, encoder=encoder)
    descend, noises = sim.similarity(["You descend the stairs.", "You hear some noises."])
    assert descend > noises + 0.2
    assert -1.0 <= noises <= 1.0 and -1.0 <= descend <= 1.0


def test_scores_are_memoised_per_message(encoder):
    sim = MessageGoalSimilarity(NAVIGATION, encoder=encoder)
    first = sim.similarity(["You descend the stairs.", "You hear some noises.", "You descend the stairs."])
    assert sim.encoded == 2 and len(sim.cache) == 2
    again = sim.similarity(["You hear some noises.", "You descend the stairs."])
    assert sim.encoded == 2  # no new encoder work
    np.testing.assert_array_equal(again, first[[1, 0]])
    # The reward-model signature used by maestromotif.reward.intrinsic (message bytes, diffstats).
    via_model = score(sim, ["You descend the stairs.", "You hear some noises."], [1, 0])
    np.testing.assert_allclose(via_model, first[:2], rtol=1e-6)
    assert sim.encoded == 2


def test_fit_on_the_collected_dataset_and_intrinsic_api(encoder, ci_data, tmp_path):
    """fit() reads the collect stage's records (session fixture ci_data), as the pipeline does."""
    from maestromotif.data.collect import load_observations

    method = EmbeddingSimilarity(threshold_quantile=0.85, encoder=encoder, **UNTRAINED)
    out = method.fit(ci_data.params, tmp_path / "gnomish", seed=0, task="gnomish")  # no trainer: reward only
    saved = read_json(out / "reward.json")
    assert saved["goal"] == "You are now faced with the task of finding the Gnomish Mines."
    assert saved["task"] == "gnomish"
    assert saved["unique_messages"] == load_observations(ci_data.obs_dir)["message"].nunique()
    assert saved["provenance"]["profile"] == "ci"
    ckpt = load_reward(out, encoder=encoder)
    assert ckpt.skill == "embedding_similarity/gnomish"
    assert sorted(ckpt.quantiles) == sorted(QUANTILE_LEVELS)
    assert ckpt.threshold(0.85) == pytest.approx(saved["threshold"])

    reward = intrinsic_reward(out, 0.85, encoder=encoder)
    r_hat = reward.normalised(0, "You enter the Gnomish Mines.", 0)
    assert r_hat > reward.models[0].threshold  # far more similar to the goal than anything seen
    r_int, _ = reward.intrinsic(0, "You enter the Gnomish Mines.", 0, count=2)
    assert r_int == pytest.approx(r_hat / 2 ** 3)  # the Motif count term, beta = 3


def test_normalisation_over_real_messages(encoder, real_messages):
    sim = MessageGoalSimilarity(NAVIGATION, encoder=encoder)
    unique = list(dict.fromkeys(real_messages))
    mean, var, quantiles = normalisation(sim.similarity(unique))
    norm = (sim.similarity(["You descend the stairs."])[0] - mean) / math.sqrt(var)
    assert norm > quantiles[0.95]  # the navigation message is in the top 5% of real messages
    assert quantiles[0.05] < 0 < quantiles[0.95]
    with pytest.raises(ConfigError, match="at least 2"):
        normalisation(np.array([0.3]))


def test_fit_calls_the_injected_trainer(encoder, ci_data, real_messages, tmp_path):
    params = ci_data.params
    calls = []

    def fake_trainer(**kwargs):  # a fake for control flow only: records what the RL trainer would get
        calls.append(kwargs)
        (kwargs["out_dir"]).mkdir(parents=True)
        return kwargs["out_dir"]

    method = EmbeddingSimilarity(threshold_quantile=0.85, encoder=encoder, trainer=fake_trainer,
                                 policy_loader=None, observations_dir=None)
    assert method.fit(params, tmp_path, seed=3, task="delphi") == tmp_path
    (call,) = calls
    assert call["task"] == "delphi" and call["seed"] == 3 and call["out_dir"] == tmp_path / "policy"
    assert call["reward"].names == ["embedding_similarity/delphi"]  # an IntrinsicReward with one model

    # fit_reward also takes messages directly (e.g. a sample of real messages).
    method.fit_reward(params, tmp_path / "sample", seed=0, task="delphi", messages=real_messages)
    assert read_json(tmp_path / "sample" / "reward.json")["unique_messages"] == len(set(real_messages))

    with pytest.raises(ConfigError, match="no trained policy"):
        method = EmbeddingSimilarity(threshold_quantile=0.85, encoder=encoder, **UNTRAINED)
        method.policy(tmp_path / "sample", "delphi", params)
    with pytest.raises(ConfigError, match="per task"):
        method.fit(params, tmp_path, seed=0, task=None)
    with pytest.raises(ConfigError, match="threshold_quantile"):
        EmbeddingSimilarity(threshold_quantile=0.97, **UNTRAINED)
