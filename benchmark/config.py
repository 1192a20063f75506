"""The pipeline's parameters.

`conf/` is a Hydra config tree; composing it for one profile gives `params.yaml`, the file DVC tracks
by dotted keys and every stage reads. Each module validates the section it uses against its own
dataclass (`section(cfg, "reward", RewardConfig)`), so a typo or a wrong type is an error that names
the key, never a silent default.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "conf"
PROFILES = ("ci", "small", "paper")
PARAMS_ENV = "MM_PARAMS"  # points stages and tests at another params file

T = TypeVar("T")


class ConfigError(ValueError):
    """A parameter file or override is wrong; the message says which key and how to fix it."""


@dataclass
class RootConfig:
    """Keys at the top of params.yaml."""

    profile: str
    root_seed: int
    seeds: list[int]                # the baselines' seeds (each method fit once per seed)
    skills: list[str]
    tasks: list[str]
    methods: list[str]
    fit_methods: list[str] = field(default_factory=list)
    # MaestroMotif's runs: skill_seeds x code_seeds (paper: 3 x 3). code_seeds is codegen.code_seeds.
    skill_seeds: list[int] = field(default_factory=lambda: [0])
    code_seeds: list[int] = field(default_factory=lambda: [0])
    data_dir: str = "data"
    results_dir: str = "results"


def compose(profile: str = "small", overrides: Sequence[str] = ()) -> DictConfig:
    """Compose conf/config.yaml for `profile` with Hydra overrides (e.g. ``["rl.lr=3e-4"]``)."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        try:
            cfg = hydra_compose("config", overrides=[f"profile={profile}", *overrides])
        except Exception as e:  # hydra raises several types; all mean a bad override
            raise ConfigError(f"cannot compose conf/ with overrides {list(overrides)}: {e}") from e
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


def section(cfg: DictConfig, key: str, schema: type[T]) -> T:
    """The `key` subtree of `cfg`, checked against the dataclass `schema` (unknown keys are errors)."""
    if key not in cfg:
        raise ConfigError(f"params have no '{key}' section; regenerate params.yaml from conf/")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), cfg[key])
    except OmegaConfBaseException as e:
        raise ConfigError(f"bad '{key}' section in the params: {e}") from e
    return merged  # type: ignore[return-value]


def root(cfg: DictConfig) -> RootConfig:
    top = {k: cfg[k] for k in RootConfig.__dataclass_fields__ if k in cfg}
    try:
        merged = OmegaConf.merge(OmegaConf.structured(RootConfig), top)
    except OmegaConfBaseException as e:
        raise ConfigError(f"bad top-level params: {e}") from e
    if merged.profile not in PROFILES:
        raise ConfigError(f"profile {merged.profile!r} is not one of {PROFILES}")
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
                          f"{list(codegen.code_seeds)}: codegen.code_seeds is the one source (conf/config.yaml "
                          "sets code_seeds: ${codegen.code_seeds}); set codegen.code_seeds and regenerate "
                          "params.yaml")
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
