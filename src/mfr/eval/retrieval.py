"""Masked-face retrieval: CMC Rank-k and mAP of masked probes against a full-face gallery.

Ranking rule (both the fast path and the reference): each probe orders the gallery by
descending cosine similarity, and equal similarities keep gallery index order (a stable
sort of ``-similarity``). The 0-based position of gallery item ``j`` is therefore
``#{i: s_i > s_j} + #{i < j: s_i == s_j}``.

CMC Rank-k is the fraction of probes whose first true match sits in the top k; AP is the
mean of precision@rank over the ranks of all true matches of the probe; mAP is its mean.
Probes whose identity has no gallery image are left out and counted (``skipped_probes``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mfr.errors import MfrError
from mfr.eval.embeddings import FULL, MASKED, Embeddings, l2_normalise

_MAX_BLOCK_ELEMENTS = 1 << 26


@dataclass(frozen=True)
class RetrievalResult:
    """CMC over all gallery ranks, per-probe AP, and the counts behind them."""

    cmc: np.ndarray  # float64 (num_gallery,): cmc[k-1] = fraction with a match in the top k
    average_precision: np.ndarray  # float64 (num_probes,)
    num_probes: int  # probes evaluated (skipped ones excluded)
    num_gallery: int
    skipped_probes: int
    # per evaluated probe (fast path only): 0-based rank of its first true match (MISS when it
    # has none, see mfr.eval.bootstrap) and its identity; what bootstrap intervals resample
    first_rank: np.ndarray | None = None  # int64 (num_probes,)
    probe_ids: np.ndarray | None = None  # (num_probes,)

    def rank(self, k: int) -> float:
        """CMC Rank-k as a fraction in [0, 1]; k beyond the gallery size counts all of it."""
        if self.num_probes == 0:
            return float("nan")
        return float(self.cmc[min(k, self.num_gallery) - 1])

    @property
    def mean_average_precision(self) -> float:
        return float(self.average_precision.mean()) if self.num_probes else float("nan")


def _identity_codes(probe_ids, gallery_ids) -> tuple[np.ndarray, np.ndarray]:
    probe_ids = np.asarray(probe_ids)
    gallery_ids = np.asarray(gallery_ids)
    _, codes = np.unique(np.concatenate([probe_ids, gallery_ids]), return_inverse=True)
    return codes[: len(probe_ids)], codes[len(probe_ids) :]


def _check_sizes(num_probes: int, num_gallery: int) -> None:
    if num_probes == 0:
        raise MfrError("retrieval needs at least one probe (masked) embedding; there are none")
    if num_gallery == 0:
        raise MfrError("retrieval needs at least one gallery (full-face) embedding; there are none")


def _result_from_ranks(
    match_probe: np.ndarray, match_rank: np.ndarray, num_probes: int, num_gallery: int, skipped
) -> RetrievalResult:
    """CMC and AP from the 0-based ranks of every (probe, true match) pair."""
    if len(match_rank) == 0:
        return RetrievalResult(np.zeros(num_gallery), np.zeros(0), 0, num_gallery, int(skipped))
    order = np.lexsort((match_rank, match_probe))
    probe, rank = match_probe[order], match_rank[order]
    starts = np.flatnonzero(np.r_[True, probe[1:] != probe[:-1]])
    counts = np.diff(np.r_[starts, len(probe)])
    # hit number within its probe (1, 2, ...) divided by its 1-based rank = precision@rank
    hit_number = np.arange(len(probe)) - np.repeat(starts, counts) + 1
    precision = hit_number / (rank + 1.0)
    ap = np.add.reduceat(precision, starts) / counts
    first = rank[starts]
    cmc = np.cumsum(np.bincount(first, minlength=num_gallery)[:num_gallery]) / max(num_probes, 1)
    return RetrievalResult(cmc, ap, num_probes, num_gallery, int(skipped))


def _match_ranks_in_block(sim: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """0-based ranks of the entries ``sim[rows, cols]`` under the stable ranking rule."""
    num_gallery = sim.shape[1]
    ascending = np.sort(sim, axis=1)
    values = sim[rows, cols]
    greater = np.empty(len(rows), dtype=np.int64)
    equal = np.empty(len(rows), dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]) if len(rows) else rows
    ends = np.r_[starts[1:], len(rows)]
    for start, end in zip(starts, ends):  # one row: two binary searches for all its matches
        row = ascending[rows[start]]
        right = np.searchsorted(row, values[start:end], side="right")
        left = np.searchsorted(row, values[start:end], side="left")
        greater[start:end] = num_gallery - right
        equal[start:end] = right - left
    ranks = greater
    for t in np.flatnonzero(equal > 1):  # exact ties: earlier gallery indices rank first
        ranks[t] += np.count_nonzero(sim[rows[t], : cols[t]] == values[t])
    return ranks


def _true_matches(probe_codes: np.ndarray, gallery_codes: np.ndarray):
    """(probe, gallery) index pairs of equal identity, sorted by probe then gallery index."""
    order = np.argsort(gallery_codes, kind="stable")
    sorted_codes = gallery_codes[order]
    lo = np.searchsorted(sorted_codes, probe_codes, side="left")
    hi = np.searchsorted(sorted_codes, probe_codes, side="right")
    counts = hi - lo
    probe = np.repeat(np.arange(len(probe_codes)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    gallery = order[np.repeat(lo, counts) + offsets]
    return probe, gallery, counts


def retrieval_metrics(
    probe_embeddings: np.ndarray,
    probe_ids,
    gallery_embeddings: np.ndarray,
    gallery_ids,
    chunk_size: int = 1024,
    similarity: np.ndarray | None = None,
) -> RetrievalResult:
    """CMC and mAP (fast path): one float32 matrix multiply per probe chunk, a row sort and
    binary searches for the true matches. Pass ``similarity`` (probes x gallery) to skip the
    multiply (embeddings are then ignored and may be ``None``)."""
    probe_codes, gallery_codes = _identity_codes(probe_ids, gallery_ids)
    num_probes, num_gallery = len(probe_codes), len(gallery_codes)
    _check_sizes(num_probes, num_gallery)
    match_probe, match_gallery, counts = _true_matches(probe_codes, gallery_codes)
    valid = np.flatnonzero(counts > 0)
    skipped = num_probes - len(valid)
    if similarity is None:
        probes = l2_normalise(probe_embeddings)
        gallery_t = np.ascontiguousarray(l2_normalise(gallery_embeddings).T)
    # bound the (chunk x gallery) similarity block and its sorted copy to ~2 x 256 MB
    chunk_size = max(1, min(chunk_size, _MAX_BLOCK_ELEMENTS // num_gallery))
    ranks = np.empty(len(match_probe), dtype=np.int64)
    match_starts = np.r_[0, np.cumsum(counts)]
    for begin in range(0, num_probes, chunk_size):
        end = min(begin + chunk_size, num_probes)
        block = similarity[begin:end] if similarity is not None else probes[begin:end] @ gallery_t
        m0, m1 = match_starts[begin], match_starts[end]
        ranks[m0:m1] = _match_ranks_in_block(
            block, match_probe[m0:m1] - begin, match_gallery[m0:m1]
        )
    # renumber valid probes 0..len(valid)-1 (skipped probes have no matches at all)
    renumber = np.full(num_probes, -1)
    renumber[valid] = np.arange(len(valid))
    result = _result_from_ranks(renumber[match_probe], ranks, len(valid), num_gallery, skipped)
    first = np.full(len(valid), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, renumber[match_probe], ranks)
    return replace(result, first_rank=first, probe_ids=np.asarray(probe_ids)[valid])


def retrieval_reference(similarity: np.ndarray, probe_ids, gallery_ids) -> RetrievalResult:
    """Plain per-probe loop (torchreid style) over a (probes x gallery) similarity matrix:
    the reference the fast path is tested and benchmarked against."""
    similarity = np.asarray(similarity)
    probe_ids, gallery_ids = np.asarray(probe_ids), np.asarray(gallery_ids)
    num_probes, num_gallery = similarity.shape
    _check_sizes(num_probes, num_gallery)
    first_hits, aps, skipped = [], [], 0
    for i in range(num_probes):
        order = np.argsort(-similarity[i], kind="stable")
        matches = gallery_ids[order] == probe_ids[i]
        if not matches.any():
            skipped += 1
            continue
        hit_ranks = np.flatnonzero(matches)  # 0-based
        first_hits.append(hit_ranks[0])
        precisions = [(n + 1) / (r + 1) for n, r in enumerate(hit_ranks)]
        aps.append(float(np.mean(precisions)))
    num_valid = num_probes - skipped
    cmc = np.zeros(num_gallery)
    for first in first_hits:
        cmc[first:] += 1
    cmc /= max(num_valid, 1)
    return RetrievalResult(cmc, np.asarray(aps, dtype=np.float64), num_valid, num_gallery, skipped)


def evaluate_retrieval(embeddings: Embeddings, chunk_size: int = 1024) -> RetrievalResult:
    """Retrieval with the contract's split: masked probes against full-face gallery."""
    probes = embeddings.domains == MASKED
    gallery = embeddings.domains == FULL
    return retrieval_metrics(
        embeddings.embeddings[probes],
        embeddings.identities[probes],
        embeddings.embeddings[gallery],
        embeddings.identities[gallery],
        chunk_size=chunk_size,
    )


def with_missed_probes(
    result: RetrievalResult, missed: int, missed_ids: list[str] | None = None
) -> RetrievalResult:
    """End-to-end retrieval: ``result`` plus ``missed`` probes that could not be aligned or
    embedded, each a miss (no rank: it never enters the CMC; AP 0). ``num_probes`` counts
    them; CMC and mAP are over all probes. ``missed_ids`` (their identities) keeps the
    per-probe arrays that bootstrap intervals need."""
    if missed < 0:
        raise ValueError(f"missed must be >= 0, got {missed}")
    total = result.num_probes + missed
    cmc = result.cmc * (result.num_probes / total) if total else result.cmc
    ap = np.r_[result.average_precision, np.zeros(missed)]
    first_rank = probe_ids = None
    if result.first_rank is not None and missed_ids is not None and len(missed_ids) == missed:
        first_rank = np.r_[result.first_rank, np.full(missed, np.iinfo(np.int64).max)]
        probe_ids = np.r_[result.probe_ids.astype(str), np.asarray(missed_ids, dtype=str)]
    return RetrievalResult(
        cmc, ap, total, result.num_gallery, result.skipped_probes, first_rank, probe_ids
    )
