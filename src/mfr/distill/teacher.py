"""The teacher's embeddings of full-face twins, cached on disk.

Every training image (full or masked) is paired with its full-face twin: the same path
without its ``masked`` component. The teacher embeds each twin once; results are stored under
``CACHE/<teacher fingerprint>/part-*.npz`` keyed by the SHA-1 of the twin's file bytes, so a
changed image or a changed teacher misses the cache and is recomputed, while an interrupted
run keeps every part already flushed (parts are written atomically).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mfr.data.layout import full_twin_path
from mfr.io import atomic_write, missing_file

log = logging.getLogger(__name__)


def _file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-1 of an image file's bytes: the cache key of its teacher embedding."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def teacher_fingerprint(spec: str) -> str:
    """A folder name for the teacher that changes when its weights change: ``<name>-<16 hex
    digits of mfr.embedders.fingerprint.model_fingerprint>`` (``dlib``, ``dlib-resnet`` or a
    model file). Raises ``MfrError`` for a missing model file."""
    from mfr.embedders import BUILTIN_MODELS
    from mfr.embedders.fingerprint import model_fingerprint

    if spec not in BUILTIN_MODELS and not Path(spec).is_file():
        raise missing_file(Path(spec), "teacher model")
    name = spec if spec in BUILTIN_MODELS else Path(spec).stem
    return f"{name}-{model_fingerprint(spec).rsplit(':', 1)[-1][:16]}"


class TeacherCache:
    """Teacher embeddings of full-face twins, computed once and kept on disk."""

    def __init__(
        self,
        cache_dir: str | Path,
        teacher: str,
        embedder=None,
        batch_size: int = 32,
        flush_every: int = 512,
    ) -> None:
        self.teacher = teacher
        self.folder = Path(cache_dir) / teacher_fingerprint(teacher)
        self._embedder = embedder
        self.batch_size = batch_size
        self.flush_every = flush_every
        self.stats = {"cached": 0, "computed": 0, "no_twin": 0, "unreadable": 0}

    @property
    def embedder(self):
        if self._embedder is None:
            from mfr.embedders import load_embedder

            self._embedder = load_embedder(self.teacher)
        return self._embedder

    def _load_parts(self) -> dict[str, np.ndarray]:
        table: dict[str, np.ndarray] = {}
        for part in sorted(self.folder.glob("part-*.npz")):
            try:
                with np.load(part, allow_pickle=False) as data:
                    table.update(zip(data["keys"].tolist(), data["embeddings"], strict=True))
            except Exception as error:  # a damaged part is recomputed, never trusted
                log.warning("%s: unreadable teacher cache part (%s); recomputing it", part, error)
        return table

    def _flush(self, keys: list[str], rows: list[np.ndarray]) -> None:
        if not keys:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        # unique per process and flush, so several processes can fill one cache at once
        name = f"part-{os.getpid()}-{time.time_ns()}.npz"
        with atomic_write(self.folder / name, "wb") as handle:
            np.savez(handle, keys=np.array(keys), embeddings=np.stack(rows).astype(np.float32))

    def targets(
        self, paths: list[Path], progress: Callable[[int], None] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Teacher embeddings (N x D float32) for ``paths`` and a mask of the valid rows.

        Rows whose twin cannot be read are NaN and flagged invalid (logged and counted).
        """
        from mfr.data.images import read_image
        from mfr.errors import BadImageError

        twins = []
        for path in map(Path, paths):
            twin = full_twin_path(path)
            if twin != path and not twin.is_file():
                self.stats["no_twin"] += 1
                twin = path
            twins.append(twin)
        digests: dict[Path, str | None] = {}
        for twin in dict.fromkeys(twins):
            try:
                digests[twin] = _file_digest(twin)
            except OSError:
                digests[twin] = None
        table = self._load_parts()
        missing = [t for t, d in digests.items() if d is not None and d not in table]
        self.stats["cached"] = sum(1 for d in digests.values() if d in table)
        pending_keys: list[str] = []
        pending_rows: list[np.ndarray] = []
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start : start + self.batch_size]
            images, keys = [], []
            for twin in batch:
                try:
                    images.append(read_image(twin))
                    keys.append(digests[twin])
                except BadImageError as error:
                    log.warning("teacher: skipping %s", error)
                    digests[twin] = None
            if images:
                embeddings = self.embedder.embed(images, aligned=True)
                for key, row in zip(keys, embeddings, strict=True):
                    table[key] = row
                    pending_keys.append(key)
                    pending_rows.append(row)
                self.stats["computed"] += len(images)
            if len(pending_keys) >= self.flush_every:
                self._flush(pending_keys, pending_rows)
                pending_keys, pending_rows = [], []
            if progress is not None:
                progress(len(batch))
        self._flush(pending_keys, pending_rows)
        dim = len(next(iter(table.values()))) if table else 0
        out = np.full((len(twins), dim), np.nan, dtype=np.float32)
        valid = np.zeros(len(twins), dtype=bool)
        for row, twin in enumerate(twins):
            key = digests[twin]
            if key is not None and key in table:
                out[row] = table[key]
                valid[row] = True
        self.stats["unreadable"] = int((~valid).sum())
        if self.stats["unreadable"]:
            log.warning("teacher: %d images without a readable twin", self.stats["unreadable"])
        return out, valid
