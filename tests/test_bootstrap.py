"""Bootstrap intervals of Rank-k and mAP: equal to a direct per-resample re-computation."""

from __future__ import annotations

import numpy as np
import pytest

from mfr.errors import MfrError
from mfr.eval.bootstrap import MISS, bootstrap_intervals, identity_draws


def _direct(first_rank, ap, identities, draws, ks):
    """Each resample: gather the probes of every drawn identity (repeats included), then
    Rank-k = share of them with a first match in the top k, mAP = their mean AP."""
    names = sorted(set(identities))
    values = {f"rank{k}": [] for k in ks} | {"mAP": []}
    for row in draws:
        chosen = [p for i in row for p in range(len(identities)) if identities[p] == names[i]]
        for k in ks:
            values[f"rank{k}"].append(100.0 * np.mean([first_rank[p] < k for p in chosen]))
        values["mAP"].append(100.0 * np.mean([ap[p] for p in chosen]))
    return {key: [np.percentile(v, 2.5), np.percentile(v, 97.5)] for key, v in values.items()}


def test_identity_bootstrap_equals_direct_recomputation_on_small_case():
    rng = np.random.default_rng(3)
    identities = np.array(["a", "a", "b", "c", "c", "c", "d", "e", "e", "f"])
    first_rank = rng.integers(0, 12, size=len(identities)).astype(np.int64)
    first_rank[[2, 7]] = MISS  # two probes that could not be embedded
    ap = rng.uniform(0, 1, size=len(identities))
    ap[[2, 7]] = 0.0
    got = bootstrap_intervals(first_rank, ap, identities, num_resamples=200, seed=11)
    draws = identity_draws(6, 200, seed=11)
    want = _direct(first_rank, ap, identities, draws, (1, 5, 10))
    assert set(got) == {"rank1", "rank5", "rank10", "mAP"}
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-9)


def test_interval_brackets_the_point_estimate_and_is_seeded():
    rng = np.random.default_rng(0)
    identities = np.repeat(np.arange(40), 3)
    first_rank = rng.integers(0, 4, size=len(identities))
    ap = rng.uniform(size=len(identities))
    a = bootstrap_intervals(first_rank, ap, identities, num_resamples=500, seed=1)
    b = bootstrap_intervals(first_rank, ap, identities, num_resamples=500, seed=1)
    assert a == b
    rank1 = 100.0 * np.mean(first_rank < 1)
    assert a["rank1"][0] < rank1 < a["rank1"][1]
    assert a["mAP"][0] < 100.0 * ap.mean() < a["mAP"][1]


def test_one_identity_gives_a_zero_width_interval():
    got = bootstrap_intervals(np.array([0, 3, MISS]), np.array([1.0, 0.25, 0.0]), ["x"] * 3, 50)
    assert got["rank1"] == [pytest.approx(100 / 3)] * 2
    assert got["rank5"] == [pytest.approx(200 / 3)] * 2


@pytest.mark.parametrize(
    ("first_rank", "ap", "ids", "n", "message"),
    [
        ([], [], [], 10, "at least one probe"),
        ([0], [1.0], ["a"], 0, "at least 1 resample"),
        ([0, 1], [1.0], ["a", "b"], 10, "differ in length"),
    ],
)
def test_bad_bootstrap_arguments_raise_clear_errors(first_rank, ap, ids, n, message):
    with pytest.raises(MfrError, match=message):
        bootstrap_intervals(np.array(first_rank), np.array(ap), np.array(ids), n)
