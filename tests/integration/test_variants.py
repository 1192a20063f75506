"""The small task variants on the real game: they build through make(task=...), keep the paper's Monk and
28 actions, their success check fires for the scripted reference and never for a do-nothing policy, and the
calibration stage repeats itself exactly."""
import math

import numpy as np
import pandas as pd
import pytest
from nle import nethack
from omegaconf import OmegaConf

from benchmark import variants
from benchmark.calibrate import CalibrateConfig, calibrate
from benchmark.scripted import ScriptedPolicy
from benchmark.config import compose, defaults
from benchmark.env import ACTION_INDEX, ACTIONS, make
from benchmark.evaluate import play
from benchmark.method import Policy
from benchmark.seeding import episode_seed
from benchmark.tasks import TASKS, load_task_config, wrap_task

pytestmark = pytest.mark.timeout(300)

VARIANTS = list(variants.VARIANTS)
CAP = 600  # steps per test episode: the scripted reference needs < 150 on every variant


def _play(task: str, policy, seeds: list[int], cap: int = CAP) -> list[dict]:
    records = []
    play(policy, lambda: make(task=task, max_episode_steps=cap), list(enumerate(seeds)), 1, records.append,
         progress=False)
    return records


class SearchForever(Policy):
    """Fake policy for the negative check: never moves, only searches."""

    def initial_state(self, num_envs):
        return None

    def act(self, obs, state, episode_start):
        return np.full(len(episode_start), ACTION_INDEX["SEARCH"]), state


def test_every_variant_is_registered_with_its_config():
    for name in VARIANTS:
        cfg = load_task_config(name)
        base = load_task_config(variants.VARIANTS[name].base_task)
        assert cfg.variant == "small" and base.variant == "full"
        assert (cfg.category, cfg.metric) == (base.category, base.metric)
        assert TASKS[name].category == TASKS[variants.VARIANTS[name].base_task].category
        assert variants.small_variant(variants.VARIANTS[name].base_task) is not None


@pytest.mark.parametrize("task", VARIANTS)
def test_variant_keeps_the_paper_character_and_actions(task):
    env = make(task=task, seed=7)
    obs, info = env.reset()
    try:
        assert env.action_space.n == len(ACTIONS) == 28
        assert "neutral male human Monk" in bytes(obs["message"]).decode("latin-1")
        assert env.unwrapped.variant == task
        assert int(obs["blstats"][nethack.NLE_BL_DEPTH]) == 1 and info["task"]["name"] == task
        # Our DL1 is a small hand-built room in the middle of the map, not a random level.
        rows = [r for r in env.unwrapped.screen_text().split("\n")[1:22] if r.strip()]
        assert 4 <= len(rows) <= 8, env.unwrapped.screen_text()
    finally:
        env.close()


@pytest.mark.parametrize("task", VARIANTS)
def test_scripted_reference_succeeds_and_doing_nothing_does_not(task):
    seeds = [episode_seed(0, "calibrate", task, episode=k) for k in range(2)]
    scripted = _play(task, ScriptedPolicy(task), seeds)
    assert any(r["value"] > 0 for r in scripted), scripted
    assert all(r["steps"] < 150 or r["metric"] == "count" for r in scripted if r["value"] > 0)
    idle = _play(task, SearchForever(), seeds[:1], cap=300)
    assert idle[0]["value"] == 0 and not idle[0]["success"], idle


