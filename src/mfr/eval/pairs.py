"""Pairs files (CSV ``a,b,same``: row indices into an embeddings file) and the paper's pair
protocol (§3.2): 10 folds, each with equally many matched and unmatched pairs, every pair one
masked image (``a``) and one full-face image (``b``), drawn from a seed without duplicates.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfr.errors import MfrError
from mfr.eval.embeddings import FULL, MASKED
from mfr.io import atomic_write, missing_file, read_text

HEADER = ["a", "b", "same"]
DEFAULT_PAIRS_PER_FOLD = 10_000  # 5,000 matched + 5,000 unmatched, as in the paper
_PERMUTE_LIMIT = 8_000_000  # below this many masked x full combinations, shuffle them all


@dataclass(frozen=True)
class Pairs:
    a: np.ndarray  # int64 (P,)
    b: np.ndarray  # int64 (P,)
    same: np.ndarray  # bool (P,)

    def __len__(self) -> int:
        return len(self.a)


@dataclass(frozen=True)
class GeneratedPairs:
    pairs: Pairs
    folds: int
    requested_per_fold: int  # matched + unmatched asked for per fold
    matched_per_fold: int  # what was drawn (unmatched per fold is the same)
    available_matched: int  # distinct masked-vs-full pairs of one identity
    available_unmatched: int  # distinct masked-vs-full pairs of two identities

    @property
    def shrunk(self) -> bool:
        return 2 * self.matched_per_fold < self.requested_per_fold

    def note(self) -> str | None:
        """A sentence saying how and why the protocol was shrunk (None when it was not)."""
        if not self.shrunk:
            return None
        return (
            f"pairs shrunk to {self.matched_per_fold} matched + {self.matched_per_fold} "
            f"unmatched per fold (asked for {self.requested_per_fold // 2} + "
            f"{self.requested_per_fold // 2}): the data has {self.available_matched} distinct "
            f"matched and {self.available_unmatched} distinct unmatched masked-vs-full pairs "
            f"for {self.folds} folds"
        )


def read_pairs(path: str | Path, num_embeddings: int | None = None) -> Pairs:
    """Read a pairs CSV; a bad header, non-integer or out-of-range index or a ``same`` other
    than 0/1 is an ``MfrError`` naming the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise missing_file(path, "pairs file")
    a, b, same = [], [], []
    reader = csv.reader(read_text(path, "pairs file").splitlines())
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != HEADER:
        raise MfrError(f"{path}: header must be 'a,b,same', got {','.join(header or [])!r}")
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != 3:
            raise MfrError(f"{path}: line {line}: expected 3 fields a,b,same, got {len(row)}")
        try:
            ia, ib, flag = (int(field.strip()) for field in row)
        except ValueError:
            raise MfrError(f"{path}: line {line}: fields must be integers, got {row}") from None
        if flag not in (0, 1):
            raise MfrError(f"{path}: line {line}: 'same' must be 0 or 1, got {flag}")
        for index in (ia, ib):
            if index < 0 or (num_embeddings is not None and index >= num_embeddings):
                raise MfrError(
                    f"{path}: line {line}: index {index} is out of range "
                    f"(the embeddings file has {num_embeddings} rows)"
                )
        a.append(ia)
        b.append(ib)
        same.append(bool(flag))
    return Pairs(np.asarray(a, np.int64), np.asarray(b, np.int64), np.asarray(same, bool))


def write_pairs(path: str | Path, pairs: Pairs) -> None:
    """Write a pairs CSV (header ``a,b,same``) atomically."""
    with atomic_write(path, "w") as handle:
        handle.write("a,b,same\n")
        handle.writelines(
            f"{a},{b},{int(s)}\n" for a, b, s in zip(pairs.a.tolist(), pairs.b.tolist(), pairs.same)
        )


