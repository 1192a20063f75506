"""The evaluate stage on the real NLE with the real task trackers and the random method."""
import json

import pytest

from benchmark import config, evaluate
from benchmark.fit import fit


def ci_params(tmp_path, *overrides):
    return config.compose("ci", ["methods=[random]", f"data_dir={tmp_path}/data",
                                 f"results_dir={tmp_path}/results", "evaluate.episodes=3",
                                 "evaluate.max_episode_steps=150", *overrides])


def run(params, task="gnomish", seed=0):
    fit("random", seed, params)
    out = evaluate.evaluate("random", task, seed, params, progress=False)
    return out, evaluate.finished_records(out)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One evaluation of random on gnomish, 3 episodes, shared by the tests below."""
    tmp = tmp_path_factory.mktemp("reference")
    return run(ci_params(tmp))


@pytest.mark.timeout(300)
def test_records_have_every_field_and_the_output_has_provenance(reference):
    out, records = reference
    assert [r["episode"] for r in records] == [0, 1, 2]
    for r in records:
        for key in ("success", "value", "steps", "return", "score", "max_depth", "max_xlvl", "end_reason",
                    "episode_seed", "method", "task", "seed", "profile", "category", "metric"):
            assert key in r, key
        assert r["category"] == "navigation" and r["profile"] == "ci" and 1 <= r["steps"] <= 150
        assert r["end_reason"] in {"success", "death", "step_cap", "ended"}
    prov = json.loads((out / "provenance.json").read_text())
    for key in ("method", "task", "seed", "profile", "llm_models", "nle_version", "git_describe", "episodes"):
        assert key in prov, key
    assert prov["episodes"] == 3 and prov["task_title"] == "Gnomish Mines"
    assert json.loads((out / "summary.json").read_text())["episodes"] == 3
    # a plain-seed method: no code seed, and nothing beyond its artefact to name (Policy.provenance is empty)
    assert out.name == "seed0" and all("code_seed" not in r and "policy_provenance" not in r for r in records)


@pytest.mark.timeout(300)
def test_the_same_evaluation_twice_gives_identical_records(reference, tmp_path):
    _, again = run(ci_params(tmp_path))
    assert again == reference[1]


@pytest.mark.timeout(300)
def test_records_do_not_depend_on_the_number_of_envs(reference, tmp_path):
    _, single = run(ci_params(tmp_path, "evaluate.num_envs=1"))
    assert single == reference[1]


@pytest.mark.timeout(300)
def test_resume_after_a_partial_file_skips_finished_episodes(reference, tmp_path, caplog):
    params = ci_params(tmp_path)
    fit("random", 0, params)
    out = evaluate.output_dir(params, evaluate.EvaluateConfig(**params.evaluate), "random", "gnomish", 0)
    out.mkdir(parents=True)
    lines = [json.dumps(r, sort_keys=True) + "\n" for r in reference[1]]
    # a killed writer left episode 1 whole and episode 2 half written
    (out / evaluate.EPISODES_FILE).write_text(lines[1] + lines[2][:40])
    caplog.set_level("INFO")
    evaluate.evaluate("random", "gnomish", 0, params, progress=False)
    assert "2 episodes to play, 1 already done" in caplog.text
    assert evaluate.finished_records(out) == reference[1]


@pytest.mark.timeout(300)
def test_records_from_other_settings_are_dropped_not_pooled(reference, tmp_path):
    params = ci_params(tmp_path, "evaluate.max_episode_steps=40")
    out, _ = run(params)
    stale = [{**r, "run_key": "from-another-config"} for r in reference[1]]
    (out / evaluate.EPISODES_FILE).write_text("".join(json.dumps(r) + "\n" for r in stale))
    _, records = run(params)
    assert len(records) == 3 and all(r["steps"] <= 40 for r in records)


def test_unknown_method_and_task_are_clear_errors(tmp_path):
    params = ci_params(tmp_path)
    with pytest.raises(config.ConfigError, match="conf/method/nope.yaml"):
        evaluate.evaluate("nope", "gnomish", 0, params)
    with pytest.raises(config.ConfigError, match="not in the params' task list"):
        evaluate.evaluate("random", "mars", 0, params)


def test_missing_artefact_says_which_stage_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="training stage"):
        evaluate.evaluate("random", "gnomish", 0, ci_params(tmp_path))


def test_a_code_seed_for_a_method_without_code_seeds_is_a_clear_error(tmp_path):
    params = ci_params(tmp_path)
    fit("random", 0, params)
    with pytest.raises(config.ConfigError, match="has no code seeds.*drop --code-seed"):
        evaluate.evaluate("random", "gnomish", 0, params, code_seed=0)


@pytest.mark.timeout(120)
def test_records_carry_the_highest_experience_level_and_depth_for_progression():
    """A real game in wizard mode: quaff a potion of gain level (XL 2), level-teleport to depth 3, let the
    step cap end the episode; the record keeps both maxima and BALROG's progression follows from them."""
    from benchmark import playback, progression
    from benchmark.env import ACTION_INDEX, make
    from tests.fixtures.wizard import WIZARD_SEED, base, message, teleport_to, wish

    env = make(task="gnomish", seed=WIZARD_SEED, wizard=True, max_episode_steps=3)
    try:
        slot = playback._Slot(env)
        slot.start(0, WIZARD_SEED)
        base(env).send_keys(b"q" + wish(env, "blessed potion of gain level").encode())
        assert "experience level 2" in message(env)
        teleport_to(env, 3)
        record = None
        while record is None:
            record = slot.step(ACTION_INDEX["WAIT"])
    finally:
        env.close()
    assert record["end_reason"] == "step_cap" and record["max_xlvl"] == 2 and record["max_depth"] == 3
    assert progression.progression(record["max_depth"], record["max_xlvl"]) == 0.01847840456172601  # "Xp:2"


@pytest.mark.timeout(300)
def test_envs_that_finish_together_start_only_the_episodes_left(tmp_path):
    """Every env hits the step cap on the same step while one episode is left: one env takes it, the other
    stops. Before, both were restarted from the one-episode queue and the run died (pop from empty list)."""
    params = ci_params(tmp_path, "evaluate.num_envs=2", "evaluate.max_episode_steps=5")
    _, records = run(params)
    assert [r["episode"] for r in records] == [0, 1, 2]
    assert [r["end_reason"] for r in records] == ["step_cap"] * 3
