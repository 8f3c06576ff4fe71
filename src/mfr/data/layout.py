"""The on-disk layout of mfr's datasets: which files are images, where identities and domains
are, and where masked twins go. Every reader and writer of a dataset folder (``align``,
``mask``, ``gan generate``, ``embed``, ``enroll``, ``train``, distillation) uses this module.

**Images and the folder walk.** An image is a file whose suffix is in :data:`IMAGE_SUFFIXES`
(any case). :func:`walk_images` lists a folder so a file is taken or skipped the same way by
every command, each skip with a reason the command reports with a count: hidden files
(``.name``, e.g. macOS ``._photo.jpg`` resource forks), files with another suffix, broken
symbolic links. Hidden folders are not entered; symbolic links to folders are followed once
(a link loop is skipped with its reason).

**Layouts read** (:func:`list_layout`), each into a :class:`Listing` of
``(path, identity, domain)`` rows, domain 0 (:data:`FULL`) a full face, 1 (:data:`MASKED`)
masked:

- identity folders (contract): ``ROOT/<identity>/<image>`` is a full face, an image with a
  path component named ``masked`` below the identity (``ROOT/<identity>/masked/<image>``) is
  masked. Top-level names starting with ``_`` or ``.`` are not identities; the sidecars
  ``manifest.csv`` and ``landmarks.npz`` are ignored; other non-image files are skipped and
  counted. When ``ROOT/manifest.csv`` exists it replaces the walk (as the contract allows);
- a manifest CSV (contract): header ``path,identity,domain``; paths relative to the CSV's
  folder, or absolute;
- the MFR2 layout: a folder with ``mfr2_labels.txt`` (lines ``Id, N, masktype``; image
  ``<Id>/<Id>_NNNN.png``; masktype ``no-mask`` is a full face, anything else masked);
- the LFW root: a folder with ``images/`` and ``meta/``; every image is a full face.

**Masked twins** (written by ``mfr mask`` and ``mfr gan generate``, :func:`write_twin`): for
a source image ``<identity>/<image>`` the full face is ``DST/<identity>/<image>``, its masked
twin ``DST/<identity>/masked/<image>`` and the mask label ``DST/_labels/<identity>/<stem>.png``.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from mfr.errors import MfrError
from mfr.io import atomic_write, read_text

#: File suffixes (lower case) that mfr treats as images when walking a dataset folder.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".avif", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}
)
FULL, MASKED = 0, 1
MASKED_DIR = "masked"
LABELS_DIR = "_labels"
MANIFEST_NAME = "manifest.csv"
MANIFEST_HEADER = ("path", "identity", "domain")
LANDMARKS_NAME = "landmarks.npz"
SIDECARS = frozenset({MANIFEST_NAME, LANDMARKS_NAME})
MFR2_LABELS = "mfr2_labels.txt"
MFR2_PAIRS = "pairs.txt"
LFW_IMAGES, LFW_META = "images", "meta"


def is_image_path(path: str | Path) -> bool:
    """True when the file name has one of :data:`IMAGE_SUFFIXES` (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


# ----------------------------------------------------------------------------- the folder walk


@dataclass
class Walk:
    """``images`` (sorted) and ``skipped`` ``(path, reason)`` of a folder walk."""

    images: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def classify(path: Path) -> str | None:
    """Why ``path`` (a file met in a walk) is not taken as an image; None when it is."""
    name = path.name
    if name.startswith("."):
        return "hidden file"
    if path.suffix.lower() in (".heic", ".heif"):
        return "HEIC/HEIF photos are not supported; convert them to JPEG first"
    if not is_image_path(path):
        return f"not an image file (suffix {path.suffix or 'none'})"
    if path.is_symlink() and not path.exists():
        return "broken symbolic link"
    return None


def walk_images(folder: str | Path, recursive: bool = True, skip_dirs=frozenset()) -> Walk:
    """Images under ``folder`` (sub-folders too when ``recursive``) in sorted order, and the
    files skipped with their reason. Folders named in ``skip_dirs`` are not entered."""
    folder = Path(folder)
    walk = Walk()
    seen: set[tuple[int, int]] = set()

    def visit(current: Path) -> None:
        try:
            info = current.stat()
        except OSError as error:
            walk.skipped.append((current, f"cannot open folder ({error.strerror})"))
            return
        key = (info.st_dev, info.st_ino)
        if key in seen:
            walk.skipped.append((current, "symbolic link loop (folder already walked)"))
            return
        seen.add(key)
        try:
            with os.scandir(current) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as error:
            walk.skipped.append((current, f"cannot list folder ({error.strerror})"))
            return
        for entry in entries:
            path = Path(entry.path)
            if entry.is_dir():  # follows links
                if recursive and not entry.name.startswith(".") and entry.name not in skip_dirs:
                    visit(path)
                continue
            reason = classify(path)
            if reason is None:
                walk.images.append(path)
            else:
                walk.skipped.append((path, reason))

    visit(folder)
    return walk


# ----------------------------------------------------------------------------- identity folders


def domain_of(folders: Sequence[str]) -> int:
    """The domain of an image from the folder names between its identity and the file."""
    return MASKED if MASKED_DIR in folders else FULL


def relpath_row(relpath: str) -> tuple[str, str, int]:
    """``(relpath, identity, domain)`` of an image path ``<identity>/.../<image>`` (POSIX)."""
    parts = PurePosixPath(relpath).parts
    return relpath, parts[0], domain_of(parts[1:-1])


def image_relpath(identity: str, domain: int, name: str) -> str:
    """``<identity>/<name>`` for a full face, ``<identity>/masked/<name>`` for a masked one."""
    return f"{identity}/{MASKED_DIR}/{name}" if domain else f"{identity}/{name}"


def identity_folders(root: Path) -> tuple[list[Path], list[Path]]:
    """The identity folders of ``root`` and its other top-level files (sidecars left out),
    both sorted by name; names starting with ``_`` or ``.`` are neither."""
    folders, strays = [], []
    with os.scandir(root) as entries:
        top = sorted(entries, key=lambda e: e.name)
    for entry in top:
        if entry.name.startswith(("_", ".")):
            continue
        if entry.is_dir():
            folders.append(Path(entry.path))
        elif entry.name not in SIDECARS:
            strays.append(Path(entry.path))
    return folders, strays


@dataclass
class Listing:
    """The images of a dataset as parallel ``paths``, ``identities`` and ``domains``.

    ``root`` is the folder relative paths refer to; ``skipped`` lists files met that are not
    taken (non-images, files outside identity folders, MFR2 images without a label),
    ``missing`` images a label file names but that do not exist, ``unlabeled`` the MFR2 images
    without a label line (also in ``skipped``).
    """

    paths: list[Path]
    identities: list[str]
    domains: list[int]
    root: Path
    kind: str
    skipped: list[Path] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)
    unlabeled: list[Path] = field(default_factory=list)


