"""Self-made tiny data for the segmenter and IAMGAN tests (no real data needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def face_with_mask(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A noisy 'face' with a bright rectangle 'mask' on its lower half; label 0/1/2."""
    image = rng.integers(40, 120, (size, size, 3), dtype=np.uint8)
    label = np.ones((size, size), np.uint8)
    top = size // 2 + int(rng.integers(0, size // 8 + 1))
    image[top:, size // 6 : size - size // 6] = 230
    label[top:, size // 6 : size - size // 6] = 2
    label[:, : size // 12] = 0
    return image, label


def make_mask_seg(root: Path, size: int = 32, n_train: int = 8, n_test: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for split, count in (("train", n_train), ("test", n_test)):
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        for i in range(count):
            image, label = face_with_mask(rng, size)
            Image.fromarray(image).save(root / split / "images" / f"img_{i}.jpg", quality=95)
            Image.fromarray(label).save(root / split / "labels" / f"img_{i}.png")
    return root


def make_full_faces(root: Path, identities: int = 3, per_identity: int = 3, size: int = 24):
    rng = np.random.default_rng(1)
    for k in range(identities):
        folder = root / f"person_{k}"
        folder.mkdir(parents=True)
        base = rng.integers(0, 255, 3)
        for i in range(per_identity):
            image = np.clip(base + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(image).save(folder / f"person_{k}_{i:04d}.png")
    return root


def make_masked_faces(root: Path, count: int = 5, size: int = 20) -> Path:
    rng = np.random.default_rng(2)
    root.mkdir(parents=True)
    for i in range(count):
        image, _ = face_with_mask(rng, size)
        Image.fromarray(image).save(root / f"masked_{i:05d}.jpg")
    return root


def run_cli(args: list[str]) -> int:
    """``mfr ARGS`` in-process; its exit status."""
    from mfr.cli import main

    return main([str(a) for a in args])
