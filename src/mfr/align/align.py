"""Align one face: detect, 68 landmarks, 5-point similarity onto the ArcFace template, warp."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mfr.align.detect import FaceNotFound, detect_face
from mfr.align.similarity import (
    apply_affine,
    arcface_template,
    five_points,
    similarity_scale,
    umeyama,
)

__all__ = ["AlignedFace", "FaceNotFound", "align_face", "warp_to_template"]


@dataclass
class AlignedFace:
    """An aligned face: ``image`` (size x size x 3 uint8), ``landmarks68`` (float32, 68 x 2, in
    aligned pixels), the source ``box`` (left, top, right, bottom), whether the tight-crop
    fallback found it, and how many faces HOG saw (one was picked)."""

    image: np.ndarray
    landmarks68: np.ndarray
    box: tuple[int, int, int, int]
    used_fallback: bool
    num_faces: int


def warp_to_template(
    image: np.ndarray, landmarks68: np.ndarray, size: int = 112
) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``image`` so the 5 points of ``landmarks68`` fit the ArcFace template by least
    squares; returns (aligned image, landmarks in aligned coordinates)."""
    import cv2

    matrix = umeyama(five_points(landmarks68), arcface_template(size))
    scale = similarity_scale(matrix)
    source = image
    if scale < 0.5:
        # Strong shrinking: pre-scale with area averaging so the bilinear warp does not alias.
        factor = min(1.0, 2.0 * scale)
        height, width = image.shape[:2]
        new_size = (max(1, round(width * factor)), max(1, round(height * factor)))
        source = cv2.resize(image, new_size, interpolation=cv2.INTER_AREA)
        fx, fy = new_size[0] / width, new_size[1] / height
        matrix = umeyama(five_points(landmarks68) * [fx, fy], arcface_template(size))
        aligned_landmarks = apply_affine(matrix, np.asarray(landmarks68) * [fx, fy])
    else:
        aligned_landmarks = apply_affine(matrix, landmarks68)
    aligned = cv2.warpAffine(
        np.ascontiguousarray(source),
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return aligned, aligned_landmarks.astype(np.float32)


def align_face(
    image: np.ndarray, size: int = 112, fallback: bool = True, pick: str = "largest"
) -> AlignedFace:
    """Align one face of an RGB uint8 image to ``size`` x ``size`` (of several: the largest, or
    with ``pick="central"`` the one nearest the image centre).

    Raises ``FaceNotFound`` (with ``.reason``: "image too small ...", "no face found ...")."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 H x W x 3 image, got {image.dtype} {image.shape}")
    detection = detect_face(image, fallback=fallback, pick=pick)
    aligned, landmarks = warp_to_template(image, detection.landmarks68, size)
    return AlignedFace(
        aligned, landmarks, detection.box, detection.used_fallback, detection.num_faces
    )
