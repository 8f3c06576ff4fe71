"""Bootstrap confidence intervals for Rank-k and mAP, resampling identities.

Probes of one identity are not independent (same person, often the same photo session), so
the unit of resampling is the identity: each resample draws as many identities as there are,
uniformly with replacement, and a drawn identity brings all its probes (a cluster bootstrap).
The interval is the percentile interval of the resampled metric (Efron & Tibshirani, *An
Introduction to the Bootstrap*, 1993, ch. 13).

A probe that could not be embedded (end-to-end evaluation) enters as a miss: its first-match
rank is ``MISS`` and its AP 0.
"""

from __future__ import annotations

import numpy as np

from mfr.errors import MfrError

MISS = np.iinfo(np.int64).max  # first-match rank of a probe with no rank (never a hit)


def identity_draws(num_identities: int, num_resamples: int, seed: int) -> np.ndarray:
    """The resampled identity indices: int64 (num_resamples, num_identities), row r being the
    identities of resample r (uniform, with replacement), drawn from
    ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, num_identities, size=(num_resamples, num_identities))


def bootstrap_intervals(
    first_rank: np.ndarray,
    average_precision: np.ndarray,
    identities: np.ndarray,
    num_resamples: int,
    seed: int = 0,
    ks: tuple[int, ...] = (1, 5, 10),
    level: float = 0.95,
) -> dict[str, list[float]]:
    """Percentile intervals of CMC Rank-k and mAP over identity resamples.

    Args:
        first_rank: int64 (P,), 0-based rank of each probe's first true match; ``MISS`` for a
            probe with none (not embedded).
        average_precision: float (P,), each probe's AP in [0, 1] (0 for a miss).
        identities: (P,) the probe identities (any hashable dtype).
        num_resamples: number of bootstrap resamples (≥ 1).
        seed: seed of the resampling (see ``identity_draws``).
        ks: the ranks k whose CMC value gets an interval.
        level: coverage of the interval (0.95 = the 2.5th to the 97.5th percentile).

    Returns:
        ``{"rank1": [low, high], "rank5": ..., "rank10": ..., "mAP": [low, high]}`` in percent
        (0-100), percentiles by numpy's default (linear) interpolation.

    Raises:
        MfrError: no probes, mismatched lengths, or ``num_resamples`` < 1.
    """
    first_rank = np.asarray(first_rank, dtype=np.int64)
    average_precision = np.asarray(average_precision, dtype=np.float64)
    identities = np.asarray(identities)
    if not len(first_rank) == len(average_precision) == len(identities):
        raise MfrError("bootstrap: first_rank, average_precision and identities differ in length")
    resample = _cluster_means(identities, num_resamples, seed)

    def interval(per_probe: np.ndarray) -> list[float]:
        return _percentile_interval(100.0 * resample(per_probe), level)

    out = {f"rank{k}": interval((first_rank < k).astype(np.float64)) for k in ks}
    out["mAP"] = interval(average_precision)
    return out


def _cluster_means(identities: np.ndarray, num_resamples: int, seed: int):
    """A function mapping per-probe values (P,) to their mean in each identity resample
    (num_resamples,), the resamples drawn by :func:`identity_draws` (``seed``)."""
    if num_resamples < 1:
        raise MfrError(f"bootstrap needs at least 1 resample, got {num_resamples}")
    if not len(identities):
        raise MfrError("bootstrap needs at least one probe")
    _, codes = np.unique(identities, return_inverse=True)
    num_ids = int(codes.max()) + 1
    draws = identity_draws(num_ids, num_resamples, seed)
    # times[r, i] = how often identity i was drawn in resample r
    times = np.zeros((num_resamples, num_ids), dtype=np.float64)
    np.add.at(times, (np.repeat(np.arange(num_resamples), num_ids), draws.ravel()), 1.0)
    probes_per_id = np.bincount(codes, minlength=num_ids).astype(np.float64)
    probes_drawn = times @ probes_per_id  # > 0: every identity has at least one probe

    def means(per_probe: np.ndarray) -> np.ndarray:
        per_id = np.bincount(codes, weights=per_probe, minlength=num_ids)
        return (times @ per_id) / probes_drawn

    return means


def _percentile_interval(values: np.ndarray, level: float) -> list[float]:
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return [float(low), float(high)]


def paired_difference_interval(
    values_a: np.ndarray,
    values_b: np.ndarray,
    identities: np.ndarray,
    num_resamples: int,
    seed: int = 0,
    level: float = 0.95,
) -> list[float]:
    """Percentile interval of ``mean(values_a) - mean(values_b)`` over identity resamples, the
    two models scored on the same probes (a paired cluster bootstrap).

    Two models read the same probes, so most of the probe-sampling noise of their figures is
    shared (a hard probe is hard for both); resampling the identities once for both and
    taking the difference in each resample cancels it, where comparing two separate intervals
    does not (Efron & Tibshirani 1993, ch. 13; the cluster unit as in
    :func:`bootstrap_intervals`).

    Args:
        values_a, values_b: float (P,), a per-probe figure of each model on the same probes in
            the same order: a hit indicator ``first_rank < k`` (Rank-k) or the AP (mAP),
            possibly averaged over seeds.
        identities: (P,) the probe identities.
        num_resamples: number of bootstrap resamples (≥ 1).
        seed: seed of the resampling (:func:`identity_draws`).
        level: coverage of the interval.

    Returns:
        ``[low, high]`` in percentage points (values scaled by 100).

    Raises:
        MfrError: no probes, arrays of different lengths, or ``num_resamples`` < 1.
    """
    values_a = np.asarray(values_a, dtype=np.float64)
    values_b = np.asarray(values_b, dtype=np.float64)
    identities = np.asarray(identities)
    if not len(values_a) == len(values_b) == len(identities):
        raise MfrError("paired bootstrap: the two models' probes and identities differ in length")
    resample = _cluster_means(identities, num_resamples, seed)
    return _percentile_interval(100.0 * resample(values_a - values_b), level)
