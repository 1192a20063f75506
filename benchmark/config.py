"""The pipeline's parameters.

`conf/` is a Hydra config tree; composing it for one profile gives `params.yaml`, the file DVC tracks
by dotted keys and every stage reads. conf/ holds every value; each module validates the section it uses
against its own dataclass, a schema without defaults (`section(cfg, "reward", RewardConfig)`), so a typo,
a wrong type or a missing key is an error that names the key, never a silent default. Code that runs
without params (tests, workers) gets conf/'s values from `defaults("reward", RewardConfig)`.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "conf"
PROFILES = ("ci", "small", "paper")
PARAMS_ENV = "MM_PARAMS"  # points stages and tests at another params file

T = TypeVar("T")


class ConfigError(ValueError):
    """A parameter file or override is wrong; the message says which key and how to fix it."""


def did_you_mean(name: str, choices: Sequence[str]) -> str:
    """' (did you mean X?)' for the closest of `choices` to a mistyped `name`, or '' when none is close."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _schema_at(schema: type, path: Sequence[str]) -> type | None:
    """The dataclass of the nested field at `path` under `schema`, or None if it is not a dataclass."""
    import dataclasses
    import typing

    for part in path:
        if not dataclasses.is_dataclass(schema):
            return None
        hints = typing.get_type_hints(schema)
        if part not in hints:
            return None
        schema = hints[part]
    return schema if dataclasses.is_dataclass(schema) else None


def _unknown_key_message(key: str, schema: type, e: OmegaConfBaseException) -> str | None:
    """For an unknown key in section `key`: the full dotted key, the closest valid key and the fix."""
    import dataclasses

    full = str(getattr(e, "full_key", "") or "")
    if "not in" not in str(e) or not full:
        return None
    *parents, leaf = full.split(".")
    owner = _schema_at(schema, parents)
    if owner is None:
        return None
    valid = [f.name for f in dataclasses.fields(owner)]
    dotted = ".".join([key, *parents])
    return (f"unknown key {dotted}.{leaf} in the params{did_you_mean(leaf, valid)}; the keys of {dotted} are "
            f"{valid}. Fix the key in conf/ (or the override) and regenerate params.yaml")


def _bad_override_message(overrides: Sequence[str], profile: str) -> str | None:
    """For an override of a key that conf/ does not have: which one, and the closest key it has."""
    try:
        base = compose(profile)
    except ConfigError:
        return None
    for item in overrides:
        key = item.split("=", 1)[0]
        if "=" not in item or key[:1] in "+~":
            continue
        *parents, leaf = key.split(".")
        node = base
        for part in parents:
            node = node.get(part) if isinstance(node, DictConfig) else None
        if isinstance(node, DictConfig) and leaf not in node:
            where = ".".join(parents) or "the top level"
            return (f"override {item!r}: conf/ has no key {key}{did_you_mean(leaf, list(node.keys()))}; "
                    f"the keys of {where} are {list(node.keys())}")
    return None


@dataclass
class RootConfig:
    """Keys at the top of params.yaml (values and their meaning: conf/config.yaml)."""

    profile: str
    root_seed: int
    seeds: list[int]
    skills: list[str]
    tasks: list[str]
    methods: list[str]
    fit_methods: list[str]
    reference_methods: list[str]
    skill_seeds: list[int]
    code_seeds: list[int]
    data_dir: str
    results_dir: str
    fit_jobs: int


def compose(profile: str = "small", overrides: Sequence[str] = ()) -> DictConfig:
    """Compose conf/config.yaml for `profile` with Hydra overrides (e.g. ``["rl.lr=3e-4"]``)."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    error: Exception | None = None
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        try:
            cfg = hydra_compose("config", overrides=[f"profile={profile}", *overrides])
        except Exception as e:  # hydra raises several types; all mean a bad override
            error = e
    if error is not None:  # outside the Hydra context: naming the bad key composes conf/ once more
        hint = _bad_override_message(overrides, profile) if overrides else None
        fallback = f"cannot compose conf/ with overrides {list(overrides)}: {error}"
        raise ConfigError(hint or fallback) from error
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))  # plain data, as params.yaml is
    root(cfg)
    return cfg


def params_path(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get(PARAMS_ENV) or REPO_ROOT / "params.yaml")


def write_params(cfg: DictConfig, path: str | os.PathLike | None = None) -> bool:
    """Write `cfg` as params.yaml; return whether the file changed (an unchanged file keeps DVC quiet)."""
    from benchmark.io import write_text

    target = params_path(path)
    text = "# Generated from conf/ by `python -m benchmark.config`; edit conf/, not this file.\n"
    text += OmegaConf.to_yaml(cfg, resolve=True)
    if target.exists() and target.read_text() == text:
        return False
    write_text(target, text)
    return True


def load_params(path: str | os.PathLike | None = None) -> DictConfig:
    target = params_path(path)
    if not target.exists():
        raise ConfigError(
            f"{target} does not exist: generate it with `python -m benchmark.config --profile small`"
        )
    cfg = OmegaConf.load(target)
    root(cfg)
    return cfg


def stage_main(stage, description: str, argv: Sequence[str] | None = None) -> Any:
    """The command line of a stage whose only argument is the params file: `python -m <module> [--params
    FILE]` (default: $MM_PARAMS or params.yaml); sets up logging, then runs stage(params)."""
    import argparse

    from benchmark.logs import setup_logging

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default=None, help="params file (default: $MM_PARAMS or params.yaml)")
    args = parser.parse_args(argv)
    setup_logging()
    return stage(load_params(args.params))


def conf_file(key: str) -> Path:
    """The file that holds the values of section `key` (its first part): conf/<section>/default.yaml, or
    conf/config.yaml for the top-level keys (key "")."""
    top = key.split(".")[0]
    return CONF_DIR / top / "default.yaml" if top else CONF_DIR / "config.yaml"


def missing_message(key: str, missing: Sequence[str]) -> str:
    """What to do about keys of section `key` that have no value in the params: the file to add them to."""
    keys = ", ".join(f"{key}.{m}" if key else m for m in missing)
    where = conf_file(key).relative_to(REPO_ROOT)
    return (f"the params have no value for {keys}: add {'it' if len(missing) == 1 else 'them'} to {where}, "
            "then regenerate params.yaml (`python -m benchmark.config`)")


def _checked(node: Any, key: str, schema: type) -> DictConfig:
    """`node` merged into the dataclass `schema`: an unknown key, a wrong type or a key without a value
    (the schemas have no defaults) is a ConfigError naming the key."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
    except OmegaConfBaseException as e:
        hint = _unknown_key_message(key, schema, e) if key else None
        where = f"'{key}' section in the" if key else "top-level"
        raise ConfigError(hint or f"bad {where} params: {e}") from e
    missing = sorted(OmegaConf.missing_keys(merged))
    if missing:
        raise ConfigError(missing_message(key, missing))
    return merged


