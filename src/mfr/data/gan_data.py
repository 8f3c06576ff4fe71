"""Data for the segmenter and the IAMGAN: seg image/label pairs and unpaired F/M image sets.

Everything is decoded once and held in memory as uint8 arrays at the model size (the CPU-scale
sets are a few hundred MB at most); the unpaired sampler draws from a seeded NumPy generator
whose state goes into checkpoints, so a resumed run sees the same batches.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfr.data.dataset import read_identity_list
from mfr.data.images import read_image as read_rgb
from mfr.data.images import resize_square
from mfr.data.layout import LABELS_DIR, MASKED_DIR, is_image_path, list_identity_images

log = logging.getLogger(__name__)


def _is_image(path: Path) -> bool:
    return path.is_file() and is_image_path(path)


# --------------------------------------------------------------------------- segmentation pairs


def load_seg_split(root: Path, split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """mask-seg ``root/split/{images,labels}`` -> (images N x size x size x 3, masks N x s x s).

    Labels are 0 background, 1 face, 2 mask; the target mask is ``label == 2`` (uint8 0/1).
    """
    import cv2

    image_dir, label_dir = Path(root) / split / "images", Path(root) / split / "labels"
    if not image_dir.is_dir():
        from mfr.errors import MfrError

        raise MfrError(f"{image_dir}: segmentation image folder not found")
    images, masks, skipped = [], [], 0
    for path in sorted(p for p in image_dir.iterdir() if _is_image(p)):
        label_path = label_dir / f"{path.stem}.png"
        try:
            image = read_rgb(path)
            label = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
            if label is None:
                raise ValueError(f"{label_path}: missing or unreadable label")
        except Exception as error:  # one bad file is a logged skip, not the end of the run
            log.warning("skipping %s: %s", path, error)
            skipped += 1
            continue
        if label.ndim == 3:
            label = label[..., 0]
        images.append(resize_square(image, size))
        masks.append(cv2.resize((label == 2).astype(np.uint8), (size, size), cv2.INTER_NEAREST))
    if skipped:
        log.warning("%s/%s: skipped %d unreadable image/label pairs", root, split, skipped)
    return _stack(images, size), _stack_masks(masks, size)


def load_mask_layout_pairs(root: Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of an ``mfr mask`` dataset: ``<id>/masked/<stem>.*`` + ``_labels/<id>/<stem>.png``."""
    import cv2

    root = Path(root)
    images, masks, skipped = [], [], 0
    for label_path in sorted((root / LABELS_DIR).glob("*/*.png")):
        identity = label_path.parent.name
        candidates = [
            p
            for p in (root / identity / MASKED_DIR).glob(f"{label_path.stem}.*")
            if is_image_path(p)
        ]
        label = cv2.imread(str(label_path), cv2.IMREAD_GRAYSCALE)
        if not candidates or label is None:
            skipped += 1
            continue
        try:
            image = read_rgb(candidates[0])
        except Exception as error:
            log.warning("skipping %s: %s", candidates[0], error)
            skipped += 1
            continue
        images.append(resize_square(image, size))
        masks.append(cv2.resize((label > 127).astype(np.uint8), (size, size), cv2.INTER_NEAREST))
    if skipped:
        log.warning("%s: skipped %d label files without a readable masked image", root, skipped)
    return _stack(images, size), _stack_masks(masks, size)


def _stack(images: list[np.ndarray], size: int) -> np.ndarray:
    return np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)


def _stack_masks(masks: list[np.ndarray], size: int) -> np.ndarray:
    return np.stack(masks) if masks else np.zeros((0, size, size), np.uint8)


# --------------------------------------------------------------------------- unpaired F / M sets


@dataclass
class FullFaceSet:
    """Domain F: full faces with identity labels (index into ``classes``)."""

    images: np.ndarray  # N x s x s x 3 uint8
    labels: np.ndarray  # N int64
    classes: list[str]
    paths: list[str]


def load_full_faces(
    root: Path,
    size: int,
    *,
    crop: float = 1.0,
    min_images: int = 2,
    max_identities: int = 0,
    exclude: set[str] | None = None,
) -> FullFaceSet:
    """Load domain F: identities with >= ``min_images`` images, minus ``exclude``.

    ``max_identities`` > 0 keeps the identities with the most images (ties by name).
    """
    per_identity = {
        k: v
        for k, v in list_identity_images(root).items()
        if len(v) >= min_images and k not in (exclude or set())
    }
    if max_identities > 0:
        chosen = sorted(per_identity, key=lambda k: (-len(per_identity[k]), k))[:max_identities]
        per_identity = {k: per_identity[k] for k in sorted(chosen)}
    classes = sorted(per_identity)
    images, labels, paths, skipped = [], [], [], 0
    for label, identity in enumerate(classes):
        for path in per_identity[identity]:
            try:
                images.append(resize_square(read_rgb(path), size, crop))
            except Exception as error:
                log.warning("skipping %s: %s", path, error)
                skipped += 1
                continue
            labels.append(label)
            paths.append(str(path))
    if skipped:
        log.warning("%s: skipped %d unreadable images", root, skipped)
    return FullFaceSet(_stack(images, size), np.asarray(labels, np.int64), classes, paths)


def load_masked_faces(root: Path, size: int, max_images: int = 0) -> np.ndarray:
    """Domain M: every image under ``root`` (recursively), squashed to a square."""
    if not Path(root).is_dir():
        from mfr.errors import MfrError

        raise MfrError(f"{root}: masked-face folder not found")
    files = sorted(p for p in Path(root).rglob("*") if _is_image(p))
    if max_images > 0:
        files = files[:max_images]
    images, skipped = [], 0
    for path in files:
        try:
            images.append(resize_square(read_rgb(path), size))
        except Exception as error:
            log.warning("skipping %s: %s", path, error)
            skipped += 1
    if skipped:
        log.warning("%s: skipped %d unreadable images", root, skipped)
    return _stack(images, size)


def read_exclude_list(path: Path | None) -> set[str]:
    """Identities to leave out, one per line (blank lines and ``#`` comments ignored); an
    empty set when ``path`` is None or not a file."""
    if path is None or not Path(path).is_file():
        return set()
    return read_identity_list(path, "exclude list")


class UnpairedSampler:
    """Draws (F batch, F labels, M batch) with random horizontal flips from one seeded generator."""

    def __init__(self, full: FullFaceSet, masked: np.ndarray, seed: int, flip: bool = True):
        if len(full.images) == 0 or len(masked) == 0:
            from mfr.errors import MfrError

            raise MfrError("IAMGAN needs at least one full-face and one masked image")
        self.full, self.masked, self.flip = full, masked, flip
        self.rng = np.random.default_rng(seed)

    def next(self, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        fi = self.rng.integers(0, len(self.full.images), batch_size)
        mi = self.rng.integers(0, len(self.masked), batch_size)
        f, m = self.full.images[fi].copy(), self.masked[mi].copy()
        if self.flip:
            ff = self.rng.random(batch_size) < 0.5
            mf = self.rng.random(batch_size) < 0.5
            f[ff] = f[ff, :, ::-1]
            m[mf] = m[mf, :, ::-1]
        return f, self.full.labels[fi], m

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state
