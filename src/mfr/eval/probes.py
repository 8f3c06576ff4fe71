"""Per-probe retrieval results of one evaluation (``<name>.probes.npz``).

What a paired comparison of two models on the same probes needs
(:func:`mfr.eval.bootstrap.paired_difference_interval`): for each masked probe, in the
evaluation's order (embedded probes in embeddings-file order, then, end to end, the probes that
were not embedded), the 0-based rank of its first true match (``MISS`` when it has none), its
average precision, its identity and its key (the embeddings file's path of an embedded probe,
``<identity>/<file stem>`` of one that was not embedded). The probes skipped by retrieval
(identity without a gallery face) are not in it, as they are not in the figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfr.errors import MfrError
from mfr.io import atomic_write


@dataclass(frozen=True)
class ProbeResults:
    """``first_rank`` int64 (P,), ``average_precision`` float64 (P,) in [0, 1], ``identities``
    str (P,), ``keys`` str (P,) (the probe's path, see the module doc)."""

    first_rank: np.ndarray
    average_precision: np.ndarray
    identities: np.ndarray
    keys: np.ndarray

    def sorted_by_key(self) -> ProbeResults:
        """The same probes ordered by key, so that two results on the same probes align."""
        order = np.argsort(self.keys, kind="stable")
        return ProbeResults(self.first_rank[order], self.average_precision[order],
                            self.identities[order], self.keys[order])  # fmt: skip

    def values(self, metric: str) -> np.ndarray:
        """float64 (P,): the hit indicator of ``rank<k>`` (first match within the top k) or the
        AP for ``mAP``; their mean × 100 is the figure of the report.

        Raises:
            MfrError: another metric name.
        """
        if metric == "mAP":
            return self.average_precision.astype(np.float64)
        if metric.startswith("rank") and metric[4:].isdigit() and int(metric[4:]) >= 1:
            return (self.first_rank < int(metric[4:])).astype(np.float64)
        raise MfrError(f"unknown per-probe metric {metric!r}: rank<k> or mAP")


def save_probe_results(path: str | Path, retrieval, keys) -> None:
    """Write the per-probe arrays of ``retrieval`` (a :class:`mfr.eval.retrieval.
    RetrievalResult` with ``first_rank`` and ``probe_ids``) and the probes' ``keys`` (P,)
    atomically to ``path``.

    Raises:
        MfrError: the result has no per-probe ranks (computed without them), or ``keys`` is
            not one per probe.
        OutputError: ``path`` cannot be written.
    """
    if retrieval.first_rank is None or retrieval.probe_ids is None:
        raise MfrError(f"{path}: this retrieval result has no per-probe ranks to save")
    keys = np.asarray(keys).astype(str)
    if len(keys) != len(retrieval.first_rank):
        raise MfrError(f"{path}: {len(keys)} probe keys for {len(retrieval.first_rank)} probes")
    with atomic_write(path, "wb") as handle:
        np.savez(
            handle,
            first_rank=np.asarray(retrieval.first_rank, dtype=np.int64),
            average_precision=np.asarray(retrieval.average_precision, dtype=np.float64),
            identities=np.asarray(retrieval.probe_ids).astype(str),
            keys=keys,
        )


def load_probe_results(path: str | Path) -> ProbeResults:
    """Read a file written by :func:`save_probe_results`.

    Raises:
        MfrError: the file is missing, unreadable or its arrays disagree in length.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            result = ProbeResults(
                data["first_rank"].astype(np.int64),
                data["average_precision"].astype(np.float64),
                data["identities"].astype(str),
                data["keys"].astype(str),
            )
    except (OSError, KeyError, ValueError) as error:
        raise MfrError(f"{path}: not a per-probe results file ({error})") from None
    lengths = {len(a) for a in (result.first_rank, result.average_precision, result.identities,
                                result.keys)}  # fmt: skip
    if len(lengths) != 1:
        raise MfrError(f"{path}: per-probe arrays differ in length")
    return result
