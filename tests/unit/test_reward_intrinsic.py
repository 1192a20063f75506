"""The intrinsic-reward formula on hand-computed cases, and checkpoint validation.

The reward model here is a real RewardModel whose output layer is set to a constant c, so that
r_hat = (c - mean) / std is known exactly; everything else (normalisation, threshold, count, LRU,
coefficients, depth window) is the production code.
"""
from __future__ import annotations

import math

import pytest
import torch

from benchmark.config import defaults
from maestromotif.reward.intrinsic import (
    DepthWindow,
    EpisodeState,
    IntrinsicConfig,
    IntrinsicReward,
    MessageCounter,
)
from maestromotif.reward.model import (
    FORMAT_VERSION,
    QUANTILE_LEVELS,
    CheckpointError,
    RewardCheckpoint,
    RewardModel,
    encode_message,
    load_checkpoint,
    save_checkpoint,
)


def intrinsic(**overrides) -> IntrinsicConfig:
    """conf/reward/default.yaml's intrinsic settings (the paper's), with `overrides`."""
    return defaults("reward.intrinsic", IntrinsicConfig, **overrides)


def constant_checkpoint(skill: str, raw: float, mean: float = 1.0, var: float = 4.0,
                        threshold_85: float = 0.5, threshold_95: float = 1.0) -> RewardCheckpoint:
    torch.manual_seed(0)
    model = RewardModel()
    with torch.no_grad():
        model.head[1].weight.zero_()
        model.head[1].bias.fill_(raw)
    quantiles = {q: -1.0 + q for q in QUANTILE_LEVELS}
    quantiles[0.85], quantiles[0.95] = threshold_85, threshold_95
    return RewardCheckpoint(skill, model.eval(), mean, var, quantiles, {"profile": "ci"})


def test_message_counter_lru_evicts_at_the_21st_distinct_message():
    counter = MessageCounter(20)
    assert [counter.add("a") for _ in range(3)] == [1, 2, 3]
    for i in range(19):
        counter.add(f"m{i}")  # 20 distinct messages now: "a" is the least recently seen
    assert len(counter) == 20 and "a" in counter
    counter.add("m19")  # the 21st distinct message evicts "a"
    assert "a" not in counter and len(counter) == 20
    assert counter.add("a") == 1  # its count restarts
    assert "m0" not in counter  # ... and "a" coming back evicted the next least recent one


def test_message_counter_recent_use_protects_from_eviction():
    counter = MessageCounter(3)
    for m in "abc":
        counter.add(m)
    counter.add("a")  # a is now the most recent; b is the least recent
    counter.add("d")
    assert "b" not in counter and counter.add("a") == 3


def test_depth_window_measures_since_reset_and_caps_length():
    w = DepthWindow(maxlen=3)
    w.reset(1)
    assert [w.update(d) for d in (1, 2, 2)] == [0, 1, 1]
    assert w.update(2) == 0  # deque is [2, 2, 2]: the depth 1 fell out of the 3-step window
    w.reset(2)
    assert w.update(1) == -1


def test_formula_normalisation_threshold_count_and_coefficients():
    # raw 5, mean 1, var 4 -> r_hat = 2; threshold (85th) 0.5 -> kept; beta 3; llm 0.1
    reward = IntrinsicReward([constant_checkpoint("descender", raw=5.0)], intrinsic())
    state = EpisodeState(reward)
    state.reset("", depth=1)
    first = state.step(0, "You descend.", depth=1, env_reward=0.0, skill_switched=False)
    assert first.normalised == pytest.approx(2.0, abs=1e-5)
    assert first.count == 1 and first.intrinsic == pytest.approx(2.0, abs=1e-5)
    assert first.total == pytest.approx(0.2, abs=1e-6)
    second = state.step(0, "You descend.", depth=1, env_reward=0.0, skill_switched=False)
    assert second.count == 2 and second.intrinsic == pytest.approx(2.0 / 8, abs=1e-6)
    third = state.step(0, "You descend.", depth=1, env_reward=0.0, skill_switched=False)
    assert third.total == pytest.approx(0.1 * 2.0 / 27, abs=1e-6)
    # the reset observation's message counts once, as in the official MessageWrapper
    assert state.step(0, "", depth=1, env_reward=0.0, skill_switched=False).count == 2


