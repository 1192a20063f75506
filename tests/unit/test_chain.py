"""maestromotif.chain: each MaestroMotif method's annotator and folders, and that every other place naming
them (conf/method files, dvc.yaml) agrees with it."""
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from benchmark.config import REPO_ROOT, ConfigError, compose, defaults
from benchmark.evaluate import EvaluateConfig, build_method, method_artefact, method_spec
from maestromotif import chain

SKILLS = ("discoverer", "descender", "ascender", "worshipper", "merchant")


@pytest.fixture(scope="module")
def params():
    return compose("small", ["data_dir=/d"])


def test_each_method_has_its_own_folders_and_maestromotif_keeps_the_old_ones(params):
    assert chain.label_dir(params, "maestromotif", "descender") == Path("/d/labels/descender")
    assert chain.reward_root(params, "maestromotif") == Path("/d/reward")
    assert chain.run_dir(params, "maestromotif", 2) == Path("/d/fit/maestromotif/seed2")
    assert chain.label_dir(params, "maestromotif_oracle", "descender") == Path("/d/labels_oracle/descender")
    assert chain.reward_root(params, "maestromotif_oracle") == Path("/d/reward_oracle")
    assert chain.run_dir(params, "maestromotif_oracle", 2) == Path("/d/fit/maestromotif_oracle/seed2")
    for method in chain.METHODS:  # the reward stage writes what the skill training reads
        assert chain.training_reward_root(params, method) == chain.reward_root(params, method)


def test_the_oracle_method_is_always_labelled_by_the_rules(params):
    assert chain.annotator(params, "maestromotif") == "llm"
    assert chain.annotator(params, "maestromotif_oracle") == "oracle"
    rules = compose("small", ["annotate.annotator=oracle"])
    assert chain.annotator(rules, "maestromotif") == "oracle"


def test_the_method_files_name_the_folders_the_stages_write(params):
    cfg = defaults("evaluate", EvaluateConfig)
    for method in chain.METHODS:
        spec = method_spec(method)
        built = build_method(method)
        assert built.name == method  # fit() trains on this method's reward models
        artefact = method_artefact(spec, built, method, "gnomish", 1, params, cfg)
        assert artefact == chain.run_dir(params, method, 1)
        assert Path(spec.reward_models.format(data_dir=params.data_dir)) == chain.reward_root(params, method)
    assert method_spec("maestromotif_oracle").paper_label is None  # not a method of the paper


def test_dvc_yaml_outputs_are_the_chain_folders():
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    params = compose("small")

    def outs(stage):
        listed = stage.get("outs") or stage["do"]["outs"]  # a foreach stage lists them under `do`
        return [next(iter(o)) if isinstance(o, dict) else o for o in listed]

    for method, annotate, reward, train in (
            ("maestromotif", "annotate", "reward", "train_skills"),
            ("maestromotif_oracle", "annotate_oracle", "reward_oracle", "train_skills_oracle")):
        labels = {str(chain.label_dir(params, method, s)) for s in SKILLS}
        assert labels <= set(outs(stages[annotate])), annotate
        assert outs(stages[reward]) == [f"{chain.reward_root(params, method)}/${{item}}"]
        assert outs(stages[train]) == [f"{chain.fit_root(params, method)}"]  # every skill seed's run dir
        assert f"{chain.reward_root(params, method)}" in stages[train]["deps"]


def with_key(params, key: str, value: str):
    out = params.copy()
    OmegaConf.update(out, key, value)
    return out


def test_a_template_without_suffix_is_refused_for_the_oracle_only(params):
    shared = with_key(params, "reward.out_dir", "{data_dir}/models")
    assert chain.reward_root(shared, "maestromotif") == Path("/d/models")
    with pytest.raises(ConfigError, match=r"reward.out_dir=.*has no \{suffix\}"):
        chain.reward_root(shared, "maestromotif_oracle")
    elsewhere = with_key(params, "rl.reward_dir", "/tmp/models")  # as the training tests point it
    assert chain.training_reward_root(elsewhere, "maestromotif") == Path("/tmp/models")
    with pytest.raises(ConfigError, match="rl.reward_dir"):
        chain.training_reward_root(elsewhere, "maestromotif_oracle")
    typo = with_key(params, "reward.labels", "{data_dir}/labels{sufix}/{skill}")
    with pytest.raises(ConfigError, match="unknown placeholder"):
        chain.label_dir(typo, "maestromotif", "descender")


def test_an_unknown_method_names_the_choices():
    with pytest.raises(ConfigError, match="did you mean 'maestromotif_oracle'"):
        chain.chain("maestromotif_orcale")
