"""10-fold verification: threshold search vs brute force, folds = numpy.array_split, TAR@FAR
and ROC AUC vs direct recomputation from their definitions."""

from __future__ import annotations

import numpy as np
import pytest

from mfr.errors import MfrError
from mfr.eval.verification import (
    best_threshold,
    candidate_thresholds,
    fold_indices,
    roc_auc,
    tar_at_far,
    verification_metrics,
)


def _brute_threshold(s, y):
    """Every candidate threshold tried directly; first (= lowest) best accuracy wins."""
    distinct = np.unique(s)
    candidates = [distinct[0] - 1.0] + [
        (lo + hi) / 2 for lo, hi in zip(distinct[:-1], distinct[1:])
    ] + [distinct[-1] + 1.0]  # fmt: skip
    best_t, best_acc = None, -1.0
    for t in candidates:
        acc = np.mean((s > t) == y)
        if acc > best_acc:
            best_t, best_acc = t, acc
    return best_t, best_acc


def _sample(rng, n, ties):
    y = rng.random(n) < 0.5
    s = rng.standard_normal(n) * 0.3 + np.where(y, 0.4, 0.0)
    if ties:
        s = np.round(s * 4) / 4  # few distinct values, many ties
    return s, y


@pytest.mark.parametrize("ties", [False, True])
def test_threshold_search_equals_brute_force(rng, ties):
    for n in (1, 2, 5, 37, 200):
        s, y = _sample(rng, n, ties)
        t, acc = best_threshold(s, y)
        bt, bacc = _brute_threshold(s, y)
        assert t == bt and acc == pytest.approx(bacc, abs=1e-15)


def test_threshold_ties_go_to_the_lowest_threshold():
    # two thresholds reach the best accuracy (0.75): the lower one must win
    s = np.array([0.1, 0.2, 0.3, 0.4])
    y = np.array([False, True, False, True])
    t, acc = best_threshold(s, y)
    # candidates: 0.1-1 (acc .5), .15 (.75), .25 (.5), .35 (.75), 1.4 (.5) -> lowest max is .15
    assert t == pytest.approx(0.15) and acc == 0.75


def test_same_means_strictly_greater_than_threshold():
    s = np.array([0.5, 0.5, 0.5, 0.5])
    y = np.array([True, True, False, False])
    t, acc = best_threshold(s, y)  # only "all same" (t = -0.5) or "all different" (t = 1.5)
    assert t == -0.5 and acc == 0.5


def test_candidates_are_midpoints_plus_one_below_and_one_above():
    np.testing.assert_allclose(
        candidate_thresholds(np.array([0.3, 0.1, 0.3, 0.2])), [-0.9, 0.15, 0.25, 1.3]
    )


@pytest.mark.parametrize("n", [10, 23, 100])
def test_folds_are_exactly_numpy_array_split(n):
    expected = np.array_split(np.arange(n), 10)
    got = fold_indices(n)
    assert len(got) == 10 and all(np.array_equal(a, b) for a, b in zip(got, expected))


@pytest.mark.parametrize("ties", [False, True])
def test_ten_fold_accuracy_equals_naive_recomputation(rng, ties):
    s, y = _sample(rng, 123, ties)  # 123 pairs: the first three folds hold 13 rows
    result = verification_metrics(s, y)
    accs = []
    for k, test in enumerate(np.array_split(np.arange(123), 10)):
        train = np.setdiff1d(np.arange(123), test)
        t, _ = _brute_threshold(s[train], y[train])
        assert result.fold_thresholds[k] == t
        accs.append(np.mean((s[test] > t) == y[test]))
    np.testing.assert_allclose(result.fold_accuracies, accs)
    assert result.accuracy == pytest.approx(np.mean(accs))
    assert result.accuracy_std == pytest.approx(np.std(accs, ddof=0))
    assert result.num_pairs == 123 and result.num_matched == int(y.sum())


@pytest.mark.parametrize("ties", [False, True])
def test_roc_auc_equals_brute_force_pair_count(rng, ties):
    s, y = _sample(rng, 150, ties)
    pos, neg = s[y], s[~y]
    diff = pos[:, None] - neg[None, :]
    expected = (np.count_nonzero(diff > 0) + 0.5 * np.count_nonzero(diff == 0)) / diff.size
    assert roc_auc(s, y) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_tar_at_far_equals_brute_force_over_thresholds(rng, ties):
    s, y = _sample(rng, 400, ties)
    for level in (1e-2, 1e-1, 0.3):
        best = 0.0
        for t in candidate_thresholds(s):
            far = np.mean(s[~y] > t)
            if far <= level:
                best = max(best, np.mean(s[y] > t))
        assert tar_at_far(s, y, level) == pytest.approx(best, abs=1e-15)


def test_tar_and_auc_are_nan_with_one_kind_of_pair():
    s, y = np.linspace(0, 1, 20), np.ones(20, bool)
    assert np.isnan(roc_auc(s, y)) and np.isnan(tar_at_far(s, y, 1e-2))
    assert verification_metrics(s, y).accuracy == 1.0


def test_too_few_pairs_or_nan_similarities_are_clear_errors():
    with pytest.raises(MfrError, match="at least 10 pairs"):
        verification_metrics(np.zeros(9), np.zeros(9, bool))
    with pytest.raises(MfrError, match="NaN"):
        verification_metrics(np.r_[np.zeros(9), np.nan], np.zeros(10, bool))