def test_threshold_is_per_skill_and_strict():
    # r_hat = (2 - 1) / 1 = 1.0: above the 85th-quantile threshold 0.5, not above the 95th's 1.0
    ckpts = [constant_checkpoint(name, raw=2.0, var=1.0) for name in ("discoverer", "descender")]
    reward = IntrinsicReward(ckpts, intrinsic())
    assert reward.model(0).threshold == 1.0 and reward.model(1).threshold == 0.5
    assert reward.intrinsic(0, "x", 0, count=1) == (0.0, pytest.approx(1.0))
    assert reward.intrinsic(1, "x", 0, count=1)[0] == pytest.approx(1.0)
    below = IntrinsicReward([constant_checkpoint("descender", raw=0.0, var=1.0)], intrinsic())
    assert below.intrinsic(0, "x", 0, count=1) == (0.0, pytest.approx(-1.0))


def test_extrinsic_term_is_scaled_and_clipped():
    cfg = intrinsic(extrinsic_coef=1.0, llm_coef=0.0, reward_scale=0.1, reward_clip=10.0)
    reward = IntrinsicReward([constant_checkpoint("motif", raw=0.0)], cfg)
    assert reward.total(50.0, 123.0) == pytest.approx(5.0)
    assert reward.total(1000.0, 0.0) == pytest.approx(10.0)
    assert reward.total(-1000.0, 0.0) == pytest.approx(-10.0)
    paper = IntrinsicReward([constant_checkpoint("descender", raw=0.0)], intrinsic())
    assert paper.total(1000.0, 2.0) == pytest.approx(0.2)  # skills: no game reward


def test_single_model_without_skills_uses_default_quantile():
    reward = IntrinsicReward([constant_checkpoint("gnomish", raw=5.0)], intrinsic())
    assert reward.names == ["gnomish"] and reward.model(0).threshold == 0.5  # default 0.85
    with pytest.raises(IndexError, match="skill index 1"):
        reward.model(1)


def test_quantile_zero_means_no_threshold_and_unknown_level_is_an_error():
    ckpt = constant_checkpoint("descender", raw=0.0)
    assert ckpt.threshold(0.0) == -math.inf
    with pytest.raises(CheckpointError, match="quantile 0.42"):
        ckpt.threshold(0.42)


def test_skill_switch_resets_the_depth_window_and_stats_accumulate_per_skill():
    ckpts = [constant_checkpoint(n, raw=5.0) for n in ("discoverer", "descender")]
    state = EpisodeState(IntrinsicReward(ckpts, intrinsic(switch_reward_model="acting_skill")))
    state.reset("", depth=1)
    assert state.step(1, "a", depth=2, env_reward=0, skill_switched=True, next_skill=0).dlvl_change == 1
    after = state.step(0, "b", depth=2, env_reward=0, skill_switched=False)
    assert after.dlvl_change == 0  # measured since the switch
    stats = state.episode_stats()
    assert stats["skill_steps/discoverer"] == 1 and stats["skill_steps/descender"] == 1
    assert stats["skill_reward/descender"] == pytest.approx(2.0, abs=1e-5)


def descent_then_switch(switch_reward_model: str) -> tuple[list, dict]:
    """Descender (skill 1) walks, descends (depth 1 -> 2, which ends it), then the Discoverer (skill 0)
    acts. The models are constants: the Discoverer's r_hat is 1.0, the Descender's 2.0."""
    ckpts = [constant_checkpoint("discoverer", raw=3.0, threshold_95=0.5),
             constant_checkpoint("descender", raw=5.0)]
    cfg = intrinsic(switch_reward_model=switch_reward_model)
    state = EpisodeState(IntrinsicReward(ckpts, cfg))
    state.reset("", depth=1)
    steps = [state.step(1, "a", depth=1, env_reward=0, skill_switched=False, next_skill=1),
             state.step(1, "b", depth=2, env_reward=0, skill_switched=True, next_skill=0),  # the descent
             state.step(0, "c", depth=2, env_reward=0, skill_switched=False, next_skill=0)]
    return steps, state.episode_stats()


