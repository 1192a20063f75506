"""The ci-profile regression check: recompute a set of metrics and compare them with committed references.

    python -m benchmark.regression              # check: prints a table, exits 1 when a metric fails
    python -m benchmark.regression --update     # recompute the reference (results/regression/reference.json)

What is checked (conf/regression/default.yaml, section `regression`), on the ci profile: one section per
entry of `regression.probes`, each measured by the Probe its `_target_` names (benchmark.probes). The
benchmark brings its own (benchmark.regression_probes: stats/*, tracker/*), a method brings its own (e.g.
maestromotif.regression_probes: data/*, oracle/*, reward/*, intrinsic/*, options/*), so adding a method's
probes is an entry in that file, not an edit here. Each metric has a kind that says how it is compared:

  exact        deterministic code paths (fingerprints, labels, traces); any change fails, by design
  float        floating point: |now - ref| <= atol + rtol |ref|
  machine      exact on the machine kind the reference was measured on: weights/*, the trained rows'
               networks (below), and the intrinsic reward's rewarded-step counts; elsewhere not compared
  machine_float  float on that machine kind, not compared elsewhere: what depends on a trained reward
               model (reward/*, intrinsic/*): another CPU trains another model from the same seed (an
               Intel Xeon with AMX against the reference's AMD EPYC: probe scores up to 0.6 apart)
  stochastic   a bound from the measured spread: the harness's own section (benchmark.regression_policy)
    policy/<method>/<task>   mean task value of `episodes` seeded episodes on a small variant, for every
                 method in `regression.methods` (reference methods: nothing to train) and every method in
                 `regression.trained_methods` on `regression.trained_tasks`: the check trains that method
                 itself (training seed 0, `train_for_env_steps` env steps) and plays it, so a change
                 anywhere in the training stack (env, rewards, network, APPO) can move the row.

Stochastic bound. `--update` plays `repeats` independent blocks of `episodes` episodes (block r, episode k
plays the NetHack game derive_seed(root_seed, "regression", task, r, k)); the check plays block 0, which
the reference does not include. The reference value is the mean over blocks 1..R; se_run is the measured
standard deviation of one block's mean across the R blocks, se_ref = se_run / sqrt(R). Both are floored by
the standard error of the pooled episodes with two pseudo-episodes of value 0 and 1 added (the Laplace
rule: a reference that never failed in R x N episodes still admits a rare failure). The check passes when

    |now - ref| <= z * sqrt(se_ref^2 + se_run^2),   z = Phi^-1(1 - alpha / (2 K))

with K the number of stochastic rows and alpha (`false_alarm_rate`) the family-wise false-alarm rate
(Bonferroni). Unchanged code replays block 0 exactly; the bound matters when a legitimate change
re-randomises the episodes (a new NLE build, a policy that consumes its RNG differently).

Trained rows. The check trains with rl.reproducible (sample-factory's serial, synchronous mode, one torch
thread, env seeds fixed by the env factory): the run is a function of the code and settings on one kind
of machine, whatever else runs beside it. Two rows per trained method and task:
  weights/<method>/<task>  (kind "machine") a hash of the trained network. Compared exactly when the check
                 runs on the machine kind the reference was measured on (benchmark.provenance.machine():
                 CPU model, instruction set, torch build); elsewhere reported, not compared, since another
                 CPU computes other floats and the run diverges.
  policy/<method>/<task>   (stochastic) the trained policy's mean task value. `--update` trains seeds
                 1..`train_repeats` (block r = training seed r, then block r's episodes), so the block means'
                 spread holds the training-to-training variation as well as the episodes'; the check
                 (training seed 0, block 0) is compared with the same formula. Because training no longer
                 depends on machine load, the spread measured on a quiet machine holds on a busy one.
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any, Iterator, Sequence

import numpy as np
from omegaconf import OmegaConf

from benchmark import provenance
from benchmark.config import REPO_ROOT, ConfigError, compose, section
from benchmark.io import read_json, write_json
from benchmark.logs import setup_logging
from benchmark.probes import MACHINE_KINDS
from benchmark.probes import Inputs, Metric, Probe, RegressionConfig, RegressionError  # noqa: F401  the API
from benchmark.regression_policy import (  # noqa: F401  re-exported: the policy rows' API
    check_policy, fitted, policy_rows, trained_metric_names, weights_fingerprint)

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
POLICY = "policy"  # the harness's own section: seeded episodes of each method (benchmark.regression_policy)


@dataclass
class Row:
    metric: str
    kind: str
    reference: str
    now: str
    bound: str
    passed: bool


# ----- the probes -------------------------------------------------------------------------------------------
def section_names(cfg: RegressionConfig) -> list[str]:
    """Every section of the check, in table order: the configured probes', then the policy rows."""
    return [*cfg.probes, POLICY]


