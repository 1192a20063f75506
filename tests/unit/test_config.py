"""The config tree composes for every profile, and mistakes are errors that name the key."""
from dataclasses import dataclass

import pytest

from benchmark import config
from benchmark.env import EnvConfig


@pytest.mark.parametrize("profile", config.PROFILES)
def test_every_profile_composes_and_records_its_name(profile):
    cfg = config.compose(profile)
    assert cfg.profile == profile
    assert list(cfg.skills) == ["discoverer", "descender", "ascender", "worshipper", "merchant"]
    assert config.section(cfg, "env", EnvConfig).max_episode_steps == 10_000


@pytest.mark.parametrize("profile", config.PROFILES)
def test_env_section_is_what_make_plays_without_params(profile):
    """make() without params (tests, workers) plays the same game as a stage reading params.yaml."""
    from dataclasses import asdict

    from omegaconf import OmegaConf

    env = OmegaConf.to_container(config.compose(profile).env)
    assert env == asdict(config.defaults("env", EnvConfig))
    assert "mention_walls" not in env["options"]


def test_each_profile_writes_its_own_results_folder():
    """`make repro PROFILE=ci` must not overwrite the committed small results (both were results/)."""
    assert ({p: config.compose(p).results_dir for p in config.PROFILES}
            == {p: f"results/{p}" for p in config.PROFILES})
    assert config.compose("ci", ["results_dir=/tmp/x"]).results_dir == "/tmp/x"  # tests still point it away
    assert (config.REPO_ROOT / "results" / "small" / "summary.csv").is_file()  # the committed small results


def test_unknown_profile_is_rejected_with_the_choices():
    with pytest.raises(config.ConfigError, match="choose one of ci, small, paper"):
        config.compose("huge")


def test_typo_in_a_section_names_the_key():
    @dataclass
    class Tiny:
        lr: float = 1e-4

    cfg = config.compose("ci")
    cfg.tiny = {"lrr": 3}
    with pytest.raises(config.ConfigError, match="lrr"):
        config.section(cfg, "tiny", Tiny)


def test_params_round_trip_and_unchanged_file_is_not_rewritten(tmp_path):
    out = tmp_path / "params.yaml"
    cfg = config.compose("ci", ["root_seed=7"])
    assert config.write_params(cfg, out) is True
    assert config.write_params(cfg, out) is False
    assert config.load_params(out).root_seed == 7


def test_missing_params_file_says_how_to_make_it(tmp_path):
    with pytest.raises(config.ConfigError, match="python -m benchmark.config"):
        config.load_params(tmp_path / "nope.yaml")


@pytest.mark.parametrize("profile, skill_seeds, code_seeds", [
    ("ci", [0], [0]), ("small", [0, 1, 2], [0]), ("paper", [0, 1, 2], [0, 1, 2])])
def test_maestromotif_runs_cross_skill_seeds_with_the_codegen_seeds(profile, skill_seeds, code_seeds):
    """The paper's 9 seeds are 3 networks x 3 code seeds: 3 networks trained, not 9."""
    cfg = config.compose(profile)
    assert list(cfg.skill_seeds) == skill_seeds and list(cfg.code_seeds) == code_seeds
    assert list(cfg.codegen.code_seeds) == code_seeds  # one source: top-level code_seeds follows codegen
    assert list(config.compose(profile, ["codegen.code_seeds=[4,5]"]).code_seeds) == [4, 5]


def test_code_seeds_that_disagree_with_codegen_name_the_one_source():
    with pytest.raises(config.ConfigError, match="codegen.code_seeds is the one source"):
        config.compose("ci", ["code_seeds=[0,1]"])
    with pytest.raises(config.ConfigError, match="distinct seeds"):
        config.compose("ci", ["skill_seeds=[0,0]"])


def test_a_method_both_fitted_and_reference_is_an_error():
    with pytest.raises(config.ConfigError, match=r"\[.scripted.\] in both `fit_methods` and `reference_"):
        config.compose("small", ["fit_methods=[random,scripted]"])