def test_switching_step_is_scored_by_the_next_skill_model_by_default():
    assert intrinsic().switch_reward_model == "next_skill"
    steps, stats = descent_then_switch("next_skill")
    descent = steps[1]
    assert descent.dlvl_change == 1 and descent.skill == 0  # the descent, seen by the Discoverer's model
    assert descent.normalised == pytest.approx(1.0, abs=1e-5)
    assert descent.total == pytest.approx(0.1, abs=1e-6)
    assert [s.skill for s in steps] == [1, 0, 0]
    assert stats["skill_steps/descender"] == 1 and stats["skill_steps/discoverer"] == 2
    assert stats["skill_reward/descender"] == pytest.approx(2.0, abs=1e-5)
    assert stats["skill_reward/discoverer"] == pytest.approx(2.0, abs=1e-5)
    assert steps[2].dlvl_change == 0  # the depth window restarts after the switch either way


def test_acting_skill_option_scores_the_switching_step_with_the_ending_skill():
    steps, stats = descent_then_switch("acting_skill")
    descent = steps[1]
    assert descent.dlvl_change == 1 and descent.skill == 1
    assert descent.normalised == pytest.approx(2.0, abs=1e-5)
    assert descent.total == pytest.approx(0.2, abs=1e-6)
    assert stats["skill_steps/descender"] == 2 and stats["skill_steps/discoverer"] == 1
    assert steps[2].dlvl_change == 0


def test_switch_reward_model_is_validated_and_next_skill_is_required():
    with pytest.raises(ValueError, match="reward.intrinsic.switch_reward_model"):
        intrinsic(switch_reward_model="new")
    state = EpisodeState(IntrinsicReward([constant_checkpoint("descender", raw=5.0)], intrinsic()))
    state.reset("", depth=1)
    with pytest.raises(ValueError, match="next_skill"):
        state.step(0, "a", depth=1, env_reward=0, skill_switched=True)


def test_memo_scores_each_key_once_and_matches_the_model():
    ckpt = constant_checkpoint("descender", raw=5.0)
    torch.manual_seed(1)
    ckpt.model = RewardModel().eval()  # a non-constant model
    reward = IntrinsicReward([ckpt], intrinsic())
    keys = [(0, "It's a wall.", 0), (0, "It's a wall.", 1), (0, "", 0)]
    assert reward.precompute(keys + keys) == 3
    assert reward.precompute(keys) == 0
    m = torch.from_numpy(encode_message("It's a wall."))[None]
    d = torch.tensor([[1.0, 0, 0, 0, 0]])
    with torch.no_grad():
        raw = float(ckpt.model(m, d))
    expected = (raw - ckpt.reward_mean) / ckpt.reward_std
    assert reward.normalised(0, "It's a wall.", 1) == pytest.approx(expected, abs=1e-5)
    assert reward.model(0).misses == 3


# --- checkpoints -----------------------------------------------------------------------------------

def test_checkpoint_round_trip(tmp_path):
    ckpt = constant_checkpoint("merchant", raw=3.0)
    save_checkpoint(tmp_path / "model.pt", ckpt)
    back = load_checkpoint(tmp_path / "model.pt", skill="merchant")
    assert back.skill == "merchant" and back.reward_var == 4.0 and back.quantiles == ckpt.quantiles
    assert back.metadata["profile"] == "ci"
    for a, b in zip(ckpt.model.state_dict().values(), back.model.state_dict().values()):
        assert torch.equal(a, b)
    assert not any(p.requires_grad for p in back.model.parameters())


def test_checkpoint_for_another_skill_is_refused(tmp_path):
    save_checkpoint(tmp_path / "model.pt", constant_checkpoint("merchant", raw=3.0))
    with pytest.raises(CheckpointError, match="skill 'merchant', not 'worshipper'"):
        load_checkpoint(tmp_path / "model.pt", skill="worshipper")


def test_truncated_or_garbage_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, constant_checkpoint("merchant", raw=3.0))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path, skill="merchant")
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no reward model"):
        load_checkpoint(tmp_path / "missing.pt", skill="merchant")


def test_other_format_version_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, constant_checkpoint("merchant", raw=3.0))
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = FORMAT_VERSION + 1
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=f"format version {FORMAT_VERSION + 1}"):
        load_checkpoint(path, skill="merchant")
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="no format_version"):
        load_checkpoint(path)


