"""Training-data selection of the recognizer trainer: which images of which identities it sees.

The ``data`` sources of a :class:`~mfr.train.config.TrainConfig` (identity folders or manifest
CSVs, :func:`mfr.data.dataset.load_index`) are merged by identity name; then the ``exclude``
lists, the ``domains`` filter and the ``min_images`` / ``max_images`` limits apply.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfr.errors import ConfigError, MfrError
from mfr.train.config import TrainConfig


@dataclass
class TrainingData:
    """The training set after merging sources, exclusion and the domain filter."""

    paths: list[Path]
    labels: np.ndarray  # int64, index into classes
    domains: np.ndarray  # uint8
    classes: list[str]


def load_training_data(config: TrainConfig, log: Callable[[str], None] = print) -> TrainingData:
    """Merge ``config.data`` sources by identity name, apply ``exclude`` and ``domains``.

    Returns the selection: ``paths`` (N,), ``labels`` int64 (N,) indexing ``classes`` (the
    identity names, sorted), ``domains`` uint8 (N,) with 0 = full face, 1 = masked. Logs the
    counts (and each source's skipped or missing files) through ``log``. Raises
    :class:`ConfigError` when ``data`` is empty, :class:`MfrError` when fewer than 2
    identities remain, and the errors of :func:`mfr.data.dataset.load_index` /
    :func:`~mfr.data.dataset.read_identity_list` for an unreadable source or list.
    """
    from mfr.data.dataset import load_index, read_identity_list

    if not config.data:
        raise ConfigError("config: option 'data' is empty; give one or more dataset folders")
    excluded: set[str] = set()
    for name in config.exclude:
        excluded |= read_identity_list(name)
    paths: list[Path] = []
    identities: list[str] = []
    domains: list[np.ndarray] = []
    for source in config.data:
        index = load_index(source)
        if index.skipped or index.missing:
            log(
                f"{source}: {len(index.skipped)} non-image files skipped, "
                f"{len(index.missing)} listed images missing"
            )
        paths += list(index.paths)
        identities += list(index.identities)
        domains.append(np.asarray(index.domains, dtype=np.uint8))
    domain_array = np.concatenate(domains) if domains else np.zeros(0, np.uint8)
    keep = np.array([name not in excluded for name in identities], dtype=bool)
    if config.domains == "full":
        keep &= domain_array == 0
    dropped_ids = len(excluded & set(identities))
    if config.min_images > 1:
        full_counts: dict[str, int] = {}
        for name, domain in zip(identities, domain_array):
            full_counts[name] = full_counts.get(name, 0) + int(domain == 0)
        keep &= np.array([full_counts[name] >= config.min_images for name in identities])
    if config.max_images > 0:
        keep &= _first_images(paths, identities, domain_array, config.max_images)
    paths = [p for p, k in zip(paths, keep) if k]
    identities = [i for i, k in zip(identities, keep) if k]
    domain_array = domain_array[keep]
    classes = sorted(set(identities))
    lookup = {name: i for i, name in enumerate(classes)}
    labels = np.array([lookup[name] for name in identities], dtype=np.int64)
    sources = ", ".join(config.data)
    if len(classes) < 2:
        raise MfrError(
            f"{sources}: training needs at least 2 identities, found {len(classes)}"
            + (" after the exclude list" if dropped_ids else "")
        )
    log(
        f"training data: {len(paths)} images ({int((domain_array == 1).sum())} masked) of "
        f"{len(classes)} identities from {sources}; {dropped_ids} identities excluded"
    )
    return TrainingData(paths, labels, domain_array, classes)


def _first_images(
    paths: list[Path], identities: list[str], domains: np.ndarray, limit: int
) -> np.ndarray:
    """Mask keeping, per identity, the first ``limit`` full faces (by file name) and their
    masked twins (the same file name in the masked domain)."""
    chosen: dict[str, set[str]] = defaultdict(set)
    full = ((Path(p).name, i) for p, i, d in zip(paths, identities, domains) if d == 0)
    for name, identity in sorted(full):
        if len(chosen[identity]) < limit:
            chosen[identity].add(name)
    return np.array([Path(p).name in chosen[i] for p, i in zip(paths, identities)], dtype=bool)