def pair_kinds(pairs: Pairs, domains: np.ndarray) -> dict[str, int]:
    """How many pairs are masked-vs-full, masked-vs-masked and full-vs-full."""
    da, db = domains[pairs.a], domains[pairs.b]
    return {
        "masked_full": int(np.count_nonzero(da != db)),
        "masked_masked": int(np.count_nonzero((da == MASKED) & (db == MASKED))),
        "full_full": int(np.count_nonzero((da == FULL) & (db == FULL))),
    }


def _matched_universe(masked_codes: np.ndarray, full_codes: np.ndarray):
    """All (masked position, full position) pairs of equal identity, in a fixed order."""
    order = np.argsort(full_codes, kind="stable")
    sorted_codes = full_codes[order]
    lo = np.searchsorted(sorted_codes, masked_codes, side="left")
    counts = np.searchsorted(sorted_codes, masked_codes, side="right") - lo
    mi = np.repeat(np.arange(len(masked_codes)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return mi, order[np.repeat(lo, counts) + offsets]


def _draw_unmatched(rng, masked_codes, full_codes, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` distinct (masked, full) positions of different identities, seed-determined."""
    num_full = len(full_codes)
    population = len(masked_codes) * num_full
    if population <= _PERMUTE_LIMIT:
        linear = rng.permutation(population)
        mi, fi = np.divmod(linear, num_full)
        keep = masked_codes[mi] != full_codes[fi]
        return mi[keep][:count], fi[keep][:count]
    chosen = np.empty(0, dtype=np.int64)
    while len(chosen) < count:
        draw = rng.integers(0, population, size=2 * (count - len(chosen)) + 64)
        mi, fi = np.divmod(draw, num_full)
        draw = draw[masked_codes[mi] != full_codes[fi]]
        merged = np.concatenate([chosen, draw])
        _, first = np.unique(merged, return_index=True)
        chosen = merged[np.sort(first)]  # de-duplicated, first occurrence order kept
    return np.divmod(chosen[:count], num_full)


def generate_pairs(
    identities,
    domains,
    pairs_per_fold: int = DEFAULT_PAIRS_PER_FOLD,
    folds: int = 10,
    seed: int = 0,
) -> GeneratedPairs:
    """The paper's protocol: ``folds`` consecutive folds of ``pairs_per_fold / 2`` matched then
    ``pairs_per_fold / 2`` unmatched masked-vs-full pairs (``a`` masked, ``b`` full), no pair
    twice. Shrinks every fold equally to what the data allows (see ``GeneratedPairs.note``)."""
    if pairs_per_fold < 2 or pairs_per_fold % 2:
        raise MfrError(f"pairs per fold must be a positive even number, got {pairs_per_fold}")
    identities = np.asarray(identities)
    domains = np.asarray(domains)
    _, codes = np.unique(identities, return_inverse=True)
    masked = np.flatnonzero(domains == MASKED)
    full = np.flatnonzero(domains == FULL)
    masked_codes, full_codes = codes[masked], codes[full]
    match_m, match_f = _matched_universe(masked_codes, full_codes)
    available_matched = len(match_m)
    available_unmatched = len(masked) * len(full) - available_matched
    per_fold = min(pairs_per_fold // 2, available_matched // folds, available_unmatched // folds)
    rng = np.random.default_rng(seed)
    total = per_fold * folds
    pick = rng.choice(available_matched, size=total, replace=False) if total else np.zeros(0, int)
    um, uf = _draw_unmatched(rng, masked_codes, full_codes, total) if total else (pick, pick)
    a, b, same = [], [], []
    for k in range(folds):
        part = slice(k * per_fold, (k + 1) * per_fold)
        a += [masked[match_m[pick[part]]], masked[um[part]]]
        b += [full[match_f[pick[part]]], full[uf[part]]]
        same += [np.ones(per_fold, bool), np.zeros(per_fold, bool)]
    pairs = Pairs(
        np.concatenate(a).astype(np.int64) if a else np.zeros(0, np.int64),
        np.concatenate(b).astype(np.int64) if b else np.zeros(0, np.int64),
        np.concatenate(same) if same else np.zeros(0, bool),
    )
    return GeneratedPairs(
        pairs, folds, pairs_per_fold, per_fold, available_matched, available_unmatched
    )