def build_probes(cfg: RegressionConfig) -> dict[str, Probe]:
    """Instantiate `regression.probes` (section -> `_target_` + constructor arguments), like conf/method."""
    from hydra.utils import instantiate

    probes = {}
    for name, conf in cfg.probes.items():
        where = f"regression.probes.{name} (conf/regression/default.yaml)"
        if name == POLICY:
            raise ConfigError(f"{where}: `{POLICY}` is the harness's own section; name the probe otherwise")
        if not isinstance(conf, dict) or "_target_" not in conf:
            raise ConfigError(f"{where} has no `_target_` naming its Probe class (module.Class)")
        try:
            probe = instantiate(conf)
        except Exception as e:  # hydra wraps import and constructor errors in InstantiationException
            raise ConfigError(f"{where}: cannot build `_target_: {conf['_target_']}` ({type(e).__name__}: "
                              f"{e}); fix `_target_` to an importable Probe class or its arguments") from e
        if not isinstance(probe, Probe):
            raise ConfigError(f"{where} built {type(probe).__name__}, not a benchmark.probes.Probe")
        probes[name] = probe
    return probes


# ----- running and comparing -------------------------------------------------------------------------------
def run(inp: Inputs, reference: dict | None, sections: Sequence[str] | None = None) -> list[Metric]:
    """Measure the metrics of `sections` (default: all), in table order. A probe reads what it recorded in
    the reference (the tracker replay: its recorded actions)."""
    names = section_names(inp.cfg)
    sections = names if sections is None else list(sections)
    unknown = set(sections) - set(names)
    if unknown:
        raise ConfigError(f"unknown regression section(s) {sorted(unknown)}; choose from {names} "
                          "(regression.probes in conf/regression/default.yaml, and policy)")
    probes = build_probes(inp.cfg)
    metrics = []
    for name in names:
        if name in sections:
            t0 = time.perf_counter()
            metrics += check_policy(inp) if name == POLICY else probes[name].measure(inp, reference or {})
            log.info("regression section %s: %.1f s", name, time.perf_counter() - t0)
    return metrics


def z_value(cfg: RegressionConfig) -> float:
    """Two-sided z for a family-wise false-alarm rate over all stochastic rows (Bonferroni)."""
    k = max(len(policy_rows(cfg)), 1)
    return NormalDist().inv_cdf(1 - cfg.false_alarm_rate / (2 * k))


def stochastic_bound(entry: dict, z: float) -> float:
    return z * math.hypot(entry["se_ref"], entry["se_run"])


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.6g}"
    if isinstance(x, list):
        return f"[{len(x)} values]"
    text = str(x)
    return text if len(text) <= 28 else text[:25] + "..."


def _float_row(m: Metric, ref: Any, cfg: RegressionConfig) -> Row:
    now_v, ref_v = np.atleast_1d(np.asarray(m.value, float)), np.atleast_1d(np.asarray(ref, float))
    if now_v.shape != ref_v.shape:
        return Row(m.name, m.kind, f"{ref_v.size} values", f"{now_v.size} values", "-", False)
    diff = np.abs(now_v - ref_v)
    ok = bool(np.all(diff <= cfg.atol + cfg.rtol * np.abs(ref_v)))
    bound = f"atol {cfg.atol:g} + rtol {cfg.rtol:g}|ref|"
    now_text = _fmt(m.value) if now_v.size == 1 else f"max|diff| {diff.max():.2g}"
    return Row(m.name, m.kind, _fmt(ref), now_text, bound, ok)


