"""KP-CVX (key-point convex hull erasing, paper §5.4).

The convex hull of the lower-face landmarks is filled with 0. The points are the jaw line
2-14 (from below the cheekbones round the chin) and the nose-bridge point 29, so the hull
covers the lower nose, mouth and chin; its top is cut at the first row below every eye
landmark, so it never reaches the eyes even on a tilted face or a poor landmark fit.
"""

from __future__ import annotations

import numpy as np

from mfr.masking.geometry import eye_cut_row

HULL_POINTS = np.r_[np.arange(2, 15), 29]
FILL = 0


def hull_region(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The hull label (uint8, 255 inside) for an image of ``shape`` (H, W)."""
    import cv2

    points = np.asarray(landmarks, dtype=np.float64)[HULL_POINTS]
    hull = cv2.convexHull(np.round(points * 16).astype(np.int32))
    label = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(label, hull, 255, lineType=cv2.LINE_8, shift=4)
    label[: max(0, min(shape[0], eye_cut_row(landmarks)))] = 0
    return label


def hull(
    image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Fill the lower-face hull with 0; returns (masked image, label). ``rng`` is unused."""
    label = hull_region(landmarks, image.shape[:2])
    out = image.copy()
    out[label > 0] = FILL
    return out, label
