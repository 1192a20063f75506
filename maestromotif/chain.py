"""The MaestroMotif methods and where each keeps its artefacts: the one place that maps a method to its
annotator and to its folders (skill labels, reward models, skill networks).

Both methods run the same code with the same settings on the same pairs and codegen programs; they differ
only in who labels the skill pairs, and so in the reward models and networks that follow:

    method               annotator                     labels            reward models    skill networks
    maestromotif         annotate.annotator (the LLM)  labels/<skill>    reward/<skill>   fit/maestromotif/
    maestromotif_oracle  the rule oracle               labels_oracle/..  reward_oracle/.. fit/<the method>/

(all under <data_dir>; a network per skill seed, seed<k>/). The rule oracle (maestromotif.oracle) reads the
same captions as the LLM and labels them by rules written for each skill: an upper bound on label quality,
not a method of the paper. Motif's per-task labels (labels/motif/<task>) stay with annotate.annotator.

The folders come from the params templates reward.labels, reward.out_dir and rl.reward_dir; their
`{suffix}` is the method's ("" or "_oracle"). A template without `{suffix}` names one folder for every
method: fine for maestromotif alone, refused for the oracle method (it would read the LLM's labels).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from benchmark.config import ConfigError, did_you_mean, missing_message, root


@dataclass(frozen=True)
class Chain:
    """One MaestroMotif method: its name, its annotator (None: the params' annotate.annotator) and the
    suffix of its label and reward folders."""

    method: str
    annotator: str | None
    suffix: str


DEFAULT = "maestromotif"
ORACLE = "maestromotif_oracle"
CHAINS = {c.method: c for c in (Chain(DEFAULT, None, ""), Chain(ORACLE, "oracle", "_oracle"))}
METHODS = tuple(CHAINS)


def chain(method: str) -> Chain:
    if method not in CHAINS:
        raise ConfigError(f"{method!r} is not a MaestroMotif method{did_you_mean(method, METHODS)}: choose "
                          f"one of {', '.join(METHODS)} (maestromotif/chain.py)")
    return CHAINS[method]


def annotator(params: Any, method: str) -> str:
    """Who labels the method's skill pairs: llm | oracle."""
    fixed = chain(method).annotator
    return fixed or _value(params, "annotate.annotator")


def _fill(template: str, key: str, method: str, **fields: Any) -> Path:
    c = chain(method)
    if c.suffix and "{suffix}" not in template:
        raise ConfigError(f"{key}={template!r} has no {{suffix}}: {method} would share that folder with "
                          f"{DEFAULT}. Put {{suffix}} where the method's folder name ends, as "
                          f"conf/{key.split('.')[0]}/default.yaml does")
    try:
        return Path(template.format(suffix=c.suffix, **fields))
    except (KeyError, IndexError) as e:
        raise ConfigError(f"{key}={template!r}: unknown placeholder {e}; it may use "
                          f"{', '.join('{' + f + '}' for f in ('suffix', *fields))}") from e


def _value(params: Any, key: str) -> str:
    """The params' `key` (no fallback: conf/ holds every value)."""
    value = OmegaConf.select(params, key)
    if value is None:
        section, _, leaf = key.rpartition(".")
        raise ConfigError(missing_message(section, [leaf]))
    return str(value)


def label_dir(params: Any, method: str, skill: str) -> Path:
    """Where the annotate stage writes the method's labels of `skill` and the reward stage reads them."""
    return _fill(_value(params, "reward.labels"), "reward.labels", method,
                 data_dir=root(params).data_dir, skill=skill)


def reward_root(params: Any, method: str) -> Path:
    """Where the reward stage writes the method's reward models: <root>/<skill>/model.pt."""
    return _fill(_value(params, "reward.out_dir"), "reward.out_dir", method,
                 data_dir=root(params).data_dir)


def training_reward_root(params: Any, method: str, template: str | None = None) -> Path:
    """The reward models the method's skill network trains on: rl.reward_dir (tests point it elsewhere), or
    `template` (an rl section with overrides)."""
    if template is None:
        template = _value(params, "rl.reward_dir")
    return _fill(template, "rl.reward_dir", method, data_dir=root(params).data_dir)


def fit_root(params: Any, method: str) -> Path:
    """The method's skill networks, one folder per skill seed (its benchmark artefact, conf/method)."""
    return Path(root(params).data_dir) / "fit" / chain(method).method


def run_dir(params: Any, method: str, seed: int) -> Path:
    return fit_root(params, method) / f"seed{seed}"
