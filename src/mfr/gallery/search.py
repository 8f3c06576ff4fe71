"""Nearest identities of probe embeddings in a gallery: exact (NumPy) or faiss.

Similarity is the cosine (inner product of L2-normalised vectors). An identity's score is the
maximum over its enrolled images, so its rank is that of its best-matching image (the same
rule as image-level Rank-1 in ``mfr eval``). Results are ordered by score, highest first,
ties broken by identity name; both backends return the same top-k on the same data (ties
aside: faiss and NumPy sum in different orders, so scores may differ in the last bits).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mfr.errors import MfrError
from mfr.eval.embeddings import l2_normalise

#: Largest probe-by-gallery similarity block computed at once (bytes), for big galleries.
BLOCK_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Match:
    """One ranked identity for a probe: its score and its best-matching enrolled entry."""

    identity: str
    score: float
    entry: int  # row index in the gallery of the best-matching image


def _faiss():
    try:
        import faiss
    except ImportError as error:
        raise MfrError("faiss search needs faiss-cpu: pip install 'mfr[faiss]'") from error
    return faiss


def build_faiss_index(embeddings: np.ndarray, kind: str = "flat", nlist: int | None = None):
    """A faiss inner-product index over normalised ``embeddings``: ``flat`` (exact),
    ``ivf`` (IVF-Flat, approximate; ``nprobe`` set to 16) or ``hnsw`` (approximate)."""
    faiss = _faiss()
    data = np.ascontiguousarray(l2_normalise(embeddings))
    dim = data.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "ivf":
        # ~4 sqrt(N) lists, but at least 39 training points per list (faiss k-means minimum)
        nlist = nlist or max(1, min(int(4 * np.sqrt(len(data))), len(data) // 39))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(data)
        index.nprobe = 16
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 128
    else:
        raise MfrError(f"unknown faiss index {kind!r}: use flat, ivf or hnsw")
    index.add(data)
    return index


class GallerySearch:
    """Top-k identity search over a gallery's embeddings (``backend`` ``exact`` or ``faiss``)."""

    def __init__(
        self,
        embeddings: np.ndarray,
        identities: np.ndarray | list[str],
        backend: str = "exact",
        faiss_index: str = "flat",
    ):
        if backend not in {"exact", "faiss"}:
            raise MfrError(f"unknown search backend {backend!r}: use exact or faiss")
        embeddings = l2_normalise(embeddings)
        self.dim = embeddings.shape[1]
        self.identities = np.asarray(identities, dtype=str)
        self.classes, self.codes = np.unique(self.identities, return_inverse=True)
        self.backend = backend
        self.one_per_identity = len(self.classes) == len(self.identities)
        # entries grouped by identity (identity order), so that exact search's similarity
        # columns come out grouped for the max-over-identity reduction
        self.order = np.argsort(self.codes, kind="stable")
        self.starts = np.searchsorted(self.codes[self.order], np.arange(len(self.classes)))
        if backend == "faiss":
            self.index = build_faiss_index(embeddings, faiss_index)
        else:
            self.grouped = np.ascontiguousarray(embeddings[self.order])

    @property
    def num_identities(self) -> int:
        return len(self.classes)

    def search(self, probes: np.ndarray, k: int = 5) -> list[list[Match]]:
        """The ``k`` best identities of each probe (fewer when the gallery holds fewer)."""
        probes = np.ascontiguousarray(l2_normalise(np.atleast_2d(probes)))
        if probes.shape[1] != self.dim:
            raise MfrError(f"probe embeddings are {probes.shape[1]}-d, gallery is {self.dim}-d")
        k = min(int(k), self.num_identities)
        if k <= 0 or len(probes) == 0:
            return [[] for _ in range(len(probes))]
        if self.backend == "faiss":
            codes, scores, entries = self._search_faiss(probes, k)
        else:
            codes, scores, entries = self._search_exact(probes, k)
        return [
            [
                Match(str(self.classes[c]), float(s), int(e))
                for c, s, e in zip(codes[p], scores[p], entries[p], strict=True)
                if c >= 0
            ]
            for p in range(len(probes))
        ]

    def _rank(self, codes, scores, entries, k):
        """Sort each row's candidates by (score desc, identity name) and keep ``k``."""
        order = np.lexsort((codes, -scores), axis=-1)[:, :k]
        take = np.take_along_axis
        return take(codes, order, 1), take(scores, order, 1), take(entries, order, 1)

    def _search_exact(self, probes, k):
        n = len(self.grouped)
        chunk = max(1, BLOCK_BYTES // (4 * max(n, 1)))
        parts = []
        for start in range(0, len(probes), chunk):
            sims = probes[start : start + chunk] @ self.grouped.T  # (P, N), grouped by identity
            if self.one_per_identity:
                per_identity, best_entry = sims, self.order[None, :]
            else:
                per_identity = np.maximum.reduceat(sims, self.starts, axis=1)
                # entry of each identity's maximum: first position in the group reaching it
                sizes = np.diff(np.append(self.starts, n))
                hit = sims == np.repeat(per_identity, sizes, axis=1)
                first = np.maximum.reduceat(np.where(hit, -np.arange(n), -n), self.starts, axis=1)
                best_entry = self.order[-first]
            top = np.argpartition(-per_identity, k - 1, axis=1)[:, :k]
            scores = np.take_along_axis(per_identity, top, 1)
            entries = np.take_along_axis(np.broadcast_to(best_entry, per_identity.shape), top, 1)
            parts.append(self._rank(top, scores, entries, k))
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))

    def _search_faiss(self, probes, k):
        """Search images, widening until each probe has ``k`` distinct identities."""
        n = self.index.ntotal
        depth = k if self.one_per_identity else min(n, 4 * k)
        while True:
            scores, entries = self.index.search(probes, depth)
            found = [self._distinct(s, e, k) for s, e in zip(scores, entries, strict=True)]
            if depth >= n or all(len(f[0]) >= k for f in found):
                break
            depth = min(n, depth * 4)
        # approximate indexes may return fewer than k: pad, and drop the padding in search()
        codes = np.full((len(found), k), -1, np.int64)
        top_scores = np.full((len(found), k), -np.inf, np.float32)
        top_entries = np.full((len(found), k), -1, np.int64)
        for row, (c, s, e) in enumerate(found):
            codes[row, : len(c)], top_scores[row, : len(c)], top_entries[row, : len(c)] = c, s, e
        return self._rank(codes, top_scores, top_entries, k)

    def _distinct(self, scores, entries, k):
        """The first ``k`` distinct identities in one probe's image ranking."""
        codes, best, where = [], [], []
        seen = set()
        for score, entry in zip(scores, entries, strict=True):
            if entry < 0:
                break
            code = int(self.codes[entry])
            if code not in seen:
                seen.add(code)
                codes.append(code)
                best.append(score)
                where.append(int(entry))
                if len(codes) == k:
                    break
        return codes, best, where