def compare(metrics: Sequence[Metric], reference: dict, cfg: RegressionConfig,
            require_all: bool = False) -> list[Row]:
    """One row per metric: reference, now, bound, pass. With `require_all`, a reference metric that was not
    measured is a failure too (a full check must cover everything the reference holds)."""
    ref_metrics = reference["metrics"]
    z = z_value(cfg)
    rows = []
    for m in metrics:
        entry = ref_metrics.get(m.name)
        if entry is None:
            rows.append(Row(m.name, m.kind, "(none)", _fmt(m.value), "-", False))
            continue
        ref = entry["value"]
        if m.kind != entry["kind"]:
            rows.append(Row(m.name, m.kind, f"kind {entry['kind']}", _fmt(m.value), "-", False))
        elif m.kind == "exact":
            rows.append(Row(m.name, m.kind, _fmt(ref), _fmt(m.value), "exact", m.value == ref))
        elif m.kind in MACHINE_KINDS and entry.get("machine") != m.extra["machine"]:
            # another CPU or torch build computes other floats (and trains other models from them)
            rows.append(Row(m.name, m.kind, _fmt(ref), _fmt(m.value), "other machine: not compared", True))
        elif m.kind == "machine":
            rows.append(Row(m.name, m.kind, _fmt(ref), _fmt(m.value), "exact (same machine)", m.value == ref))
        elif m.kind in ("float", "machine_float"):
            rows.append(_float_row(m, ref, cfg))
        else:
            bound = stochastic_bound(entry, z)
            rows.append(Row(m.name, m.kind, _fmt(ref), _fmt(m.value), f"±{bound:.3f}",
                            abs(m.value - ref) <= bound))
    if require_all:
        seen = {m.name for m in metrics}
        for name, entry in ref_metrics.items():
            if name not in seen:
                rows.append(Row(name, entry["kind"], _fmt(entry["value"]), "(not measured)", "-", False))
    return rows


def format_table(rows: Sequence[Row]) -> str:
    header = ("metric", "kind", "reference", "now", "bound", "result")
    cells = [header] + [(r.metric, r.kind, r.reference, r.now, r.bound, "pass" if r.passed else "FAIL")
                        for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(header))) for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    failed = sum(not r.passed for r in rows)
    lines.append(f"{len(rows) - failed} passed, {failed} failed")
    return "\n".join(lines)


# ----- the reference ---------------------------------------------------------------------------------------
def reference_path(cfg: RegressionConfig) -> Path:
    path = Path(cfg.reference)
    return path if path.is_absolute() else REPO_ROOT / path


def load_reference(path: Path, cfg: RegressionConfig) -> dict:
    if not path.exists():
        raise RegressionError(f"no regression reference at {path}: create it with "
                              "`python -m benchmark.regression --update`")
    ref = read_json(path)
    if ref.get("format_version") != FORMAT_VERSION:
        raise RegressionError(f"{path} has format {ref.get('format_version')}, this code reads "
                              f"{FORMAT_VERSION}; "
                              "rerun `python -m benchmark.regression --update`")
    if ref.get("measured", {}).get("profile") != cfg.profile:
        raise RegressionError(f"{path} was measured on profile {ref.get('measured', {}).get('profile')!r}, "
                              f"the check runs {cfg.profile!r}; rerun with --update")
    return ref


def spread(block_values: Sequence[Sequence[float]], episodes: int) -> dict:
    """Reference value and standard errors from R independent blocks of `episodes` episodes each."""
    blocks = np.array([np.mean(v) for v in block_values])
    pooled = np.concatenate([np.asarray(v, float) for v in block_values] + [np.array([0.0, 1.0])])
    r = len(blocks)
    floor_sd = float(pooled.std(ddof=1))  # per-episode sd, with the two Laplace pseudo-episodes
    block_sd = float(blocks.std(ddof=1)) if r > 1 else 0.0
    se_run = max(block_sd, floor_sd / math.sqrt(episodes))
    se_ref = max(block_sd / math.sqrt(r), floor_sd / math.sqrt(r * episodes))
    return {"value": float(blocks.mean()), "se_run": se_run, "se_ref": se_ref, "block_sd": block_sd,
            "block_means": [float(b) for b in blocks]}