def section(cfg: DictConfig, key: str, schema: type[T]) -> T:
    """The `key` subtree of `cfg`, checked against the dataclass `schema` (unknown and missing keys are
    errors). `key` may be dotted ("reward.intrinsic")."""
    node = OmegaConf.select(OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg, key) if key else None
    if node is None:
        raise ConfigError(f"params have no '{key}' section; regenerate params.yaml from conf/")
    return _checked(node, key, schema)  # type: ignore[return-value]


def _top(cfg: DictConfig) -> dict:
    return {k: cfg[k] for k in RootConfig.__dataclass_fields__ if k in cfg}


@functools.lru_cache(maxsize=1)
def _conf_values() -> dict:
    """conf/config.yaml's own keys with each conf/<section>/default.yaml at its key, resolved: conf/ before
    any profile, its interpolations (${data_dir}) resolved as when Hydra composes it."""
    tree = OmegaConf.load(CONF_DIR / "config.yaml")
    for entry in tree.pop("defaults"):
        if isinstance(entry, DictConfig):
            tree.update({name: OmegaConf.load(conf_file(name)) for name, option in entry.items()
                         if option == "default" and "@" not in name})
    return OmegaConf.to_container(tree, resolve=True)  # type: ignore[return-value]


def defaults(key: str, schema: type[T], **overrides: Any) -> T:
    """An instance of `schema` with conf/'s values for section `key` (no profile, no params.yaml), fields in
    `overrides` replaced: for code and tests that run without params. `key` may be dotted
    ("reward.intrinsic"); "" is the top-level keys (conf/config.yaml)."""
    node: Any = _conf_values()
    for part in key.split(".") if key else ():
        node = node.get(part) if isinstance(node, dict) else None
    if node is None:
        raise ConfigError(f"conf/ has no section {key!r}; see {conf_file(key).relative_to(REPO_ROOT)}")
    merged = _checked(node if key else _top(node), key, schema)
    try:
        for name, value in overrides.items():  # assigned, not merged: a dict or list replaces conf/'s
            merged[name] = value
    except OmegaConfBaseException as e:
        raise ConfigError(f"bad override of {key or 'the top level'}: {e}") from e
    return OmegaConf.to_object(merged)  # type: ignore[return-value]


def root(cfg: DictConfig) -> RootConfig:
    merged = _checked(_top(cfg), "", RootConfig)
    if merged.profile not in PROFILES:
        raise ConfigError(f"profile {merged.profile!r} is not one of {PROFILES}")
    both = set(merged.fit_methods) & set(merged.reference_methods)
    if both:
        raise ConfigError(f"params list {sorted(both)} in both `fit_methods` and `reference_methods`: a "
                          "reference method has nothing to fit (stage evaluate_reference); list it once")
    for key in ("seeds", "skill_seeds", "code_seeds"):
        values = list(merged[key])
        if not values or len(set(values)) != len(values) or min(values) < 0:
            raise ConfigError(f"params `{key}` must be a non-empty list of distinct seeds >= 0, got {values}")
    codegen = cfg.get("codegen") if isinstance(cfg, DictConfig) else None
    if codegen is None or "code_seeds" not in codegen:
        return merged
    if not OmegaConf.is_list(codegen.code_seeds):
        raise ConfigError(f"codegen.code_seeds must be a list of seeds (e.g. [0, 1, 2]), got "
                          f"{codegen.code_seeds!r}; regenerate params.yaml from conf/")
    if list(codegen.code_seeds) != list(merged.code_seeds):
        raise ConfigError(f"params `code_seeds` {list(merged.code_seeds)} differs from `codegen.code_seeds` "
                          f"{list(codegen.code_seeds)}: codegen.code_seeds is the one source "
                          "(conf/config.yaml sets code_seeds: ${codegen.code_seeds}); set codegen.code_seeds "
                          "and regenerate params.yaml")
    return merged  # type: ignore[return-value]


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Compose conf/ for a profile into params.yaml")
    parser.add_argument("--profile", default=os.environ.get("PROFILE", "small"), choices=PROFILES)
    parser.add_argument("--out", default=None, help="params file to write (default: params.yaml)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. rl.lr=3e-4")
    args = parser.parse_args(argv)
    changed = write_params(compose(args.profile, args.overrides), args.out)
    print(f"{params_path(args.out)}: {'written' if changed else 'unchanged'} (profile {args.profile})")


if __name__ == "__main__":
    main()
