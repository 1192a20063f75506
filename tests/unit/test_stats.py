"""benchmark.stats on small matrices whose answers were worked out by hand."""
import math

import numpy as np
import pytest

from benchmark import stats


def test_mean_and_standard_error_over_seeds():
    mean, se = stats.mean_stderr([1, 2, 3, 4])
    # sample variance = (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3; se = sqrt(5/3) / sqrt(4)
    assert mean == 2.5
    assert se == pytest.approx(math.sqrt(5 / 3) / 2)


def test_standard_error_of_one_seed_is_undefined_not_zero():
    mean, se = stats.mean_stderr([0.4])
    assert mean == 0.4 and math.isnan(se)


def test_iqm_drops_the_lowest_and_highest_quarter_of_all_runs_and_tasks():
    scores = np.array([[1, 2], [3, 4], [5, 6], [7, 8]])  # runs x tasks; pooled 1..8, middle half 3..6
    assert stats.iqm(scores) == pytest.approx(4.5)
    skewed = np.array([[0, 0], [0, 1], [1, 1], [1, 100]])  # pooled 0,0,0,1,1,1,1,100 -> middle 0,1,1,1
    assert stats.iqm(skewed) == pytest.approx(0.75)
    assert stats.aggregate_mean(skewed) == pytest.approx(104 / 8)


def test_probability_of_improvement_counts_pairs_and_ties_half():
    x = np.array([[3, 0], [4, 0]])
    y = np.array([[1, 1], [2, 1], [5, 1]])
    # task 1: 3 beats 1,2 and 4 beats 1,2 -> 4 of 6 pairs; task 2: X never wins -> 0; mean = 1/3
    assert stats.probability_of_improvement(x, y) == pytest.approx(1 / 3)
    # a tie counts one half: 2 vs 2 three times (1.5) and 3 beats 2 three times (3) -> 4.5 / 9
    assert stats.probability_of_improvement([[1], [2], [3]], [[2], [2], [2]]) == pytest.approx(0.5)
    assert stats.probability_of_improvement(x, x) == pytest.approx(0.5)


def test_bootstrap_interval_of_a_constant_matrix_is_a_point():
    point, low, high = stats.interval_estimates({"m": np.full((5, 3), 0.25)}, reps=200)["m"]
    assert point == low == high == pytest.approx(0.25)


def test_bootstrap_interval_brackets_the_iqm_and_repeats_with_its_seed():
    rng = np.random.default_rng(0)
    scores = {"a": rng.uniform(0, 1, size=(9, 4)), "b": rng.uniform(0.5, 1.5, size=(9, 4))}
    first = stats.interval_estimates(scores, reps=500, seed=3)
    assert first == stats.interval_estimates(scores, reps=500, seed=3)
    for name, (point, low, high) in first.items():
        assert point == pytest.approx(stats.iqm(scores[name]))
        assert low <= point <= high
    # each method's interval does not depend on which other methods are present
    assert stats.interval_estimates({"b": scores["b"]}, reps=500, seed=3)["b"] == first["b"]


def test_probability_of_improvement_interval():
    x = np.array([[1.0], [1.1], [0.9], [1.2]])
    y = np.array([[0.0], [0.1], [0.05], [0.2]])
    point, low, high = stats.probability_of_improvement_ci(x, y, reps=300)
    assert point == low == high == 1.0  # every resample of X still beats every resample of Y


@pytest.mark.parametrize("bad", [[], [[np.nan]], np.zeros((2, 2, 2))])
def test_bad_matrices_are_rejected(bad):
    with pytest.raises(ValueError):
        stats.iqm(bad)


def test_probability_of_improvement_needs_the_same_tasks():
    with pytest.raises(ValueError, match="tasks"):
        stats.probability_of_improvement(np.zeros((2, 2)), np.zeros((2, 3)))


def test_probability_of_improvement_interval_repeats_with_its_seed_and_leaves_global_rng_alone():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
    np.random.seed(123)
    expected_next = np.random.random()
    np.random.seed(123)
    first = stats.probability_of_improvement_ci(x, y, reps=200, seed=7)
    assert np.random.random() == expected_next  # the bootstrap restored NumPy's global state
    assert first == stats.probability_of_improvement_ci(x, y, reps=200, seed=7)
    assert first[1] <= first[0] <= first[2]


def test_z_difference_is_the_difference_over_its_standard_error():
    from benchmark.stats import z_difference

    assert z_difference(0.5, 0.3, 0.1, 0.4) == pytest.approx(0.4 / 0.5)
    assert z_difference(0.2, 0.0, 0.0, 0.0) == math.inf  # every run alike, and apart
    assert z_difference(0.0, 0.0, 0.0, 0.0) == 0.0
    assert math.isnan(z_difference(1.0, math.nan, 0.0, 0.0))  # one run: no standard error, no verdict
