"""What a regression probe sees and returns: the check's settings, its shared inputs, one measured metric.

A probe measures one section of the regression check (benchmark.regression). The benchmark brings the
probes of its own code (benchmark.regression_probes: statistics, task trackers); a method brings the probes
of its own (e.g. maestromotif.regression_probes). conf/regression/default.yaml names each section's probe by
`_target_`, the way conf/method/*.yaml names methods, so adding a method's probes never edits the harness.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from omegaconf import DictConfig, OmegaConf

from benchmark.config import root, section
from benchmark.seeding import derive_seed


@dataclass
class RegressionConfig:
    """The `regression` section of the params (conf/regression/default.yaml)."""

    reference: str  # relative to the repository root
    profile: str  # the profile the check composes and the reference was measured on
    # section name -> its probe: {_target_: module.ProbeClass, **constructor arguments}, in table order.
    # The policy section (below) is the harness's own and is not listed.
    probes: dict[str, Any]
    methods: list[str]  # conf/method/<name>.yaml
    tasks: list[str]
    episodes: int  # per method x task in one check run (one block)
    # Trained rows: methods the check trains itself (per-task methods fit each of trained_tasks).
    trained_methods: list[str]
    trained_tasks: list[str]
    train_for_env_steps: int  # the trained methods' budget here (overrides <method>.trainer)
    train_repeats: int  # --update: independent training runs (seeds 1..R): the spread
    trained_episodes: int  # per trained row and block (a trained score is noisier)
    trained_max_episode_steps: int  # episode cap of the trained rows' evaluation
    trained_num_envs: int  # envs stepped together when playing a trained policy
    # Train the trained rows reproducibly (rl.reproducible: serial, synchronous, one torch thread): the same
    # machine gives the same weights under any load, so the weights/* rows compare exactly there.
    trained_reproducible: bool
    max_episode_steps: int  # episode cap of the policy runs and of the tracker replays
    repeats: int  # --update: independent blocks that measure the spread
    false_alarm_rate: float  # family-wise, over all stochastic rows
    rtol: float  # float rows: |now - ref| <= atol + rtol * |ref|
    atol: float


class RegressionError(RuntimeError):
    """The reference is missing or from another profile/format; the message says how to fix it."""


# kinds compared only on the machine kind the reference was measured on (benchmark.provenance.machine())
MACHINE_KINDS = ("machine", "machine_float")


@dataclass
class Metric:
    """One measured number (or fingerprint) and how to compare it with its reference."""

    name: str
    kind: str                      # exact | float | machine | machine_float | stochastic
    value: Any                     # str/int (exact), float or list of floats (float), float (stochastic)
    extra: dict = field(default_factory=dict)  # stochastic: episode values and seeds of this run

    def reference_entry(self) -> dict:
        entry = {"kind": self.kind, "value": self.value}
        if self.kind in MACHINE_KINDS:
            entry["machine"] = self.extra["machine"]
        return entry


class Inputs:
    """The check's params and settings, and a cache the probes share (a method's probes may compute data
    once, e.g. a collect run, and reuse it across their sections). `given` pre-fills that cache (tests hand
    in data they already made)."""

    def __init__(self, params: DictConfig, cfg: RegressionConfig, given: Mapping[str, Any] | None = None):
        self.params, self.cfg = params, cfg
        self.top = root(params)
        self.given = dict(given or {})
        self._cache: dict[str, Any] = dict(self.given)

    def cached(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def env_config(self):
        """The params' env settings with the check's episode cap."""
        from benchmark.env import EnvConfig

        env_cfg = OmegaConf.to_object(section(self.params, "env", EnvConfig))
        env_cfg.max_episode_steps = self.cfg.max_episode_steps
        return env_cfg

    def seed(self, *names: object) -> int:
        return derive_seed(self.top.root_seed, "regression", *names)


class Probe(ABC):
    """Measures one section of the check. Constructor arguments come from the section's entry in
    `regression.probes`; metric names should start with the section name."""

    @abstractmethod
    def measure(self, inp: Inputs, reference: Mapping[str, Any]) -> list[Metric]:
        """The section's metrics now. `reference` is the committed reference (what `record` stored in it is
        there), or during --update what `record` just returned."""

    def record(self, inp: Inputs) -> dict[str, Any]:
        """--update: data to store in the reference beside the metrics (top-level keys), e.g. recorded actions
        to replay. Default: nothing."""
        return {}


def run_length(seq: Sequence[int]) -> str:
    """'0x20,1x5,...': a short exact record of a long sequence of small integers."""
    out, prev, n = [], None, 0
    for s in seq:
        if s == prev:
            n += 1
            continue
        if prev is not None:
            out.append(f"{prev}x{n}")
        prev, n = s, 1
    if prev is not None:
        out.append(f"{prev}x{n}")
    return ",".join(out)
