"""The embeddings file (contract): load, validate and save ``.npz`` files of face embeddings.

Keys: ``embeddings`` float (N, D), ``identities`` str (N,), ``domains`` 0 full / 1 masked (N,),
``paths`` str (N,). Any float width is accepted and read as float32; any integer width with
values 0/1 is accepted for ``domains`` and read as uint8. Everything else is a clear error.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfr.errors import MfrError
from mfr.io import atomic_write, file_kind, missing_file, not_a

REQUIRED_KEYS = ("embeddings", "identities", "domains", "paths")
FULL, MASKED = 0, 1


@dataclass(frozen=True)
class Embeddings:
    """A validated embeddings file; ``source`` names the file in error messages."""

    embeddings: np.ndarray  # float32 (N, D)
    identities: np.ndarray  # str (N,)
    domains: np.ndarray  # uint8 (N,)
    paths: np.ndarray  # str (N,)
    source: str = "<embeddings>"

    def __len__(self) -> int:
        return len(self.embeddings)

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1]


def _is_str(array: np.ndarray) -> bool:
    return array.dtype.kind in "US"


def _text(array: np.ndarray) -> np.ndarray:
    """A str array. Bytes (dtype ``S``) are names as a file system holds them: decoded as
    UTF-8, and bytes that are not UTF-8 (a Latin-1 folder name) kept as Python keeps such file
    names (``surrogateescape``), so they still name the same identity and file."""
    if array.dtype.kind == "U":
        return array
    values = [os.fsdecode(value) for value in array.tolist()]
    return np.array(values, dtype=str).reshape(array.shape)


def validate_embeddings(
    embeddings, identities, domains, paths, source: str = "<embeddings>"
) -> Embeddings:
    """Check shapes, dtypes and values; return an :class:`Embeddings` or raise ``MfrError``."""
    emb = np.asarray(embeddings)
    ids = np.asarray(identities)
    dom = np.asarray(domains)
    pth = np.asarray(paths)
    if emb.ndim != 2:
        raise MfrError(f"{source}: 'embeddings' must be 2-D (N, D), got shape {emb.shape}")
    if emb.dtype.kind != "f":
        raise MfrError(f"{source}: 'embeddings' must be floating point, got dtype {emb.dtype}")
    n = emb.shape[0]
    if n == 0:
        raise MfrError(f"{source}: contains no embeddings (N = 0)")
    if emb.shape[1] == 0:
        raise MfrError(f"{source}: embeddings have dimension 0")
    for key, arr in (("identities", ids), ("domains", dom), ("paths", pth)):
        if arr.ndim != 1:
            raise MfrError(f"{source}: '{key}' must be 1-D, got shape {arr.shape}")
        if arr.shape[0] != n:
            raise MfrError(f"{source}: '{key}' has {arr.shape[0]} entries but 'embeddings' has {n}")
    for key, arr in (("identities", ids), ("paths", pth)):
        if not _is_str(arr):
            raise MfrError(f"{source}: '{key}' must be strings, got dtype {arr.dtype}")
    if dom.dtype.kind not in "iub":
        raise MfrError(f"{source}: 'domains' must be integers 0/1, got dtype {dom.dtype}")
    bad_domain = np.flatnonzero((dom != FULL) & (dom != MASKED))
    if bad_domain.size:
        i = bad_domain[0]
        raise MfrError(
            f"{source}: 'domains' must be 0 (full) or 1 (masked); row {i} is {dom[i]} "
            f"({bad_domain.size} bad rows)"
        )
    ids, pth = _text(ids), _text(pth)
    emb = emb.astype(np.float32, copy=False)
    finite = np.isfinite(emb).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise MfrError(
            f"{source}: {bad.size} embeddings contain NaN or inf (first: row {bad[0]}, "
            f"path {pth[bad[0]]})"
        )
    norms = np.linalg.norm(emb, axis=1)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise MfrError(
            f"{source}: {zero.size} embeddings have zero norm, so cosine similarity is undefined "
            f"(first: row {zero[0]}, path {pth[zero[0]]})"
        )
    return Embeddings(emb, ids.astype(str), dom.astype(np.uint8), pth.astype(str), source)


def load_embeddings(path: str | Path) -> Embeddings:
    """Read and validate an embeddings ``.npz`` (contract); raise ``MfrError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise missing_file(path, "embeddings file")
    kind = file_kind(path)
    if kind not in ("a NumPy .npz archive", "a damaged zip archive"):  # no photo, no pickle
        raise not_a(path, "an embeddings (.npz) file", kind)
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in REQUIRED_KEYS if key not in data.files]
            if missing:
                raise MfrError(
                    f"{path}: missing key(s) {', '.join(missing)} "
                    f"(an embeddings file needs {', '.join(REQUIRED_KEYS)})"
                )
            arrays = {key: data[key] for key in REQUIRED_KEYS}
    except MfrError:
        raise
    except ValueError as error:  # object arrays need pickle, which we never allow
        raise MfrError(f"{path}: unreadable embeddings file ({error})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        raise MfrError(f"{path}: not a readable .npz file ({error})") from None
    return validate_embeddings(**arrays, source=str(path))


def save_embeddings(path: str | Path, embeddings, identities, domains, paths) -> None:
    """Validate and write an embeddings ``.npz`` atomically."""
    emb = validate_embeddings(embeddings, identities, domains, paths, source=str(path))
    with atomic_write(path, "wb") as handle:
        np.savez(
            handle,
            embeddings=emb.embeddings,
            identities=emb.identities,
            domains=emb.domains,
            paths=emb.paths,
        )


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` (N, D) scaled to unit L2 norm, float32 (N, D): the one normalisation of
    mfr (embeddings files, galleries, calibration, evaluation). A zero row stays zero; a NaN
    row stays NaN (for the caller to report)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) float32 cosine similarities: one matrix multiply of normalised rows."""
    return l2_normalise(a) @ l2_normalise(b).T