def list_identity_folders(folder: Path, root: Path | None = None, kind: str = "folder") -> Listing:
    """The identity-folder layout of ``folder`` (see the module doc); ``root`` defaults to it."""
    listing = Listing([], [], [], Path(root if root is not None else folder), kind)
    identities, strays = identity_folders(folder)
    listing.skipped.extend(strays)  # files outside any identity folder
    for identity_dir in identities:
        walk = walk_images(identity_dir)
        listing.skipped.extend(path for path, _ in walk.skipped)
        for file in walk.images:
            listing.paths.append(file)
            listing.identities.append(identity_dir.name)
            listing.domains.append(domain_of(file.parent.relative_to(identity_dir).parts))
    return listing


def list_identity_images(root: Path) -> dict[str, list[Path]]:
    """Full faces by identity: the images directly in each ``ROOT/<identity>/`` (sorted; the
    ``masked/`` sub-folder and ``_``/``.`` names are left out). Raises ``MfrError`` when
    ``root`` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise MfrError(f"{root}: dataset folder not found")
    result: dict[str, list[Path]] = {}
    for identity_dir in identity_folders(root)[0]:
        files = walk_images(identity_dir, recursive=False).images
        if files:
            result[identity_dir.name] = files
    return result


# ----------------------------------------------------------------------------- MFR2 and LFW


def is_mfr2_root(path: Path) -> bool:
    """True for a folder in the MFR2 layout (it holds ``mfr2_labels.txt``)."""
    return (Path(path) / MFR2_LABELS).is_file()


def is_lfw_root(path: Path) -> bool:
    """True for the LFW root (a folder with ``images/`` and ``meta/``)."""
    path = Path(path)
    return (path / LFW_IMAGES).is_dir() and (path / LFW_META).is_dir()


def read_mfr2_labels(path: str | Path) -> list[tuple[str, int, str]]:
    """The lines ``Id, N, masktype`` of an MFR2 ``mfr2_labels.txt`` as ``(Id, N, masktype)``.

    The one reader of this file: a line of another form, a file that is not UTF-8 or an
    identity that is not a plain folder name is an ``MfrError`` naming the file and the line.
    """
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


def mfr2_domain(masktype: str) -> int:
    """The domain of an MFR2 mask type: ``no-mask`` (any case) is a full face."""
    return FULL if masktype.lower() == "no-mask" else MASKED


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


def list_mfr2(folder: Path) -> Listing:
    """The MFR2 layout of ``folder``: its labelled images in label-file order; images without
    a label line are ``unlabeled`` (and skipped), listed images that do not exist ``missing``."""
    folder = Path(folder)
    listing = Listing([], [], [], folder, "mfr2")
    listed: set[Path] = set()
    for identity, number, masktype in read_mfr2_labels(folder / MFR2_LABELS):
        file = mfr2_image_path(folder, identity, number)
        listed.add(file)
        if not file.is_file():
            listing.missing.append(file)
            continue
        listing.paths.append(file)
        listing.identities.append(identity)
        listing.domains.append(mfr2_domain(masktype))
    walk = list_identity_folders(folder)
    listing.unlabeled = [p for p in walk.paths if p not in listed]
    listing.skipped = [p for p in walk.skipped if p.name not in (MFR2_LABELS, MFR2_PAIRS)]
    listing.skipped += listing.unlabeled
    return listing


# ----------------------------------------------------------------------------- manifests


def list_manifest(csv_path: str | Path) -> Listing:
    """A manifest CSV ``path,identity,domain``; errors name the file and the line (a bad
    header, a row of another length, an empty path or identity, a domain other than 0/1, an
    image that does not exist)."""
    csv_path = Path(csv_path).resolve()
    base = csv_path.parent
    text = read_text(csv_path, "manifest", names=True)
    rows = csv.reader(io.StringIO(text, newline=""))  # a quoted name may hold a newline
    header = next(rows, None)
    if header is None or tuple(h.strip() for h in header) != MANIFEST_HEADER:
        raise MfrError(
            f"{csv_path} line 1: bad manifest header {header!r}; expected 'path,identity,domain'"
        )
    listing = Listing([], [], [], base, "manifest")
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
        listing.paths.append(file)
        listing.identities.append(identity)
        listing.domains.append(int(domain))
    return listing


def write_manifest_rows(path: str | Path, rows: Iterable[tuple[str, str, int]]) -> Path:
    """Write a manifest CSV (header ``path,identity,domain``, then ``rows`` as given)
    atomically to ``path``; returns it. Raises ``OutputError`` when it cannot be written."""
    path = Path(path)
    with atomic_write(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(MANIFEST_HEADER)
        for rel, identity, domain in rows:
            writer.writerow([rel, identity, int(domain)])
    return path


# ----------------------------------------------------------------------------- any layout


def list_layout(path: Path, use_manifest: bool = True) -> Listing:
    """The images of the existing dataset ``path`` in whichever layout it has: a manifest
    ``.csv``, the MFR2 layout, the LFW root, a folder with ``manifest.csv`` (unless
    ``use_manifest`` is False), else identity folders. Raises ``MfrError`` for a file that is
    not a ``.csv`` and for an unreadable label file or manifest."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise MfrError(f"{path}: not a dataset (give a folder or a manifest .csv)")
        return list_manifest(path)
    if is_mfr2_root(path):
        return list_mfr2(path)
    if is_lfw_root(path):
        return list_identity_folders(path / LFW_IMAGES, root=path, kind="lfw")
    if use_manifest and (path / MANIFEST_NAME).is_file():
        return list_manifest(path / MANIFEST_NAME)
    return list_identity_folders(path)


