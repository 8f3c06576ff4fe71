"""Pair verification: 10-fold threshold accuracy, TAR@FAR and ROC AUC.

Rule (contract): a pair is judged "same" when its similarity is strictly greater than the
threshold. For fold k the threshold is chosen on the other folds among the midpoints
between consecutive distinct sorted similarities plus one value below the lowest
(lowest - 1) and one above the highest (highest + 1), maximising accuracy; ties go to the
lowest threshold. Folds are ``numpy.array_split(rows, folds)``. ``accuracy_std`` is the
population standard deviation (``numpy.std``, ddof=0) of the fold accuracies.

Over all pairs: the ROC curve sweeps the same candidate thresholds; TAR@FAR=x is the highest
true-accept rate among thresholds whose false-accept rate is at most x; ROC AUC is the
probability that a random matched pair scores above a random unmatched pair, ties counting
one half (the Mann-Whitney rank statistic, equal to the area under that ROC curve).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mfr.errors import MfrError

FAR_LEVELS = (1e-2, 1e-3)


@dataclass(frozen=True)
class VerificationResult:
    fold_accuracies: np.ndarray  # (folds,) fractions
    fold_thresholds: np.ndarray  # (folds,) cosine thresholds
    num_pairs: int
    num_matched: int
    num_unmatched: int
    tar_at_far: dict[float, float] = field(default_factory=dict)  # fractions; nan if undefined
    roc_auc: float = float("nan")
    roc_far: np.ndarray | None = None
    roc_tar: np.ndarray | None = None

    @property
    def accuracy(self) -> float:
        return float(self.fold_accuracies.mean())

    @property
    def accuracy_std(self) -> float:
        return float(self.fold_accuracies.std())  # population std (ddof=0)


def fold_indices(num_pairs: int, folds: int = 10) -> list[np.ndarray]:
    """Row indices of each fold: consecutive runs, exactly ``numpy.array_split``."""
    return np.array_split(np.arange(num_pairs), folds)


def _distinct_sorted(similarities: np.ndarray, same: np.ndarray):
    """Distinct sorted values; per value, the matched / unmatched counts at or below it."""
    order = np.argsort(similarities, kind="stable")
    values, labels = similarities[order], same[order]
    last = np.flatnonzero(np.r_[values[1:] != values[:-1], True])
    cum_same = np.cumsum(labels)[last]
    cum_diff = (last + 1) - cum_same
    return values[last], cum_same, cum_diff


def candidate_thresholds(similarities: np.ndarray) -> np.ndarray:
    """Ascending candidates: lowest - 1, midpoints of consecutive distinct values, highest + 1."""
    distinct = np.unique(np.asarray(similarities, dtype=np.float64))
    return np.r_[distinct[0] - 1.0, (distinct[:-1] + distinct[1:]) / 2.0, distinct[-1] + 1.0]


def best_threshold(similarities, same) -> tuple[float, float]:
    """The accuracy-maximising threshold (lowest on ties) and its accuracy, in O(n log n)."""
    s = np.asarray(similarities, dtype=np.float64)
    y = np.asarray(same, dtype=bool)
    if s.size == 0:
        raise MfrError("threshold search needs at least one pair")
    distinct, cum_same, cum_diff = _distinct_sorted(s, y)
    total_same = int(y.sum())
    # threshold just above distinct[i]: unmatched pairs <= distinct[i] are right, matched above
    correct = np.r_[total_same, cum_diff + (total_same - cum_same)]
    thresholds = np.r_[distinct[0] - 1.0, (distinct[:-1] + distinct[1:]) / 2.0, distinct[-1] + 1.0]
    best = int(np.argmax(correct))  # first maximum = lowest threshold
    return float(thresholds[best]), float(correct[best] / s.size)


def roc_curve(similarities, same) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(far, tar, thresholds) at every candidate threshold, from the highest threshold down."""
    s = np.asarray(similarities, dtype=np.float64)
    y = np.asarray(same, dtype=bool)
    distinct, cum_same, cum_diff = _distinct_sorted(s, y)
    n_same, n_diff = int(y.sum()), int((~y).sum())
    # accepted at threshold just below distinct[i]: everything >= distinct[i]
    above_same = n_same - np.r_[0, cum_same[:-1]]
    above_diff = n_diff - np.r_[0, cum_diff[:-1]]
    tar = np.r_[0, above_same[::-1]] / max(n_same, 1)
    far = np.r_[0, above_diff[::-1]] / max(n_diff, 1)
    thresholds = candidate_thresholds(s)[::-1]
    return far, tar, thresholds


def tar_at_far(similarities, same, far_level: float) -> float:
    """Highest TAR over thresholds with FAR <= far_level (nan without both pair kinds)."""
    y = np.asarray(same, dtype=bool)
    if y.all() or not y.any():
        return float("nan")
    far, tar, _ = roc_curve(similarities, y)
    return float(tar[far <= far_level].max())


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their positions."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    mean_rank = (starts + ends + 1) / 2.0  # mean of positions start+1 .. end
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def roc_auc(similarities, same) -> float:
    """P(matched pair scores above an unmatched one), ties counting 1/2; nan without both kinds."""
    s = np.asarray(similarities, dtype=np.float64)
    y = np.asarray(same, dtype=bool)
    n_same, n_diff = int(y.sum()), int((~y).sum())
    if n_same == 0 or n_diff == 0:
        return float("nan")
    rank_sum = _average_ranks(s)[y].sum()
    return float((rank_sum - n_same * (n_same + 1) / 2.0) / (n_same * n_diff))


def verification_metrics(similarities, same, folds: int = 10) -> VerificationResult:
    """10-fold accuracy with per-fold thresholds, plus TAR@FAR and ROC AUC over all pairs."""
    s = np.asarray(similarities, dtype=np.float64)
    y = np.asarray(same, dtype=bool)
    if s.ndim != 1 or s.shape != y.shape:
        raise MfrError("similarities and labels must be 1-D arrays of the same length")
    if len(s) < folds:
        raise MfrError(f"{folds}-fold verification needs at least {folds} pairs, got {len(s)}")
    if not np.isfinite(s).all():
        raise MfrError("pair similarities contain NaN or inf")
    accuracies, thresholds = np.empty(folds), np.empty(folds)
    for k, test in enumerate(fold_indices(len(s), folds)):
        train = np.ones(len(s), dtype=bool)
        train[test] = False
        thresholds[k], _ = best_threshold(s[train], y[train])
        accuracies[k] = np.mean((s[test] > thresholds[k]) == y[test])
    far, tar, _ = roc_curve(s, y)
    return VerificationResult(
        fold_accuracies=accuracies,
        fold_thresholds=thresholds,
        num_pairs=len(s),
        num_matched=int(y.sum()),
        num_unmatched=int((~y).sum()),
        tar_at_far={level: tar_at_far(s, y, level) for level in FAR_LEVELS},
        roc_auc=roc_auc(s, y),
        roc_far=far,
        roc_tar=tar,
    )


def pair_similarities(normalised: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each pair (rows of L2-normalised embeddings), float32; computed in
    blocks so that memory stays small for many pairs."""
    out = np.empty(len(a), dtype=np.float32)
    for start in range(0, len(a), 8192):
        block = slice(start, start + 8192)
        out[block] = np.einsum("ij,ij->i", normalised[a[block]], normalised[b[block]])
    return out
