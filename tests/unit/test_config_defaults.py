"""conf/ is the one source of every value: the section dataclasses are schemas without defaults, each field
has its value in the section's conf file, and a params file without a key names it and the file to fix."""
from __future__ import annotations

import dataclasses
import typing

import pytest
from omegaconf import OmegaConf

from benchmark import config
from benchmark.aggregate import ReportConfig
from benchmark.calibrate import CalibrateConfig
from benchmark.env import EnvConfig
from benchmark.evaluate import EvaluateConfig
from benchmark.probes import RegressionConfig
from maestromotif.annotate import AnnotateConfig
from maestromotif.codegen import CodegenConfig
from maestromotif.data.collect import CollectConfig, SourceConfig
from maestromotif.data.pairs import PairsConfig
from maestromotif.reward.intrinsic import IntrinsicConfig
from maestromotif.reward.train import RewardConfig
from maestromotif.rl.train import RLConfig
from maestromotif.reward_audit import RewardAuditConfig
from maestromotif.skill_behaviour import SkillBehaviourConfig

# params key -> schema ("" = the top-level keys, conf/config.yaml)
SECTIONS = {"": config.RootConfig, "env": EnvConfig, "collect": CollectConfig, "pairs": PairsConfig,
            "annotate": AnnotateConfig, "reward": RewardConfig, "codegen": CodegenConfig, "rl": RLConfig,
            "evaluate": EvaluateConfig, "calibrate": CalibrateConfig, "skill_behaviour": SkillBehaviourConfig,
            "reward_audit": RewardAuditConfig,
            "regression": RegressionConfig, "report": ReportConfig}
# list items: a conf file cannot give their keys defaults, so their schema keeps them
LIST_ITEMS = (SourceConfig,)


def _nested(schema: type) -> dict[str, type]:
    """The dataclass-typed fields of `schema` (reward.model, reward.intrinsic)."""
    hints = typing.get_type_hints(schema)
    return {f.name: hints[f.name] for f in dataclasses.fields(schema)
            if dataclasses.is_dataclass(hints[f.name])}


def _walk(schema: type, key: str):
    """(dotted key, schema) of `schema` and every dataclass nested in it."""
    yield key, schema
    for name, inner in _nested(schema).items():
        yield from _walk(inner, f"{key}.{name}" if key else name)


def _conf_node(key: str):
    top, *rest = key.split(".")
    node = OmegaConf.load(config.conf_file(top))
    for part in rest:
        node = node[part]
    return node


CASES = [pair for key, schema in SECTIONS.items() for pair in _walk(schema, key)]


@pytest.mark.parametrize("key, schema", CASES, ids=[k or "root" for k, _ in CASES])
def test_every_schema_field_has_no_default_and_a_value_in_conf(key, schema):
    assert schema not in LIST_ITEMS
    with_default = [f.name for f in dataclasses.fields(schema)
                    if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING]
    assert not with_default, f"{schema.__name__} fields with a default (move it to conf/): {with_default}"
    node = _conf_node(key)
    absent = [f.name for f in dataclasses.fields(schema) if f.name not in node]
    assert not absent, f"{config.conf_file(key)} has no {absent} (key {key or 'top level'})"


@pytest.mark.parametrize("key, schema", SECTIONS.items(), ids=[k or "root" for k in SECTIONS])
def test_defaults_are_conf_values(key, schema):
    """defaults() gives conf/'s values, interpolations resolved (rl.codegen_dir: ${data_dir}/codegen)."""
    cfg = config.defaults(key, schema)
    assert isinstance(cfg, schema)
    if key == "rl":
        assert cfg.codegen_dir == "data/codegen"


