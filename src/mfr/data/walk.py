"""The one folder walk of mfr: which files under a folder are images, and why the others are not.

Every command that takes a folder (``embed``, ``data info``, ``train``, ``align``, ``enroll``,
``identify``) lists it here, so a file is taken or skipped the same way everywhere, and every
skip has a reason the command reports with a count:

- an image is a file whose suffix is in :data:`~mfr.data.images.IMAGE_SUFFIXES` (any case);
- skipped: hidden files (``.name``, e.g. macOS ``._photo.jpg`` resource forks), files with
  another suffix, broken symbolic links;
- hidden folders are not entered; symbolic links to folders are followed once (a link loop
  is skipped with its reason).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mfr.data.images import IMAGE_SUFFIXES


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
    if path.suffix.lower() not in IMAGE_SUFFIXES:
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


def skip_summary(skipped: list[tuple[Path, str]], limit: int = 3) -> str:
    """``N files skipped (e.g. a: reason; b: reason)`` for a log line."""
    examples = "; ".join(f"{path}: {reason}" for path, reason in skipped[:limit])
    more = ", ..." if len(skipped) > limit else ""
    return f"{len(skipped)} files skipped ({examples}{more})"
