"""baselines.llm_policy: answer parsing, the agent loop (no-op, feedback, cap, --More--, tokens) on real
NetHack observations, and one real run of the embedded LLM in a real env."""
from types import SimpleNamespace

import numpy as np
import pytest

from baselines.llm_policy import ACTION_MEANINGS, LLMAgentPolicy, LLMPolicy, default_config, parse_action
from benchmark.config import ConfigError, compose
from benchmark.env import ACTION_INDEX, ACTION_NAMES, make
from benchmark.io import read_json

GOAL = "Find the staircase down and descend to the next dungeon level."


@pytest.mark.parametrize("answer, expected", [
    ("Thought: the stairs are east.\nAction: E", "E"),
    ("Thought: run.\nAction: far north", "FAR_N"),
    ("Action: FAR_NE because it is open", "FAR_NE"),
    ("**Action:** DOWN", "DOWN"),
    ("Action:\nSEARCH", "SEARCH"),
    ("Action: E.\nThought: no, west.\nAction: W", "W"),  # the last Action line counts
    ("Action: descend", "DOWN"),
    ("north", "N"),
])
def test_parse_valid_answers(answer, expected):
    assert parse_action(answer) == ACTION_INDEX[expected]


@pytest.mark.parametrize("answer", [
    "", "Action:", "Thought: x\nAction: fly away", "I think we should go north now",
    "FAR_N: run north until something interesting happens\nFAR_E: run east",
])
def test_parse_invalid_answers(answer):
    assert parse_action(answer) is None


def test_every_action_has_a_meaning():
    assert tuple(ACTION_MEANINGS) == ACTION_NAMES
    for name in ACTION_NAMES:
        assert parse_action(f"Action: {name}") == ACTION_INDEX[name]


class FakeEngine:
    """A fake LLM for control-flow tests only: replays scripted answers, records every call."""

    model_id = "fake-scripted"

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def generate(self, conversations, sampling=None):
        self.calls.append((conversations, sampling))
        return [SimpleNamespace(text=self.answers.pop(0), prompt_tokens=100 + i, completion_tokens=7,
                                finish_reason="stop", model_id=self.model_id)
                for i in range(len(conversations))]


def batch(observations):
    return {k: np.stack([o[k] for o in observations]) for k in observations[0]}


@pytest.fixture()
def two_envs():
    envs = [make(seed=3), make(seed=4)]
    yield envs
    for e in envs:
        e.close()


def test_agent_loop_with_fake_engine(two_envs):
    engine = FakeEngine(["Thought: go.\nAction: E", "nonsense", "Action: W", "Action: S"])
    cfg = default_config(max_steps_per_episode=2, max_tokens=16, history_len=2)
    policy = LLMAgentPolicy(engine, GOAL, cfg)
    state = policy.initial_state(2)
    state = policy.seed_episodes(state, [0, 1], [3, 4])
    obs = [e.reset()[0] for e in two_envs]

    actions, state = policy.act(batch(obs), state, np.array([True, True]))
    assert [ACTION_NAMES[a] for a in actions] == ["E", "SEARCH"]  # invalid answer -> the no-op
    assert len(engine.calls) == 1 and len(engine.calls[0][0]) == 2  # one generate() call for the batch
    system, user = engine.calls[0][0][0]
    assert system["role"] == "system" and GOAL in system["content"]
    assert "FAR_SW: run southwest" in system["content"]
    assert "Current observation (step 1):" in user["content"]
    assert "- fountain, 3 steps east" in user["content"]
    assert engine.calls[0][1].max_tokens == 16

    obs = [e.step(int(a))[0] for e, a in zip(two_envs, actions)]
    actions, state = policy.act(batch(obs), state, np.array([False, False]))
    second = engine.calls[1][0]
    assert "you chose E" in second[0][1]["content"]
    assert 'Your previous answer was invalid ("nonsense"): SEARCH was done instead' in second[1][1]["content"]
    assert [ACTION_NAMES[a] for a in actions] == ["W", "S"]

    # The cap is reached: the fixed no-op, without an LLM call.
    obs = [e.step(int(a))[0] for e, a in zip(two_envs, actions)]
    actions, state = policy.act(batch(obs), state, np.array([False, False]))
    assert len(engine.calls) == 2 and [ACTION_NAMES[a] for a in actions] == ["SEARCH", "SEARCH"]
    stats = policy.episode_stats(1)
    assert stats == {"llm_steps": 2, "prompt_tokens": 202, "completion_tokens": 14, "invalid_answers": 1,
                     "truncated_answers": 0, "auto_more": 0, "noop_after_cap": 1, "env_steps": 3,
                     "episode_seed": 4}

    # A new episode in env 0 resets its memory and counters; the finished one is kept.
    obs = [e.step(int(a))[0] for e, a in zip(two_envs, actions)]
    engine.answers = ["Action: N"]
    obs[0] = two_envs[0].reset()[0]
    actions, state = policy.act(batch(obs), state, np.array([True, False]))
    assert policy.stats[0]["llm_steps"] == 1 and policy.stats[0]["env_steps"] == 1
    assert policy.finished_episodes[-1]["env_steps"] == 3  # actions chosen in that episode
    assert "Recent steps" not in engine.calls[-1][0][0][1]["content"]