def test_gnomish_small_main_staircase_is_not_the_mines():
    """Taking DL2's far staircase (the main dungeon) must not count: the tracker is the unchanged one."""
    from benchmark.scripted import _STEPS, _bfs

    env = make(task="gnomish_small", seed=3, max_episode_steps=300)
    obs, info = env.reset()
    policy = ScriptedPolicy("gnomish_small")
    state = policy.initial_state(1)
    start = np.ones(1, dtype=bool)
    far = None
    for _ in range(300):
        bl = obs["blstats"]
        hero = (int(bl[nethack.NLE_BL_X]), int(bl[nethack.NLE_BL_Y]))
        if int(bl[nethack.NLE_BL_DEPTH]) == 2:  # on the fork level: walk to the farthest down staircase
            if far is None:
                stairs = np.argwhere(obs["glyphs"] == nethack.GLYPH_CMAP_OFF + 24)
                assert len(stairs) == 2, env.unwrapped.screen_text()
                far = max(((int(x), int(y)) for y, x in stairs), key=lambda p: abs(p[0] - hero[0]))
            action = ACTION_INDEX["DOWN" if hero == far else _STEPS[_bfs(obs["glyphs"], hero, {far})]]
        else:
            actions, state = policy.act({k: v[None] for k, v in obs.items()}, state, start)
            start[:] = False
            action = int(actions[0])
        obs, _, terminated, truncated, info = env.step(action)
        if int(obs["blstats"][nethack.NLE_BL_DEPTH]) == 3 or terminated or truncated:
            break
    env.close()
    assert int(obs["blstats"][nethack.NLE_BL_DNUM]) == 0 and int(obs["blstats"][nethack.NLE_BL_DEPTH]) == 3
    assert not info["task"]["success"] and not terminated


def test_wrap_task_on_a_plain_env_is_refused():
    env = wrap_task(make(seed=0), "buc_small")
    env.reset()
    with pytest.raises(variants.VariantError, match="make\\(task='buc_small'\\)"):
        env.step(ACTION_INDEX["SEARCH"])
    env.close()


def test_a_broken_des_file_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "broken.des").write_text('MAZE: "mmbroken", \' \'\nOBJECT: (\'?\', random), (1,2,3,4)\n')
    monkeypatch.setattr(variants, "LEVELS_DIR", tmp_path)
    broken = variants.Variant("broken_small", "buc", ("broken",))
    with pytest.raises(variants.VariantError, match="lev_comp on benchmark/levels/broken.des failed"):
        variants.build_nhdat(broken, tmp_path / "nhdat")


def calibrate_config(**overrides) -> CalibrateConfig:
    """conf/calibrate/default.yaml's settings, with random vs scripted only, one env at a time."""
    fixed = {"methods": ["random", "scripted"], "trained": [], "num_envs": 1}
    return defaults("calibrate", CalibrateConfig, **{**fixed, **overrides})


def _params(tmp_path):
    cfg = compose("ci", [f"data_dir={tmp_path}/data", f"results_dir={tmp_path}/results"])
    return cfg


def test_calibration_stage_is_repeatable(tmp_path):
    tasks = ["delphi_small", "buc_small"]
    cfg = calibrate_config(tasks=tasks, episodes=3, max_episode_steps=200)
    first = calibrate(_params(tmp_path / "a"), cfg, progress=False)
    second = calibrate(_params(tmp_path / "b"), cfg, progress=False)
    columns = ["task", "method", "n", "mean", "se", "mean_steps", "first_episode_seed"]
    pd.testing.assert_frame_equal(first[columns], second[columns])
    assert (first["n"] == 3).all()
    scripted = first.set_index(["task", "method"])["mean"]
    assert scripted[("delphi_small", "scripted")] == 1.0 and scripted[("buc_small", "scripted")] >= 3
    csv = pd.read_csv(tmp_path / "a" / "results" / "calibration.csv")
    assert set(csv["task"]) == set(tasks)
    table = (tmp_path / "a" / "results" / "calibration.md").read_text()
    assert "| delphi_small" in table and "± " in table
    # A rerun resumes: nothing is played again, the numbers stay, the throughput of the first run is kept.
    episodes = tmp_path / "a" / "data" / "calibrate" / "random" / "buc_small" / "episodes.jsonl"
    lines = episodes.read_text()
    again = calibrate(_params(tmp_path / "a"), cfg, progress=False)
    pd.testing.assert_frame_equal(first[columns + ["steps_per_s"]], again[columns + ["steps_per_s"]])
    assert episodes.read_text() == lines


