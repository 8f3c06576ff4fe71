"""DE (directly erasing, paper §5.4): the lower 40 % of the aligned face set to 0."""

from __future__ import annotations

import numpy as np

ERASE_FRACTION = 0.4


def erase_rows(height: int, fraction: float = ERASE_FRACTION) -> int:
    """First erased row: ``round((1 - fraction) * height)``."""
    return int(round((1.0 - fraction) * height))


def erase(
    image: np.ndarray, landmarks: np.ndarray | None = None, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Set rows ``round(0.6 * H)`` to ``H`` to 0; returns (masked image, label 255 there).

    Landmarks and rng are unused (same signature as the other methods)."""
    top = erase_rows(image.shape[0])
    out = image.copy()
    out[top:] = 0
    label = np.zeros(image.shape[:2], np.uint8)
    label[top:] = 255
    return out, label