def test_min_threshold_stops_paying_a_negative_score_above_a_negative_quantile():
    """A quantile below zero pays ordinary steps a negative reward (ending the episode early then pays);
    reward.intrinsic.min_threshold: 0.0 raises eps to 0, null keeps the paper's quantile."""
    ckpt = constant_checkpoint("descender", raw=0.6, threshold_85=-0.5)  # r_hat = (0.6 - 1) / 2 = -0.2
    paper = IntrinsicReward([ckpt], intrinsic())
    assert paper.model(0).threshold == pytest.approx(-0.5)
    r_int, r_hat = paper.intrinsic(0, "", 0, count=1)
    assert r_hat == pytest.approx(-0.2) and r_int == pytest.approx(-0.2)  # paid, and negative
    floored = IntrinsicReward([ckpt], intrinsic(min_threshold=0.0))
    assert floored.model(0).threshold == 0.0 and floored.model(0).quantile_threshold == pytest.approx(-0.5)
    assert floored.intrinsic(0, "", 0, count=1) == (0.0, pytest.approx(-0.2))
    high = IntrinsicReward([constant_checkpoint("descender", raw=3.0, threshold_85=0.5)],
                           intrinsic(min_threshold=0.0))
    assert high.model(0).threshold == 0.5  # a positive quantile is left alone
    assert high.intrinsic(0, "", 0, count=2)[0] == pytest.approx(1.0 / 8)


def test_count_scope_env_keeps_the_counts_across_a_new_episode():
    """count_scope episode (official): a new episode pays its first message in full again; env: the count
    runs on, so dying does not renew what pays."""
    ckpt = constant_checkpoint("discoverer", raw=3.0, threshold_95=0.5)  # r_hat = 1.0 for every key
    paid = {}
    for scope in ("episode", "env"):
        state = EpisodeState(IntrinsicReward([ckpt], intrinsic(count_scope=scope)))
        state.reset("", 1)
        first = [state.step(0, "hello", 1, 0.0, False).intrinsic for _ in range(2)]
        state.reset("", 1)  # the next episode
        paid[scope] = first + [state.step(0, "hello", 1, 0.0, False).intrinsic]
    assert paid["episode"] == pytest.approx([1.0, 1 / 8, 1.0])
    assert paid["env"] == pytest.approx([1.0, 1 / 8, 1 / 27])
    with pytest.raises(ValueError, match="reward.intrinsic.count_scope"):
        intrinsic(count_scope="life")


def test_blank_end_of_game_step_is_not_scored_and_changes_no_state():
    """NLE zeroes the observation after the game ends; scored, its depth 0 read as an ascent (-1) and a
    model that pays ascents (the Ascender's) paid every death. blank_step pays only the game reward."""
    ckpt = constant_checkpoint("ascender", raw=5.0)  # r_hat = 2.0 for every key, above the threshold
    reward = IntrinsicReward([ckpt], intrinsic(extrinsic_coef=1.0, reward_scale=1.0))
    state = EpisodeState(reward)
    state.reset("", depth=2)
    state.step(0, "a", depth=2, env_reward=0.0, skill_switched=False)
    before = state.episode_stats()
    end = state.blank_step(0, env_reward=-3.0, died=True)
    assert (end.intrinsic, end.normalised, end.count, end.dlvl_change) == (0.0, 0.0, 0, 0)
    assert end.total == pytest.approx(-3.0)  # the game reward alone (death_penalty 0, the paper's)
    assert state.episode_stats() == before  # not a game state: no step, sum or count added
    assert state.step(0, "a", depth=2, env_reward=0.0, skill_switched=False).count == 2
    with pytest.raises(IndexError, match="skill index 3"):
        state.blank_step(3, 0.0, False)


def test_death_penalty_is_subtracted_only_on_a_death():
    ckpt = constant_checkpoint("descender", raw=5.0)  # r_hat = 2.0, paid 0.1 * 2.0 at count 1
    state = EpisodeState(IntrinsicReward([ckpt], intrinsic(death_penalty=1.5)))
    state.reset("", depth=1)
    assert state.step(0, "a", 1, 0.0, False).total == pytest.approx(0.2)
    assert state.step(0, "b", 1, 0.0, False, died=True).total == pytest.approx(0.2 - 1.5)
    assert state.blank_step(0, 0.0, died=True).total == pytest.approx(-1.5)
    assert state.blank_step(0, 0.0, died=False).total == 0.0  # a game that ended otherwise
    assert intrinsic().death_penalty == 0.0  # the paper's: no penalty
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="reward.intrinsic.death_penalty"):
            intrinsic(death_penalty=bad)