def test_calibration_rejects_a_full_task(tmp_path):
    from benchmark.config import ConfigError

    with pytest.raises(ConfigError, match="not small variants"):
        calibrate(_params(tmp_path), calibrate_config(tasks=["gnomish"], episodes=1), progress=False)
    with pytest.raises(ConfigError, match="scripted reference plays only"):
        ScriptedPolicy("gnomish")


def test_ci_profile_has_a_calibrate_section():
    cfg = OmegaConf.to_object(compose("ci").calibrate)
    assert cfg["tasks"] == VARIANTS and cfg["episodes"] <= 10


def test_comparison_table_marks_a_variant_where_a_trained_method_beats_the_baseline():
    """The calibration's verdicts on hand-made numbers (FAKE rows: the arithmetic is under test)."""
    from benchmark.calibrate import comparison_table

    rows = pd.DataFrame([
        {"task": t, "category": "navigation", "metric": "success", "method": m, "mean": mean, "se": se,
         "n": 40}
        for t, m, mean, se in (("delphi_small", "random", 0.0, 0.0), ("delphi_small", "scripted", 1.0, 0.0),
                               ("delphi_small", "task_ppo", 0.575, 0.079),
                               ("buc_small", "random", 0.04, 0.028), ("buc_small", "scripted", 3.4, 0.06),
                               ("buc_small", "task_ppo", 0.10, 0.043))])
    table = comparison_table(rows, "scripted", "random", trained=["task_ppo"]).set_index("task")
    assert table.loc["delphi_small", "z task_ppo"] == 7.3 and table.loc["delphi_small", "trained_useful"]
    assert table.loc["buc_small", "z task_ppo"] == 1.2 and not table.loc["buc_small", "trained_useful"]
    assert table.loc["buc_small", "useful"]
    assert table.loc["buc_small", "z"] == round(3.36 / math.hypot(0.06, 0.028), 1)
    assert "z task_ppo" not in comparison_table(rows, "scripted", "random").columns


def test_a_climbing_scripted_agent_goes_back_up_but_never_leaves_the_dungeon():
    """`climb` (collect's ascents): with climb=1 the navigation agent explores each new level below level 1 a
    while, takes its up stairs back to level 1, and goes down again; it never goes up from level 1."""
    seen = {}
    for climb in (0.0, 1.0):
        policy = ScriptedPolicy("delphi_small", climb=climb)
        env = make(task="delphi_small", seed=11, max_episode_steps=800, track=False)
        obs, _ = env.reset()
        state, start = policy.initial_state(1), np.ones(1, dtype=bool)
        depths = [1]
        for _ in range(800):
            actions, state = policy.act({k: v[None] for k, v in obs.items()}, state, start)
            start[:] = False
            on_level_1 = int(obs["blstats"][nethack.NLE_BL_DEPTH]) == 1
            assert not (on_level_1 and actions[0] == ACTION_INDEX["UP"]), "UP on level 1 leaves the dungeon"
            obs, _, terminated, truncated, _ = env.step(int(actions[0]))
            if not obs["blstats"].any():  # NLE's blank observation after a death
                break
            depth = int(obs["blstats"][nethack.NLE_BL_DEPTH])
            if depth != depths[-1]:
                depths.append(depth)
            if terminated or truncated:
                break
        env.close()
        ups = [a for a, b in zip(depths[1:], depths) if a < b]
        seen[climb] = (depths, len(ups))
    assert seen[0.0][1] == 0, seen  # the reference agent only descends
    depths, ups = seen[1.0]
    assert ups >= 2 and depths[:3] == [1, 2, 1], seen  # back to level 1 from level 2, then down again
    assert max(depths) >= 3, seen


def test_climb_outside_zero_one_is_refused():
    from benchmark.config import ConfigError

    with pytest.raises(ConfigError, match=r"climb must be within \[0, 1\], got 1.5"):
        ScriptedPolicy("delphi_small", climb=1.5)
