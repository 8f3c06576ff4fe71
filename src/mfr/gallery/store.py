"""The gallery file: enrolled face embeddings with their identities, on disk as one ``.npz``.

Arrays: ``embeddings`` float32 (N, D), L2-normalised; ``identities`` str (N,); ``paths`` str
(N,) (the source photo of each entry); ``ids`` int64 (N,) (per-entry ids, never reused);
``meta`` a JSON string: ``format``, ``version``, ``model`` (``spec``, ``name``, ``dim``,
``fingerprint``), ``created``, ``updated``, ``next_id``.

Writes go to a temp file beside the gallery, are fsynced, then ``os.replace`` it: the previous
version stays complete until the new one is, readers only ever open complete files, and a
crash mid-write loses nothing already enrolled. Writers serialise on ``GALLERY.lock``
(:func:`locked`) so that two concurrent enrolments do not lose each other's entries.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from mfr.errors import MfrError
from mfr.eval.embeddings import l2_normalise
from mfr.io import atomic_write

FORMAT = "mfr-gallery"
VERSION = 1


@dataclass(frozen=True)
class ModelInfo:
    """Which model made a gallery's embeddings; ``fingerprint`` hashes its weights."""

    spec: str
    name: str
    dim: int
    fingerprint: str

    def to_json(self) -> dict:
        return {
            "spec": self.spec,
            "name": self.name,
            "dim": self.dim,
            "fingerprint": self.fingerprint,
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def normalise_name(name: str) -> str:
    """An identity name as stored: Unicode NFC, surrounding whitespace removed and inner runs
    of whitespace made one space (so ``"Al "``, ``"Al"`` and ``"Al\u00a0"`` are one person);
    an empty name is an ``MfrError``."""
    import unicodedata

    cleaned = " ".join(unicodedata.normalize("NFC", str(name)).split())
    if not cleaned:
        raise MfrError(f"identity name {name!r} is empty")
    return cleaned


@dataclass
class Gallery:
    """An in-memory gallery; :meth:`save` persists it atomically."""

    model: ModelInfo
    embeddings: np.ndarray
    identities: np.ndarray
    paths: np.ndarray
    ids: np.ndarray
    created: str = field(default_factory=_now)
    updated: str = field(default_factory=_now)
    next_id: int = 0

    @classmethod
    def empty(cls, model: ModelInfo) -> Gallery:
        return cls(
            model=model,
            embeddings=np.zeros((0, model.dim), np.float32),
            identities=np.zeros(0, dtype=str),
            paths=np.zeros(0, dtype=str),
            ids=np.zeros(0, np.int64),
        )

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return self.model.dim

    def identity_counts(self) -> dict[str, int]:
        """Enrolled identity -> number of images, sorted by identity."""
        names, counts = np.unique(self.identities, return_counts=True)
        return {str(n): int(c) for n, c in zip(names, counts, strict=True)}

    def check_model(self, model: ModelInfo, where: str | Path = "gallery") -> None:
        """Raise one clear error when ``model`` is not the model this gallery was enrolled with."""
        if model.dim != self.model.dim:
            raise MfrError(
                f"{where}: gallery holds {self.model.dim}-d embeddings from model "
                f"{self.model.spec!r}, but model {model.spec!r} gives {model.dim}-d embeddings; "
                "use the gallery's model or enrol into a new gallery"
            )
        if model.fingerprint != self.model.fingerprint:
            raise MfrError(
                f"{where}: gallery was enrolled with model {self.model.spec!r} "
                f"(weights {self.model.fingerprint[:19]}), not {model.spec!r} "
                f"(weights {model.fingerprint[:19]}); use the gallery's model or enrol anew"
            )

    def add(self, identity: str, embeddings: np.ndarray, paths: list[str]) -> np.ndarray:
        """Append ``embeddings`` (N, D) of ``identity``; returns the new entry ids."""
        identity = normalise_name(identity)
        embeddings = np.asarray(embeddings, dtype=np.float32).reshape(-1, self.dim)
        if len(embeddings) != len(paths):
            raise ValueError("one path per embedding")
        new_ids = np.arange(self.next_id, self.next_id + len(embeddings), dtype=np.int64)
        self.embeddings = np.concatenate([self.embeddings, l2_normalise(embeddings)])
        self.identities = np.concatenate([self.identities, np.array([identity] * len(paths))])
        self.paths = np.concatenate([self.paths, np.array([str(p) for p in paths], dtype=str)])
        self.ids = np.concatenate([self.ids, new_ids])
        self.next_id += len(embeddings)
        self.updated = _now()
        return new_ids

    def select(
        self, identity: str | None = None, entry_ids: list[int] | None = None, where="gallery"
    ) -> np.ndarray:
        """Boolean (N,) mask of the entries :meth:`remove` would remove: every entry of
        ``identity``; or the entries ``entry_ids``; with both, those entries, each of which
        must be ``identity``'s. ``MfrError`` (nothing selected) for an unknown identity or
        id, or an entry of another identity (named)."""
        if identity is None and not entry_ids:
            raise MfrError(f"{where}: name an identity or give entry ids")
        if identity is not None and not (self.identities == identity).any():
            raise MfrError(f"{where}: no identity {identity!r}")
        if not entry_ids:
            return self.identities == identity
        wanted = np.asarray(entry_ids, np.int64)
        unknown = sorted(set(wanted.tolist()) - set(self.ids.tolist()))
        if unknown:
            listed = ", ".join(map(str, unknown))
            raise MfrError(f"{where}: no entry with id {listed}; nothing removed")
        chosen = np.isin(self.ids, wanted)
        if identity is not None:
            others = chosen & (self.identities != identity)
            if others.any():
                ids, names = self.ids[others].tolist(), self.identities[others].tolist()
                pairs = zip(ids, names, strict=True)
                named = ", ".join(f"entry {i} belongs to {n!r}" for i, n in pairs)
                raise MfrError(f"{where}: {named}, not {identity!r}; nothing removed")
        return chosen

    def remove(
        self, identity: str | None = None, entry_ids: list[int] | None = None, where="gallery"
    ) -> int:
        """Remove the entries :meth:`select` picks (all of ``identity``'s, or the given entry
        ids, which with ``identity`` must all be its own); returns the count. Raises
        ``MfrError`` and removes nothing for an unknown identity or id, or a mismatch."""
        drop = self.select(identity, entry_ids, where)
        keep = ~drop
        self.embeddings, self.identities = self.embeddings[keep], self.identities[keep]
        self.paths, self.ids = self.paths[keep], self.ids[keep]
        if drop.any():
            self.updated = _now()
        return int(drop.sum())

    def rename(self, old: str, new: str) -> int:
        """Rename identity ``old`` to ``new`` (merging if ``new`` exists); returns the count."""
        new = normalise_name(new)
        hit = self.identities == old
        if hit.any():
            identities = self.identities.astype(object)
            identities[hit] = new
            self.identities = identities.astype(str)
            self.updated = _now()
        return int(hit.sum())

    def save(self, path: str | Path) -> None:
        """Write atomically (temp file, fsync, rename); the old file stays until then."""
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "model": self.model.to_json(),
            "created": self.created,
            "updated": self.updated,
            "next_id": int(self.next_id),
        }
        with atomic_write(path, "wb") as handle:
            np.savez(
                handle,
                embeddings=np.ascontiguousarray(self.embeddings, np.float32),
                identities=self.identities.astype(str),
                paths=self.paths.astype(str),
                ids=self.ids.astype(np.int64),
                meta=np.array(json.dumps(meta)),
            )

    @classmethod
    def load(cls, path: str | Path) -> Gallery:
        """Read a gallery; a missing, corrupt or foreign file raises one clear ``MfrError``."""
        from mfr.io import file_kind, missing_file, not_a

        path = Path(path)
        if not path.is_file():
            raise missing_file(path, "gallery", "create it with `mfr enroll`")
        kind = file_kind(path)
        if kind not in ("a NumPy .npz archive", "a damaged zip archive"):  # no photo, no pickle
            raise not_a(path, "a gallery (.npz) file", kind)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in ("embeddings", "identities", "paths", "ids")}
                meta = json.loads(str(data["meta"]))
            model = ModelInfo(
                **{k: meta["model"][k] for k in ("spec", "name", "dim", "fingerprint")}
            )
            if meta.get("format") != FORMAT:
                raise ValueError(f"format is {meta.get('format')!r}, not {FORMAT!r}")
            if meta.get("version", 0) > VERSION:
                raise ValueError(f"written by a newer mfr (gallery version {meta['version']})")
            gallery = cls(
                model=model,
                embeddings=arrays["embeddings"].astype(np.float32, copy=False),
                identities=arrays["identities"].astype(str),
                paths=arrays["paths"].astype(str),
                ids=arrays["ids"].astype(np.int64),
                created=str(meta["created"]),
                updated=str(meta["updated"]),
                next_id=int(meta["next_id"]),
            )
        except Exception as error:
            reason = "holds pickled objects" if "allow_pickle" in str(error) else error
            raise MfrError(f"{path}: corrupt or unreadable gallery file ({reason})") from None
        n = len(gallery.ids)
        shape = gallery.embeddings.shape
        if (
            len(shape) != 2
            or shape != (n, model.dim)
            or len(gallery.identities) != n
            or len(gallery.paths) != n
            or not np.isfinite(gallery.embeddings).all()
        ):
            raise MfrError(
                f"{path}: corrupt gallery file (embeddings {shape}, {len(gallery.identities)} "
                f"identities, {len(gallery.paths)} paths, {n} ids, model dim {model.dim})"
            )
        return gallery


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``PATH.lock`` (serialises writers; readers need no lock)."""
    from mfr.io import cannot_write, ensure_folder

    path = Path(path)
    ensure_folder(path.parent)
    lock = path.with_name(path.name + ".lock")
    try:
        handle = open(lock, "a")  # noqa: SIM115 (closed by the with below)
    except OSError as error:
        raise cannot_write(lock, error) from None
    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
