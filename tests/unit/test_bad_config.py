"""Bad configuration gets an error that names the key, file or name, and the fix (no NLE needed).

The data-file cases (corrupt chunks, checkpoints, NaN rewards, empty pair sets) are in
tests/integration/test_bad_input.py."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from benchmark.config import ConfigError, compose, load_params, section, write_params


# --- a params typo ----------------------------------------------------------------------------------
def test_override_typo_names_the_key_and_the_closest_valid_key():
    with pytest.raises(ConfigError) as e:
        compose("ci", ["rl.learnin_rate=1"])
    assert "rl.learnin_rate" in str(e.value) and "did you mean 'learning_rate'" in str(e.value)


def test_params_file_typo_names_the_dotted_key_and_the_closest_valid_key(tmp_path):
    """A hand-edited params.yaml (or a `+key=` override): the section's dataclass rejects the key."""
    from maestromotif.reward.train import RewardConfig
    from maestromotif.rl.train import RLConfig

    cfg = compose("ci")
    cfg.rl = OmegaConf.merge(cfg.rl, {"learnin_rate": 1})
    cfg.reward.model = OmegaConf.merge(cfg.reward.model, {"use_difstats": False})
    write_params(cfg, tmp_path / "params.yaml")
    params = load_params(tmp_path / "params.yaml")
    with pytest.raises(ConfigError, match=r"rl\.learnin_rate .*did you mean 'learning_rate'"):
        section(params, "rl", RLConfig)
    with pytest.raises(ConfigError, match=r"reward\.model\.use_difstats .*did you mean 'use_diffstats'"):
        section(params, "reward", RewardConfig)


# --- unknown method, task or skill names --------------------------------------------------------------
def test_unknown_method_lists_the_methods():
    from benchmark.evaluate import build_method

    with pytest.raises(ConfigError) as e:
        build_method("scor_ppo")
    assert "did you mean 'score_ppo'" in str(e.value) and "'task_ppo'" in str(e.value)


def test_unknown_task_lists_the_tasks():
    from benchmark.tasks import TaskError, load_task_config

    with pytest.raises(TaskError) as e:
        load_task_config("gnomsh")
    assert "did you mean 'gnomish'" in str(e.value) and "delphi" in str(e.value)


def test_task_outside_the_params_task_list_lists_them(tmp_path):
    from benchmark.evaluate import evaluate

    params = compose("ci", [f"data_dir={tmp_path}", "tasks=[gnomish,delphi]"])
    expected = r"'delphy' is not in .*\['gnomish', 'delphi'\].*did you mean 'delphi'"
    with pytest.raises(ConfigError, match=expected):
        evaluate("random", "delphy", 0, params, progress=False)


def test_unknown_skill_in_the_params_lists_the_skills(tmp_path):
    """The old code accepted any name in `skills` (it failed later, looking for its reward model). The stages
    that use the skills check them (the benchmark layer knows no method's skills): skill training refuses
    before anything starts, and so does the reward stage's --skill all."""
    from maestromotif.reward.train import main
    from maestromotif.rl.train import train

    params = compose("ci", [f"data_dir={tmp_path}", "skills=[discoverer,descendr]"])
    for run in (lambda: train(params, 0),
                lambda: (write_params(params, tmp_path / "params.yaml"),
                         main(["--skill", "all", "--params", str(tmp_path / "params.yaml")]))):
        with pytest.raises(ConfigError) as e:
            run()
        assert "'descendr'" in str(e.value) and "did you mean 'descender'" in str(e.value)
    assert not any(tmp_path.rglob("train.log"))


def test_reward_stage_unknown_skill_lists_the_skills(tmp_path):
    from maestromotif.reward.train import main

    params = compose("ci", [f"data_dir={tmp_path}"])
    write_params(params, tmp_path / "params.yaml")
    with pytest.raises(ConfigError) as e:
        main(["--skill", "mercant", "--params", str(tmp_path / "params.yaml")])
    assert "did you mean 'merchant'" in str(e.value) and "discoverer" in str(e.value)


# --- a method file whose _target_ does not import -----------------------------------------------------
def test_method_yaml_with_a_missing_target_names_the_file_and_the_target(tmp_path, monkeypatch):
    from benchmark.evaluate import METHOD_DIRS_ENV, build_method

    (tmp_path / "broken.yaml").write_text("_target_: nowhere.Missing\nbenchmark: {group: reference}\n")
    monkeypatch.setenv(METHOD_DIRS_ENV, str(tmp_path))
    with pytest.raises(ConfigError) as e:
        build_method("broken")
    assert str(tmp_path / "broken.yaml") in str(e.value) and "nowhere.Missing" in str(e.value)
