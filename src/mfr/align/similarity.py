"""Similarity transforms for face alignment: Umeyama's least-squares fit, the ArcFace 5-point
template, and the 5 alignment points taken from dlib's 68 landmarks."""

from __future__ import annotations

import numpy as np

# The ArcFace / insightface 112 x 112 template: left eye, right eye, nose tip, left and right
# mouth corners (x, y in pixels; "left" is the image left).
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


def arcface_template(size: int = 112) -> np.ndarray:
    """The 5-point template for a ``size`` x ``size`` aligned image (the 112 one scaled)."""
    return ARCFACE_TEMPLATE_112 * np.float32(size / 112.0)


def five_points(landmarks68: np.ndarray) -> np.ndarray:
    """(..., 68, 2) dlib landmarks -> (..., 5, 2): eye centres (mean of 36-41 and 42-47),
    nose tip (30), mouth corners (48, 54), in the order of the ArcFace template."""
    points = np.asarray(landmarks68, dtype=np.float32)
    return np.stack(
        [
            points[..., 36:42, :].mean(axis=-2),
            points[..., 42:48, :].mean(axis=-2),
            points[..., 30, :],
            points[..., 48, :],
            points[..., 54, :],
        ],
        axis=-2,
    )


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) mapping
    ``src`` (N, 2) onto ``dst`` (N, 2), as a 2 x 3 matrix (Umeyama 1991)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two matching (N>=2, 2) point sets, got {src.shape}, {dst.shape}")
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    src_var = (src_c**2).sum() / len(src)
    scale = (singular * sign).sum() / src_var if src_var > 0 else 1.0
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2 x 3 affine matrix to (..., 2) points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def similarity_scale(matrix: np.ndarray) -> float:
    """The uniform scale factor of a similarity matrix."""
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