def test_more_prompt_is_answered_without_the_llm(two_envs):
    engine = FakeEngine([])
    policy = LLMAgentPolicy(engine, GOAL, default_config(max_steps_per_episode=5))
    state = policy.initial_state(1)
    obs = two_envs[0].reset()[0]
    obs["tty_chars"] = obs["tty_chars"].copy()
    obs["tty_chars"][0, :8] = np.frombuffer(b"--More--", dtype=np.uint8)
    actions, state = policy.act(batch([obs]), state, np.array([True]))
    assert ACTION_NAMES[actions[0]] == "MORE" and not engine.calls
    assert policy.stats[0]["auto_more"] == 1


def test_bad_settings_are_errors():
    with pytest.raises(ConfigError, match="noop_action"):
        default_config(noop_action="DANCE").validate()
    with pytest.raises(ConfigError, match="max_steps_per_episode"):
        default_config(max_steps_per_episode=-1).validate()


def test_fit_writes_the_resolved_settings(tmp_path):
    params = compose("ci")
    method = LLMPolicy(engine=FakeEngine(["Action: N"]), max_tokens=99)
    out = method.fit(params, tmp_path, seed=5)
    saved = read_json(out / "llm_policy.json")
    assert saved["config"]["max_steps_per_episode"] == params.llm_policy.max_steps_per_episode  # profile size
    assert saved["config"]["max_tokens"] == params.llm_policy.max_tokens  # the profile overrides the yaml
    assert saved["config"]["seed"] == 5 and saved["llm_config"]["model"] == params.annotator_llm.model
    policy = method.policy(out, "gnomish", params)
    assert policy.task == "You are now faced with the task of finding the Gnomish Mines."
    assert policy.cfg.max_tokens == params.llm_policy.max_tokens


@pytest.mark.llm
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_llm_policy_plays_real_steps(embedded_engine):
    """The embedded LLM acts in a real env for a few steps; whatever it answers, each step is an action."""
    cfg = default_config(max_steps_per_episode=2, max_tokens=24, history_len=2)
    policy = LLMAgentPolicy(embedded_engine, GOAL, cfg)
    envs = [make(seed=3), make(seed=4)]
    try:
        obs = [e.reset()[0] for e in envs]
        state = policy.initial_state(2)
        start = np.array([True, True])
        for _ in range(3):
            actions, state = policy.act(batch(obs), state, start)
            start[:] = False
            assert actions.shape == (2,) and all(0 <= a < len(ACTION_NAMES) for a in actions)
            obs = [e.step(int(a))[0] for e, a in zip(envs, actions)]
    finally:
        for e in envs:
            e.close()
    for stats in policy.stats:
        assert stats["llm_steps"] == 2 and stats["env_steps"] == 3
        assert stats["noop_after_cap"] + stats["auto_more"] == 1
        assert stats["prompt_tokens"] > 200 and 0 < stats["completion_tokens"] <= 2 * 24
        assert 0 <= stats["invalid_answers"] <= 2
    assert policy.model_id == embedded_engine.model_id


# --- direct answer mode (ci/small profiles) ------------------------------------------------------------
def test_direct_action_takes_the_argmax_label_among_the_top_logprobs():
    from baselines.llm_policy import DIRECT_LABELS, direct_action

    top = {" C": -1.5, "C": -2.0, "The": -0.1, "D": -0.7, "zz": -0.2}
    action, found = direct_action(top)
    assert action == DIRECT_LABELS.index("D") and found == {"C": -1.5, "D": -0.7}
    assert direct_action({"The": -0.1})[0] is None and direct_action(None)[0] is None


@pytest.mark.slow
def test_direct_mode_plays_varied_actions_with_the_embedded_model(embedded_engine):
    import collections

    cfg = default_config(answer_mode="direct", history_len=2)
    policy = LLMAgentPolicy(embedded_engine, GOAL, cfg)
    envs = [make(task="gnomish", seed=100 + i) for i in range(4)]
    obs = [e.reset(seed=100 + i)[0] for i, e in enumerate(envs)]
    state, start, chosen = policy.initial_state(4), np.ones(4, dtype=bool), collections.Counter()
    for _ in range(4):
        stacked = {k: np.stack([o[k] for o in obs]) for k in obs[0]}
        actions, state = policy.act(stacked, state, start)
        start[:] = False
        for i, a in enumerate(actions):
            chosen[int(a)] += 1
            o, _, term, trunc, _ = envs[i].step(int(a))
            obs[i] = envs[i].reset()[0] if term or trunc else o
    for e in envs:
        e.close()
    stats = policy.stats
    assert sum(s["llm_steps"] for s in stats) + sum(s["auto_more"] for s in stats) == 16
    assert sum(s["invalid_answers"] for s in stats) < sum(s["llm_steps"] for s in stats)  # labels are read
    assert len(chosen) > 1, f"the direct mode played one action only: {chosen}"
