"""The two public pair protocols in the shared data, and their conversion to a pairs CSV.

- LFW: ``lfw/meta/pairs.csv`` (10 folds x (300 matched + 300 mismatched), in file order).
  Rows are ``name,n1,n2,`` (same person) or ``name1,n1,name2,n2`` (different); the original
  ``pairs.txt`` (tab separated, first line ``10 300``) is read as well. Images are
  ``lfw/images/<Name>/<Name>_NNNN.jpg``.
- MFR2: ``pairs.txt`` lines ``Id a b`` (same) or ``IdA a IdB b`` (different); images are
  ``<Id>/<Id>_NNNN.png``.

Each reader returns ``BenchmarkPair(a, b, same)`` in protocol order (so the pairs CSV keeps
LFW's folds as consecutive runs). :func:`pairs_to_csv` maps the images to rows of an
embeddings file by (identity, file stem), so embeddings of aligned copies (another folder,
another suffix) match too.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mfr.data.layout import mfr2_image_path
from mfr.errors import MfrError
from mfr.io import missing_file, read_text


class BenchmarkPair(NamedTuple):
    a: Path
    b: Path
    same: bool


def lfw_image_path(root: Path, name: str, number: int) -> Path:
    """``<root>/images/<Name>/<Name>_NNNN.jpg``."""
    return Path(root) / "images" / name / f"{name}_{number:04d}.jpg"


def _number(token: str, where: str) -> int:
    token = token.strip()
    if not token.isdigit():
        raise MfrError(f"{where}: image number must be a positive integer, got {token!r}")
    return int(token)


def read_lfw_pairs(root: str | Path, pairs_file: str | Path | None = None) -> list[BenchmarkPair]:
    """LFW's verification pairs, in file order; ``root`` is the folder holding ``images/``."""
    root = Path(root)
    path = Path(pairs_file) if pairs_file else root / "meta" / "pairs.csv"
    if not path.is_file():
        raise missing_file(path, "LFW pairs file")
    text = read_text(path, "pairs file").splitlines()
    if path.suffix == ".csv":
        rows = list(csv.reader(text))
        header = [h.strip() for h in rows[0]] if rows else []
        if header[:3] != ["name", "imagenum1", "imagenum2"]:
            raise MfrError(f"{path} line 1: not an LFW pairs.csv header: {rows[0] if rows else ''}")
        numbered = list(enumerate(rows[1:], start=2))
    else:
        numbered = [(i, line.split()) for i, line in enumerate(text, start=1)]
        if numbered and len(numbered[0][1]) == 2:  # "10 300" header of pairs.txt
            numbered = numbered[1:]
    pairs = []
    for line, row in numbered:
        cells = [c.strip() for c in row]
        while cells and cells[-1] == "":
            cells.pop()
        if not cells:
            continue
        where = f"{path} line {line}"
        expected = f"expected 'name,n1,n2' or 'name1,n1,name2,n2', got {row}"
        pairs.append(_pair(cells, lambda n, k: lfw_image_path(root, n, k), where, expected))
    if not pairs:
        raise MfrError(f"{path}: no pairs")
    return pairs


def _pair(cells: list[str], image_path, where: str, expected: str) -> BenchmarkPair:
    """``name a b`` (same person) or ``name1 a name2 b`` (different) -> a BenchmarkPair."""
    if len(cells) == 3:
        name, a, b = cells
        return BenchmarkPair(
            image_path(name, _number(a, where)), image_path(name, _number(b, where)), True
        )
    if len(cells) == 4:
        name_a, a, name_b, b = cells
        return BenchmarkPair(
            image_path(name_a, _number(a, where)), image_path(name_b, _number(b, where)), False
        )
    raise MfrError(f"{where}: {expected}")


def read_mfr2_pairs(root: str | Path, pairs_file: str | Path | None = None) -> list[BenchmarkPair]:
    """MFR2's ``pairs.txt`` pairs, in file order; ``root`` is the MFR2 folder."""
    root = Path(root)
    path = Path(pairs_file) if pairs_file else root / "pairs.txt"
    if not path.is_file():
        raise missing_file(path, "MFR2 pairs file")
    pairs = []
    for line, text in enumerate(read_text(path, "pairs file").splitlines(), start=1):
        cells = text.split()
        if not cells:
            continue
        where = f"{path} line {line}"
        expected = f"expected 'Id a b' or 'IdA a IdB b', got {text!r}"
        pairs.append(_pair(cells, lambda n, k: mfr2_image_path(root, n, k), where, expected))
    if not pairs:
        raise MfrError(f"{path}: no pairs")
    return pairs


