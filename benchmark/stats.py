"""Statistics over seeds: small pure functions on score matrices of shape (runs, tasks).

Two families, because the paper and the rliable guidelines answer different questions:
- `mean_stderr`: mean ± standard error over seeds, the numbers the paper's Tables 1 and 2 print;
- `iqm`, `interval_estimates`, `probability_of_improvement`: the rliable (Agarwal et al., 2021) aggregates,
  interquartile mean with stratified-bootstrap 95% CIs and P(X > Y), computed by rliable 1.2.0 (pinned:
  the library is archived). The axis order is (runs, tasks); rliable issue #20 shows what the other order
  does.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from typing import Callable, Iterator, Mapping

import numpy as np


def _matrix(scores) -> np.ndarray:
    x = np.asarray(scores, dtype=float)
    if x.ndim == 1:
        x = x[:, None]  # one task
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty (runs, tasks) matrix, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("scores contain NaN or inf; drop or fill the missing runs first")
    return x


def mean_stderr(values) -> tuple[float, float]:
    """Mean and standard error of the mean (sample std with ddof=1 over sqrt(n)); stderr is NaN for n < 2."""
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0:
        raise ValueError("mean_stderr needs at least one value")
    se = float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else float("nan")
    return float(x.mean()), se


def z_difference(mean_a: float, se_a: float, mean_b: float, se_b: float) -> float:
    """(mean_a - mean_b) / sqrt(se_a^2 + se_b^2): how many standard errors a lies above b (independent
    estimates). NaN when a standard error is unknown (NaN: one run); with both 0 (every run alike) the
    difference is certain (+-inf) or none (0)."""
    if math.isnan(se_a) or math.isnan(se_b):
        return math.nan
    diff, scale = float(mean_a) - float(mean_b), math.hypot(float(se_a), float(se_b))
    if scale > 0:
        return diff / scale
    return math.copysign(math.inf, diff) if diff else 0.0


def iqm(scores) -> float:
    """Interquartile mean over all runs and tasks: the mean of the middle 50% of the pooled scores."""
    from rliable import metrics

    return float(metrics.aggregate_iqm(_matrix(scores)))


def aggregate_mean(scores) -> float:
    from rliable import metrics

    return float(metrics.aggregate_mean(_matrix(scores)))


def probability_of_improvement(scores_x, scores_y) -> float:
    """P(X > Y): per task, the Mann-Whitney probability that a run of X beats a run of Y (ties count half),
    averaged over tasks. Both matrices need the same tasks; run counts may differ."""
    from rliable import metrics

    x, y = _matrix(scores_x), _matrix(scores_y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"X has {x.shape[1]} tasks but Y has {y.shape[1]}")
    return float(metrics.probability_of_improvement(x, y))


@contextlib.contextmanager
def _seeded_bootstrap(seed: int) -> Iterator[np.random.RandomState]:
    """rliable 1.2.0's StratifiedBootstrap draws from NumPy's *global* RNG and ignores its random_state
    (only the independent bootstrap honours it), so seed both and restore the global state afterwards."""
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="random_state is deprecated", category=FutureWarning)
            yield np.random.RandomState(seed)
    finally:
        np.random.set_state(saved)


AGGREGATES: dict[str, Callable[[np.ndarray], float]] = {"iqm": iqm, "mean": aggregate_mean}


def interval_estimates(score_dict: Mapping[str, np.ndarray], aggregate: str = "iqm", reps: int = 2000,
                       seed: int = 0, ci: float = 0.95) -> dict[str, tuple[float, float, float]]:
    """{method: (point, low, high)}: an aggregate of each (runs, tasks) matrix with its stratified-bootstrap
    CI (runs resampled within each task; `seed` makes the bootstrap repeatable)."""
    from rliable import library

    if aggregate not in AGGREGATES:
        raise ValueError(f"unknown aggregate {aggregate!r}; choose from {sorted(AGGREGATES)}")
    fn = AGGREGATES[aggregate]
    mats = {k: _matrix(v) for k, v in score_dict.items()}
    out = {}
    for k, m in mats.items():  # one RandomState per method: adding a method leaves the others' CIs unchanged
        with _seeded_bootstrap(seed) as rs:
            point, interval = library.get_interval_estimates(
                {k: m}, lambda s: np.array([fn(s)]), reps=reps, confidence_interval_size=ci, random_state=rs)
        out[k] = (float(point[k][0]), float(interval[k][0][0]), float(interval[k][1][0]))
    return out


def probability_of_improvement_ci(scores_x, scores_y, reps: int = 2000, seed: int = 0,
                                  ci: float = 0.95) -> tuple[float, float, float]:
    """P(X > Y) with a stratified independent-bootstrap CI (X and Y runs resampled separately)."""
    from rliable import library

    x, y = _matrix(scores_x), _matrix(scores_y)
    with _seeded_bootstrap(seed) as rs:
        point, interval = library.get_interval_estimates(
            {"pair": [x, y]}, lambda a, b: np.array([probability_of_improvement(a, b)]), reps=reps,
            confidence_interval_size=ci, random_state=rs)
    return float(point["pair"][0]), float(interval["pair"][0][0]), float(interval["pair"][1][0])
