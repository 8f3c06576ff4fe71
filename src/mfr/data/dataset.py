"""Face datasets with identities and domains (0 full face, 1 masked), from any supported layout.

:func:`load_index` reads a dataset in any layout :mod:`mfr.data.layout` knows (identity
folders, a manifest CSV, the MFR2 layout, the LFW root; see there) into a
:class:`DatasetIndex`, and can leave out a list of identities.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mfr.data.layout import (
    FULL,
    MANIFEST_NAME,
    MASKED,
    Listing,
    list_layout,
    list_manifest,
    write_manifest_rows,
)
from mfr.errors import MfrError
from mfr.io import read_text


class Sample(NamedTuple):
    path: Path
    identity: str
    domain: int
    label: int


@dataclass
class DatasetIndex:
    """Images of a dataset with their identity and domain; ``labels`` index into ``classes``.

    ``root`` is the folder relative paths refer to; ``skipped`` lists non-image files met in a
    walk, ``missing`` images a label file names but that do not exist, ``excluded`` the number
    of images dropped by an identity exclude list.
    """

    paths: list[Path]
    identities: list[str]
    domains: np.ndarray
    labels: np.ndarray
    classes: list[str]
    root: Path
    kind: str = "folder"
    skipped: list[Path] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)
    excluded: int = 0

    @classmethod
    def build(
        cls,
        paths: Sequence[Path],
        identities: Sequence[str],
        domains: Iterable[int],
        root: Path,
        **extra,
    ) -> DatasetIndex:
        """An index from parallel lists; ``classes`` and ``labels`` are derived."""
        identities = list(identities)
        classes = sorted(set(identities))
        lookup = {name: i for i, name in enumerate(classes)}
        return cls(
            paths=[Path(p) for p in paths],
            identities=identities,
            domains=np.asarray(list(domains), dtype=np.uint8).reshape(-1),
            labels=np.array([lookup[name] for name in identities], dtype=np.int64),
            classes=classes,
            root=Path(root),
            **extra,
        )

    @classmethod
    def from_listing(cls, listing: Listing) -> DatasetIndex:
        """The index of a :class:`~mfr.data.layout.Listing` (its skipped and missing files)."""
        return cls.build(
            listing.paths,
            listing.identities,
            listing.domains,
            listing.root,
            kind=listing.kind,
            skipped=list(listing.skipped),
            missing=list(listing.missing),
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Sample:
        return Sample(self.paths[i], self.identities[i], int(self.domains[i]), int(self.labels[i]))

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def subset(self, selection) -> DatasetIndex:
        """A new index of the rows chosen by a boolean mask or integer indices (labels rebuilt)."""
        selection = np.asarray(selection)
        if selection.dtype == bool:
            if selection.shape != (len(self),):
                raise ValueError(f"mask of shape {selection.shape} for an index of {len(self)}")
            rows = np.flatnonzero(selection)
        else:
            rows = selection.astype(np.int64).reshape(-1)
        return DatasetIndex.build(
            [self.paths[i] for i in rows],
            [self.identities[i] for i in rows],
            self.domains[rows],
            self.root,
            kind=self.kind,
            skipped=list(self.skipped),
            missing=list(self.missing),
            excluded=self.excluded,
        )

    def relative_paths(self) -> list[str]:
        """Paths relative to ``root`` (POSIX), absolute where a path lies outside it."""
        out = []
        for path in self.paths:
            try:
                out.append(path.relative_to(self.root).as_posix())
            except ValueError:
                out.append(path.as_posix())
        return out

    def counts(self) -> dict:
        """Identities, images per domain, and identities that have both domains."""
        full_ids = {i for i, d in zip(self.identities, self.domains) if d == FULL}
        masked_ids = {i for i, d in zip(self.identities, self.domains) if d == MASKED}
        return {
            "identities": len(self.classes),
            "images": len(self),
            "full": int(np.count_nonzero(self.domains == FULL)),
            "masked": int(np.count_nonzero(self.domains == MASKED)),
            "identities_with_both": len(full_ids & masked_ids),
            "identities_full_only": len(full_ids - masked_ids),
            "identities_masked_only": len(masked_ids - full_ids),
        }


def read_identity_list(source: str | Path | Iterable[str], what: str = "identity list") -> set[str]:
    """Identities from a file (one per line, ``#`` comments) or from an iterable of names;
    ``what`` names the file in errors (see :func:`mfr.io.read_text`)."""
    if isinstance(source, str | Path):
        path = Path(source)
        lines = read_text(path, what).splitlines()
        return {line.split("#", 1)[0].strip() for line in lines} - {""}
    return {str(name).strip() for name in source} - {""}


def load_index(
    path: str | Path,
    exclude: str | Path | Iterable[str] | None = None,
    use_manifest: bool = True,
) -> DatasetIndex:
    """Read a dataset (see the module docstring for the layouts); drop ``exclude`` identities.

    Raises ``MfrError`` for a missing path, an unreadable layout or an empty dataset.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise MfrError(f"{path}: no such file or folder")
    path = path.resolve()
    index = DatasetIndex.from_listing(list_layout(path, use_manifest))
    if exclude is not None:
        names = read_identity_list(exclude)
        keep = np.array([name not in names for name in index.identities], dtype=bool)
        dropped = int(np.count_nonzero(~keep))
        index = index.subset(keep)
        index.excluded += dropped
    if len(index) == 0:
        hint = f" ({len(index.skipped)} files skipped" if index.skipped else ""
        if hint:
            hint += ": images must lie in ROOT/<identity>/ folders)"
        raise MfrError(f"{path}: the dataset has no images{hint}")
    return index


def read_manifest(csv_path: str | Path) -> DatasetIndex:
    """The dataset a manifest CSV ``path,identity,domain`` lists (see
    :func:`mfr.data.layout.list_manifest`; errors name the file and the line)."""
    return DatasetIndex.from_listing(list_manifest(csv_path))


def write_manifest(root: str | Path, index: DatasetIndex, path: str | Path | None = None) -> Path:
    """Write ``index`` as ``ROOT/manifest.csv`` (or ``path``) atomically; paths relative to ROOT."""
    root = Path(root).resolve()
    rows = []
    for file, identity, domain in zip(index.paths, index.identities, index.domains):
        file = Path(file)
        try:
            rel = file.resolve().relative_to(root).as_posix()
        except ValueError:
            rel = file.resolve().as_posix()
        rows.append((rel, identity, int(domain)))
    return write_manifest_rows(Path(path) if path is not None else root / MANIFEST_NAME, rows)