def test_defaults_take_overrides_that_replace_conf_values():
    cfg = config.defaults("regression", RegressionConfig, episodes=3, probes={"only": {"_target_": "x.Y"}})
    assert cfg.episodes == 3 and cfg.probes == {"only": {"_target_": "x.Y"}}  # replaced, not merged
    nested = config.defaults("reward.intrinsic", IntrinsicConfig, llm_coef=0.5)  # a nested section
    assert nested == dataclasses.replace(config.defaults("reward", RewardConfig).intrinsic, llm_coef=0.5)
    with pytest.raises(config.ConfigError, match="learnin_rate"):
        config.defaults("rl", RLConfig, learnin_rate=1.0)


def test_a_params_file_without_a_key_names_it_and_the_conf_file(tmp_path):
    cfg = config.compose("ci")
    del cfg.rl["gamma"]
    del cfg.reward.model["hidden_dim"]
    config.write_params(cfg, tmp_path / "params.yaml")
    params = config.load_params(tmp_path / "params.yaml")
    with pytest.raises(config.ConfigError) as e:
        config.section(params, "rl", RLConfig)
    assert "rl.gamma" in str(e.value) and "conf/rl/default.yaml" in str(e.value)
    assert "regenerate params.yaml" in str(e.value)
    with pytest.raises(config.ConfigError, match=r"reward\.model\.hidden_dim.*conf/reward/default\.yaml"):
        config.section(params, "reward", RewardConfig)


def test_a_params_file_without_a_top_level_key_names_conf_config_yaml():
    cfg = config.compose("ci")
    del cfg["fit_jobs"]
    with pytest.raises(config.ConfigError, match=r"fit_jobs.*conf/config\.yaml"):
        config.root(cfg)


@pytest.mark.parametrize("method, path", [("motif", ["trainer"]), ("task_ppo", ["trainer"]),
                                          ("score_ppo", ["trainer"]),
                                          ("embedding_similarity", ["trainer", "settings"])])
def test_every_method_file_gives_every_trainer_setting(method, path):
    """TrainerConfig is a schema too: each trained baseline's conf/method file holds its values."""
    from baselines.appo import TrainerConfig

    assert all(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
               for f in dataclasses.fields(TrainerConfig))
    node = OmegaConf.load(config.CONF_DIR / "method" / f"{method}.yaml")
    for part in path:
        node = node[part]
    assert sorted(TrainerConfig.__dataclass_fields__) == sorted(k for k in node if k != "_target_")


def test_the_llm_policy_settings_live_in_its_method_file():
    """LLMPolicyConfig is a schema: conf/method/llm_policy.yaml holds every value; default_config reads it."""
    from baselines.llm_policy import LLMPolicyConfig, default_config

    assert not any(f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
                   for f in dataclasses.fields(LLMPolicyConfig))
    node = OmegaConf.load(config.CONF_DIR / "method" / "llm_policy.yaml")
    settings = sorted(k for k in node if k not in ("_target_", "benchmark"))
    assert sorted(LLMPolicyConfig.__dataclass_fields__) == settings
    assert default_config(max_tokens=7).max_tokens == 7
    assert default_config().max_tokens == node.max_tokens


@pytest.mark.parametrize("path", sorted((config.CONF_DIR / "method").glob("*.yaml")), ids=lambda p: p.stem)
def test_no_constructor_default_repeats_a_method_file_value(path):
    """A value in conf/method/<name>.yaml is the only one: the `_target_` it is passed to (the method class,
    or a `_partial_` trainer inside it) gives that argument no default of its own."""
    import importlib
    import inspect

    def check(node, where: str) -> None:
        target = node.get("_target_") if isinstance(node, dict) else None
        if target:
            module, _, name = target.rpartition(".")
            params = inspect.signature(getattr(importlib.import_module(module), name)).parameters
            repeated = [k for k in node if k in params and params[k].default is not inspect.Parameter.empty]
            assert not repeated, f"{path.name}{where}: {target} repeats a default for {repeated}"
        if isinstance(node, dict):
            for key, value in node.items():
                if key != "benchmark":
                    check(value, f"{where}.{key}")

    check(OmegaConf.to_container(OmegaConf.load(path)), "")
