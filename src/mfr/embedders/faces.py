"""Turn an input image into an aligned crop for an embedder (enrol, identify, verify).

An ordinary photo is detected and aligned by ``mfr.align.align.align_face`` (the largest
face, 68 landmarks, ArcFace 5-point template). With several faces the largest is used and a
note says so. An image taken as an aligned crop (``aligned=True``, or auto and 112 x 112) is
checked by ``mfr.align.align.check_aligned``: it must hold an upright face on the template,
else "no face found" (a blank or noise image is never embedded).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mfr.errors import MfrError

#: The aligned-face size of the project (``mfr align``): with ``aligned`` left to auto, a
#: square image of exactly this side is taken for an aligned crop.
ALIGNED_SIZE = 112
#: The smallest aligned crop taken (the networks' smallest input; ``mfr embed`` uses it too).
MIN_CROP_SIDE = 16


@dataclass
class PreparedFace:
    """An aligned crop ready for an embedder, with notes worth telling the user."""

    crop: np.ndarray
    faces_found: int = 1
    notes: list[str] = field(default_factory=list)


def looks_aligned(image: np.ndarray) -> bool:
    """The auto rule: an aligned crop is square with side ``ALIGNED_SIZE``."""
    return image.shape[0] == image.shape[1] == ALIGNED_SIZE


def align_photo(image: np.ndarray, size: int = ALIGNED_SIZE, where: str = "image") -> PreparedFace:
    """Detect the largest face in ``image`` and return its aligned ``size`` x ``size`` crop."""
    from mfr.align.align import FaceNotFound, align_face

    try:
        face = align_face(image, size=size)
    except FaceNotFound as error:
        raise MfrError(f"{where}: {error.reason}") from error
    notes = []
    if face.num_faces > 1:
        notes.append(f"{where}: {face.num_faces} faces found, using the largest")
    return PreparedFace(crop=face.image, faces_found=max(face.num_faces, 1), notes=notes)


def prepare_face(
    image: np.ndarray, aligned: bool | None = None, where: str = "image"
) -> PreparedFace:
    """An aligned crop from ``image``: as is when ``aligned`` (or auto and
    :func:`looks_aligned`) and it passes ``check_aligned``, otherwise detected and aligned by
    :func:`align_photo`. Raises ``MfrError`` ("<where>: no face found ...")."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise MfrError(
            f"{where}: expected an RGB uint8 H x W x 3 image, got {image.dtype} {image.shape}"
        )
    if aligned or (aligned is None and looks_aligned(image)):
        height, width = image.shape[:2]
        if min(height, width) < MIN_CROP_SIDE:
            raise MfrError(f"{where}: image too small ({width}x{height} px, need {MIN_CROP_SIDE})")
        from mfr.align.align import FaceNotFound, check_aligned

        try:
            check_aligned(image)
        except FaceNotFound as error:
            raise MfrError(f"{where}: {error.reason}") from error
        return PreparedFace(crop=image)
    return align_photo(image, where=where)