@dataclass
class PairsConversion:
    """What :func:`pairs_to_csv` did: pairs written, and the pairs left out with the reason."""

    total: int
    written: int
    missing: list[tuple[int, str]] = field(default_factory=list)  # (pair number, reason)

    def summary(self) -> str:
        text = f"{self.written} of {self.total} pairs written"
        if self.missing:
            text += f"; {len(self.missing)} left out because an image has no embedding"
        return text


def _embedding_keys(embeddings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if isinstance(embeddings, str | Path):
        from mfr.eval.embeddings import load_embeddings

        embeddings = load_embeddings(embeddings)
    if isinstance(embeddings, Mapping):
        return (
            np.asarray(embeddings["identities"]),
            np.asarray(embeddings["domains"]),
            np.asarray(embeddings["paths"]),
        )
    return embeddings.identities, embeddings.domains, embeddings.paths


def match_pairs(
    pairs: Sequence[BenchmarkPair],
    identities: Sequence[str],
    domains: Sequence[int],
    paths: Sequence[str],
    domain_a: int | None = None,
    domain_b: int | None = None,
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Rows ``(a, b, same)`` (int64, protocol order) of the pairs whose two images have an
    embedding, and ``(pair number, reason)`` for the others.

    An image matches the embedding row of the same identity and file stem; ``domain_a`` /
    ``domain_b`` restrict side a / b to one domain (needed when a dataset holds a full and a
    masked image of the same stem).
    """
    table: dict[tuple[str, str], list[int]] = {}
    for row, (identity, rel) in enumerate(zip(identities, paths)):
        table.setdefault((str(identity), Path(str(rel)).stem), []).append(row)
    domains = np.asarray(domains)

    def lookup(image: Path, domain: int | None) -> int | str:
        rows = table.get((image.parent.name, image.stem), [])
        if domain is not None:
            rows = [r for r in rows if domains[r] == domain]
        if not rows:
            where = "" if domain is None else f" in domain {domain}"
            return f"no embedding for {image.parent.name}/{image.name}{where}"
        if len(rows) > 1:
            raise MfrError(
                f"{image.parent.name}/{image.stem} matches {len(rows)} embeddings (rows "
                f"{rows[:4]}, domains {sorted({int(domains[r]) for r in rows})}); choose a "
                "domain for each side (--domain-a/--domain-b)"
            )
        return rows[0]

    out, missing = [], []
    for number, pair in enumerate(pairs, start=1):
        a, b = lookup(pair.a, domain_a), lookup(pair.b, domain_b)
        if isinstance(a, str) or isinstance(b, str):
            missing.append((number, a if isinstance(a, str) else b))
            continue
        out.append((a, b, int(pair.same)))
    return np.asarray(out, dtype=np.int64).reshape(-1, 3), missing


def pairs_to_csv(
    pairs: Sequence[BenchmarkPair],
    embeddings,
    out_csv: str | Path,
    domain_a: int | None = None,
    domain_b: int | None = None,
) -> PairsConversion:
    """Write the contract pairs CSV (``a,b,same``) for ``pairs`` against an embeddings file
    (a path, an ``Embeddings`` or a mapping with ``identities``, ``domains``, ``paths``).

    Pairs with an image that has no embedding are left out and reported in the result; if no
    pair is left, ``MfrError``.
    """
    from mfr.eval.pairs import Pairs, write_pairs

    identities, domains, paths = _embedding_keys(embeddings)
    rows, missing = match_pairs(pairs, identities, domains, paths, domain_a, domain_b)
    if len(rows) == 0:
        first = f" (first: pair {missing[0][0]}: {missing[0][1]})" if missing else ""
        raise MfrError(f"{out_csv}: none of the {len(pairs)} pairs has both embeddings{first}")
    write_pairs(out_csv, Pairs(rows[:, 0], rows[:, 1], rows[:, 2].astype(bool)))
    return PairsConversion(total=len(pairs), written=len(rows), missing=missing)