# ----------------------------------------------------------------------------- masked twins


def masked_relpath(relpath: str) -> str:
    """The masked twin of the full face ``relpath``: ``<id>/<img>`` -> ``<id>/masked/<img>``."""
    rel = PurePosixPath(relpath)
    return str(rel.parent / MASKED_DIR / rel.name)


def full_twin_path(path: Path) -> Path:
    """The full-face twin of ``path``: ``<id>/masked/<img>`` -> ``<id>/<img>`` (else itself)."""
    if path.parent.name == MASKED_DIR:
        return path.parent.parent / path.name
    return path


def twin_paths(dst: Path, relpath: str) -> tuple[Path, Path, Path]:
    """(full face, masked twin, label) output paths of the source image ``relpath``."""
    rel = PurePosixPath(relpath)
    full = dst / rel
    masked = dst / masked_relpath(relpath)
    label = dst / LABELS_DIR / rel.parent / f"{rel.stem}.png"
    return full, masked, label


def twin_finished(dst: Path, relpath: str) -> bool:
    """True when all three outputs of ``relpath`` exist (the twin is written last)."""
    return all(p.is_file() for p in twin_paths(dst, relpath))


def write_twin(dst: Path, relpath: str, source: Path, masked: bytes, label: bytes) -> None:
    """Write the pair of ``relpath`` under ``dst``: ``source``'s bytes as the full face, the
    encoded ``label`` (PNG), then the encoded ``masked`` twin, each atomically; the twin comes
    last so a finished twin marks a finished pair. Raises ``OutputError``, ``OSError``."""
    full_path, masked_path, label_path = twin_paths(dst, relpath)
    with open(source, "rb") as reader, atomic_write(full_path, "wb") as writer:
        shutil.copyfileobj(reader, writer)
    with atomic_write(label_path, "wb") as handle:
        handle.write(label)
    with atomic_write(masked_path, "wb") as handle:
        handle.write(masked)


def write_twin_manifest(dst: Path, relpaths: Iterable[str]) -> Path:
    """``DST/manifest.csv`` listing both twins (full face, then masked) of every pair in
    ``relpaths``, sorted by full-face path."""
    rows = []
    for relpath in sorted(relpaths):
        identity = PurePosixPath(relpath).parts[0]
        rows += [(str(PurePosixPath(relpath)), identity, FULL),
                 (masked_relpath(relpath), identity, MASKED)]  # fmt: skip
    return write_manifest_rows(Path(dst) / MANIFEST_NAME, rows)
