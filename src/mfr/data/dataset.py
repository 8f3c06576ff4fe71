"""Face datasets with identities and domains (0 full face, 1 masked), from any supported layout.

:func:`load_index` reads

- an identity folder (contract): ``ROOT/<identity>/<image>`` is a full face, an image with a
  path component named ``masked`` (``ROOT/<identity>/masked/<image>``) is masked. Top-level
  names starting with ``_`` or ``.`` are not identities; the sidecars ``manifest.csv`` and
  ``landmarks.npz`` are ignored; other non-image files are skipped and counted. When
  ``ROOT/manifest.csv`` exists it replaces the walk (as the contract allows);
- a manifest CSV (header ``path,identity,domain``; paths relative to the CSV's folder, or
  absolute);
- the MFR2 layout: a folder with ``mfr2_labels.txt`` (lines ``Id, N, masktype``; image
  ``<Id>/<Id>_NNNN.png``; masktype ``no-mask`` is a full face, anything else masked);
- the LFW root: a folder with ``images/`` and ``meta/``; every image is a full face.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mfr.data.images import IMAGE_SUFFIXES
from mfr.errors import MfrError
from mfr.io import atomic_write

MANIFEST_NAME = "manifest.csv"
MANIFEST_HEADER = ("path", "identity", "domain")
MFR2_LABELS = "mfr2_labels.txt"
SIDECARS = frozenset({MANIFEST_NAME, "landmarks.npz"})
MASKED_DIR = "masked"
FULL, MASKED = 0, 1


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


def read_identity_list(source: str | Path | Iterable[str]) -> set[str]:
    """Identities from a file (one per line, ``#`` comments) or from an iterable of names."""
    if isinstance(source, str | Path):
        path = Path(source)
        from mfr.io import read_text

        lines = read_text(path, "identity list").splitlines()
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
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise MfrError(f"{path}: not a dataset (give a folder or a manifest .csv)")
        index = read_manifest(path)
    elif (path / MFR2_LABELS).is_file():
        index = _read_mfr2(path)
    elif (path / "images").is_dir() and (path / "meta").is_dir():
        index = _walk(path / "images", root=path, kind="lfw")
    elif use_manifest and (path / MANIFEST_NAME).is_file():
        index = read_manifest(path / MANIFEST_NAME)
    else:
        index = _walk(path, root=path, kind="folder")
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


def _walk(folder: Path, root: Path, kind: str) -> DatasetIndex:
    from mfr.data.walk import walk_images

    paths: list[Path] = []
    identities: list[str] = []
    domains: list[int] = []
    skipped: list[Path] = []
    with os.scandir(folder) as entries:
        top = sorted(entries, key=lambda e: e.name)
    for entry in top:
        if entry.name.startswith(("_", ".")):
            continue
        if not entry.is_dir():
            if entry.name not in SIDECARS:
                skipped.append(Path(entry.path))  # a file outside any identity folder
            continue
        walk = walk_images(entry.path)
        skipped.extend(path for path, _ in walk.skipped)
        for file in walk.images:
            relative_dirs = file.parent.relative_to(entry.path).parts
            paths.append(file)
            identities.append(entry.name)
            domains.append(MASKED if MASKED_DIR in relative_dirs else FULL)
    return DatasetIndex.build(paths, identities, domains, root, kind=kind, skipped=skipped)


def read_manifest(csv_path: str | Path) -> DatasetIndex:
    """A manifest CSV ``path,identity,domain``; errors name the file and the line."""
    csv_path = Path(csv_path).resolve()
    base = csv_path.parent
    from mfr.io import read_text

    text = read_text(csv_path, "manifest", names=True)
    rows = csv.reader(io.StringIO(text, newline=""))  # a quoted name may hold a newline
    header = next(rows, None)
    if header is None or tuple(h.strip() for h in header) != MANIFEST_HEADER:
        raise MfrError(
            f"{csv_path} line 1: bad manifest header {header!r}; expected 'path,identity,domain'"
        )
    paths, identities, domains = [], [], []
    for line, row in enumerate(rows, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != 3:
            raise MfrError(f"{csv_path} line {line}: expected 3 fields, got {len(row)}: {row!r}")
        rel, identity, domain = (cell.strip() for cell in row)
        if not rel or not identity:
            raise MfrError(f"{csv_path} line {line}: empty path or identity")
        if domain not in ("0", "1"):
            raise MfrError(f"{csv_path} line {line}: domain must be 0 or 1, got {domain!r}")
        file = Path(rel) if Path(rel).is_absolute() else base / rel
        if not file.is_file():
            raise MfrError(f"{csv_path} line {line}: image not found: {file}")
        paths.append(file)
        identities.append(identity)
        domains.append(int(domain))
    return DatasetIndex.build(paths, identities, domains, base, kind="manifest")


def write_manifest(root: str | Path, index: DatasetIndex, path: str | Path | None = None) -> Path:
    """Write ``index`` as ``ROOT/manifest.csv`` (or ``path``) atomically; paths relative to ROOT."""
    root = Path(root).resolve()
    out = Path(path) if path is not None else root / MANIFEST_NAME
    with atomic_write(out, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(MANIFEST_HEADER)
        for file, identity, domain in zip(index.paths, index.identities, index.domains):
            file = Path(file)
            try:
                rel = file.resolve().relative_to(root).as_posix()
            except ValueError:
                rel = file.resolve().as_posix()
            writer.writerow([rel, identity, int(domain)])
    return out


def _read_mfr2(folder: Path) -> DatasetIndex:
    paths, identities, domains, missing = [], [], [], []
    listed: set[Path] = set()
    for identity, number, masktype in read_mfr2_labels(folder / MFR2_LABELS):
        file = mfr2_image_path(folder, identity, number)
        listed.add(file)
        if not file.is_file():
            missing.append(file)
            continue
        paths.append(file)
        identities.append(identity)
        domains.append(FULL if masktype.lower() == "no-mask" else MASKED)
    walk = _walk(folder, root=folder, kind="mfr2")
    skipped = [p for p in walk.skipped if p.name not in (MFR2_LABELS, "pairs.txt")]
    skipped += [p for p in walk.paths if p not in listed]  # images without a label
    return DatasetIndex.build(
        paths, identities, domains, folder, kind="mfr2", skipped=skipped, missing=missing
    )


def read_mfr2_labels(path: str | Path) -> list[tuple[str, int, str]]:
    """The lines ``Id, N, masktype`` of an MFR2 ``mfr2_labels.txt`` as ``(Id, N, masktype)``.

    The one reader of this file (datasets, ``mfr align``, ``mfr enroll``): a line of another
    form, a file that is not UTF-8 or an identity that is not a plain folder name is an
    ``MfrError`` naming the file and the line.
    """
    from mfr.io import read_text

    path = Path(path)
    out = []
    for line_no, line in enumerate(read_text(path, "labels file").splitlines(), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3 or not parts[1].isdigit() or not parts[0] or not parts[2]:
            raise MfrError(f"{path} line {line_no}: expected 'Id, N, masktype', got {line!r}")
        if parts[0] in (".", "..") or "/" in parts[0] or "\\" in parts[0]:
            raise MfrError(f"{path} line {line_no}: identity {parts[0]!r} is not a folder name")
        out.append((parts[0], int(parts[1]), parts[2]))
    return out


def mfr2_image_path(folder: Path, identity: str, number: int) -> Path:
    """``<folder>/<Id>/<Id>_NNNN.png`` (another image suffix when the PNG is absent)."""
    base = folder / identity / f"{identity}_{number:04d}"
    png = base.with_suffix(".png")
    if png.is_file():
        return png
    for suffix in sorted(IMAGE_SUFFIXES):
        candidate = base.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return png
