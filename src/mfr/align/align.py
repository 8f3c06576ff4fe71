"""Align one face: detect, 68 landmarks, 5-point similarity onto the ArcFace template, warp,
and check that the crop holds an upright face (or raise ``FaceNotFound``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mfr.align.detect import DEFAULT_DETECTOR, FaceNotFound, detect_face
from mfr.align.similarity import (
    apply_affine,
    arcface_template,
    five_points,
    similarity_scale,
    umeyama,
)

__all__ = [
    "AlignedFace",
    "FaceNotFound",
    "align_face",
    "check_aligned",
    "misaligned",
    "not_upright",
    "warp_to_template",
]

# How far (fraction of the template's inter-ocular distance) an aligned crop's eye centres
# may lie from the template's: the least-squares fit spreads a distorted face's error over
# five points, and more than this means the five do not make a face.
MAX_EYE_OFFSET = 0.25
MAX_TILT = 20.0  # degrees: an aligned crop from any aligner has a level eye line


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


def misaligned(landmarks68: np.ndarray, size: int = 112) -> str | None:
    """Why the 68 landmarks of an aligned ``size`` x ``size`` crop are not an upright face
    (a short phrase), or None: the eye centres must lie within ``MAX_EYE_OFFSET`` template
    inter-ocular distances of the template's, and the nose tip and mouth corners below the
    eyes, the mouth below the nose."""
    template = arcface_template(size)
    points = five_points(landmarks68)
    interocular = float(np.linalg.norm(template[1] - template[0]))
    offset = np.linalg.norm(points[:2] - template[:2], axis=1).max() / interocular
    if offset > MAX_EYE_OFFSET:
        return f"eyes {offset:.2f} inter-ocular from the template"
    eyes_y = points[:2, 1].max()
    if not eyes_y < points[2, 1] < points[3:, 1].mean():
        return "eyes, nose and mouth out of order"
    return None


def not_upright(landmarks68: np.ndarray, size: int) -> str | None:
    """Why the 68 landmarks of a ``size`` x ``size`` crop made by any aligner are not an
    upright face filling it (a short phrase), or None: eye line within ``MAX_TILT`` degrees
    of level, eyes above nose above mouth, inter-ocular distance 0.15-0.6 of the side, and the
    eyes' midpoint in the crop's upper middle (x 0.3-0.7, y 0.15-0.6 of the side)."""
    points = five_points(landmarks68)
    dx, dy = points[1] - points[0]
    if dx <= 0 or abs(np.degrees(np.arctan2(dy, dx))) > MAX_TILT:
        return "eye line not level"
    eyes = points[:2].mean(0)
    if not eyes[1] < points[2, 1] < points[3:, 1].mean():
        return "eyes, nose and mouth out of order"
    if not 0.15 * size <= np.hypot(dx, dy) <= 0.6 * size:
        return "face too small or too large for the crop"
    if not (0.3 * size <= eyes[0] <= 0.7 * size and 0.15 * size <= eyes[1] <= 0.6 * size):
        return "face not centred"
    return None


def check_aligned(crop: np.ndarray) -> None:
    """Check that ``crop`` (RGB uint8, square: from ``mfr align`` or another aligner) holds one
    upright face that fills it: MediaPipe must find a face in it (no rotation search, no
    tiles) and its landmarks must pass :func:`not_upright`. Raises ``FaceNotFound`` ("no face
    found (...)") otherwise. Used for every input taken as already aligned (a blank or noise
    image, or a face turned upside down, is not an aligned face)."""
    from mfr.align.detect import mesh_to_68
    from mfr.align.mesh import find_upright_face

    if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 H x W x 3 image, got {crop.dtype} {crop.shape}")
    height, width = crop.shape[:2]
    if height != width:
        raise FaceNotFound(f"no face found (an aligned crop is square, got {width}x{height})")
    found = find_upright_face(crop)
    if isinstance(found, str):
        raise FaceNotFound(f"no face found ({found} in the aligned crop)")
    reason = not_upright(mesh_to_68(found.mesh), width)
    if reason:
        raise FaceNotFound(f"no face found (not an aligned face: {reason})")


def align_face(
    image: np.ndarray,
    size: int = 112,
    fallback: bool = True,
    pick: str = "largest",
    detector: str = DEFAULT_DETECTOR,
) -> AlignedFace:
    """Align one face of an RGB uint8 image to ``size`` x ``size`` (of several: the largest, or
    with ``pick="central"`` the one nearest the image centre), found by ``detector``
    (``mediapipe`` or ``dlib``, see ``mfr.align.detect``).

    The crop is checked: its landmarks must be an upright face on the template
    (:func:`misaligned`). Raises ``FaceNotFound`` (with ``.reason``: "image too small ...",
    "no face found ...")."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 H x W x 3 image, got {image.dtype} {image.shape}")
    detection = detect_face(image, fallback=fallback, pick=pick, detector=detector)
    source68 = detection.landmarks68
    aligned, landmarks = warp_to_template(image, source68, size)
    reason = misaligned(landmarks, size)
    if reason and detector == "mediapipe":
        # one more fit, seen in the aligned frame (mfr.align.mesh.refit_on_template)
        from mfr.align.detect import mesh_to_68
        from mfr.align.mesh import refit_on_template

        mesh = refit_on_template(image, source68)
        if mesh is not None:
            source68 = mesh_to_68(mesh)
            aligned, landmarks = warp_to_template(image, source68, size)
            reason = misaligned(landmarks, size)
    if reason:
        raise FaceNotFound(f"no face found (crop not upright: {reason})")
    return AlignedFace(
        aligned, landmarks, detection.box, detection.used_fallback, detection.num_faces
    )