def update(inp: Inputs, path: Path, progress: bool = True) -> dict:
    """Recompute every metric, measure the stochastic spread over `repeats` blocks, write the reference."""
    from tqdm import tqdm

    cfg = inp.cfg
    t0 = time.perf_counter()
    recorded: dict[str, Any] = {}
    for probe in build_probes(cfg).values():  # what the probes replay (the tracker's scripted actions)
        recorded.update(probe.record(inp))
    metrics = run(inp, recorded, list(cfg.probes))
    entries = {m.name: m.reference_entry() for m in metrics}
    check_block = {}
    for m in check_policy(inp, block=0):
        if m.kind == "stochastic":
            check_block[m.name] = m
        else:  # the trained rows' weights: exact on this machine
            entries[m.name] = m.reference_entry()
    blocks: dict[str, list[list[float]]] = {name: [] for name in check_block}
    for block in tqdm(range(1, max(cfg.repeats, cfg.train_repeats) + 1), desc="reference blocks",
                      disable=not progress):
        for m in check_policy(inp, block=block, trained=block <= cfg.train_repeats,
                              reference=block <= cfg.repeats):
            blocks[m.name].append(m.extra["values"])
    z = z_value(cfg)
    trained_names = trained_metric_names(cfg)
    for name, block_values in blocks.items():
        episodes = cfg.trained_episodes if name in trained_names else cfg.episodes
        entry = {"kind": "stochastic", **spread(block_values, episodes),
                 "check_block": {"value": check_block[name].value, "seeds": check_block[name].extra["seeds"],
                                 "values": check_block[name].extra["values"]}}
        entries[name] = entry
        if abs(check_block[name].value - entry["value"]) > stochastic_bound(entry, z):
            log.warning("%s: the check's own block (%.3f) is outside the new bound %.3f ± %.3f: the "
                        "committed reference would fail `make test`; look at the policy before committing",
                        name, check_block[name].value, entry["value"], stochastic_bound(entry, z))
    seconds = time.perf_counter() - t0
    prov = provenance.record(
        stage="regression", profile=inp.top.profile, root_seed=inp.top.root_seed,
        command="python -m benchmark.regression --update", seconds=round(seconds, 1),
        config=OmegaConf.to_container(OmegaConf.structured(cfg)),
        stochastic={"blocks": cfg.repeats, "episodes_per_block": cfg.episodes,
                    "episode_seeds": "derive_seed(root_seed, 'regression', task, block, episode); "
                                     "block 0 = the check, blocks 1..repeats = the reference",
                    "bound": "|now - ref| <= z * sqrt(se_ref^2 + se_run^2)",
                    "se_run": "max(sd of the block means, "
                              "sd of the pooled episodes + {0, 1} / sqrt(episodes))",
                    "se_ref": "max(sd of the block means / sqrt(R), pooled sd / sqrt(R * episodes))",
                    "z": z, "false_alarm_rate": cfg.false_alarm_rate,
                    "comparisons": len(policy_rows(cfg)),
                    "trained_rows": "block r = training seed r (train_for_env_steps env steps), then "
                                    "block r's "
                                    "episodes; the reference trains seeds 1..train_repeats"},
    )
    reference = {"format_version": FORMAT_VERSION, "measured": prov, "metrics": entries, **recorded}
    write_json(path, reference)
    log.info("wrote %s: %d metrics in %.0f s", path, len(entries), seconds)
    return reference


# ----- entry points --------------------------------------------------------------------------------------
@contextmanager
def ci_inputs(data_dir: str | Path | None = None, overrides: Sequence[str] = ()) -> Iterator[Inputs]:
    """The ci params (conf/ composed for regression.profile) with data under `data_dir` (default: a temp dir,
    deleted afterwards). An existing ci collect/pairs output there is reused."""
    with tempfile.TemporaryDirectory(prefix="mm-regression-") as tmp:
        base = Path(data_dir) if data_dir else Path(tmp) / "data"
        params = compose("ci", [f"data_dir={base}", *overrides])
        cfg: RegressionConfig = OmegaConf.to_object(section(params, "regression", RegressionConfig))
        if cfg.profile != "ci":  # the reference was measured on another profile: compose that one
            params = compose(cfg.profile, [f"data_dir={base}", *overrides])
            cfg = OmegaConf.to_object(section(params, "regression", RegressionConfig))
        yield Inputs(params, cfg)


def check(inp: Inputs, sections: Sequence[str] | None = None, reference: dict | None = None) -> list[Row]:
    """Run `sections` (default: all) and compare them with the reference (a full run also fails on metrics
    it lacks)."""
    reference = reference or load_reference(reference_path(inp.cfg), inp.cfg)
    metrics = run(inp, reference, sections)
    full = sections is None or set(sections) == set(section_names(inp.cfg))
    return compare(metrics, reference, inp.cfg, require_all=full)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--update", action="store_true", help="recompute and rewrite the reference")
    parser.add_argument("--sections", nargs="+", default=None,
                        help="check only these sections (regression.probes' names, and policy)")
    parser.add_argument("--data-dir", default=None,
                        help="where the ci collect/pairs outputs go (default: a temporary folder)")
    parser.add_argument("--reference", default=None, help="reference file (default: regression.reference)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. regression.episodes=16")
    args = parser.parse_args(argv)
    setup_logging()
    t0 = time.perf_counter()
    with ci_inputs(args.data_dir, args.overrides) as inp:
        path = Path(args.reference) if args.reference else reference_path(inp.cfg)
        if args.update:
            update(inp, path)
            return 0
        rows = check(inp, args.sections, load_reference(path, inp.cfg))
    print(format_table(rows))  # the CLI's output: the table
    log.info("regression check: %.0f s", time.perf_counter() - t0)
    return 0 if all(r.passed for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
