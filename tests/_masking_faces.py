"""Real faces with dlib's 68 landmarks for the masking tests (detected once per session)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

LFW_SAMPLES = (
    "AJ_Cook/AJ_Cook_0001.jpg",
    "Alejandro_Toledo/Alejandro_Toledo_0007.jpg",
    "Asif_Hanif/Asif_Hanif_0001.jpg",
)
TURNED_LEFT = "Bill_Frist/Bill_Frist_0007.jpg"  # face turned towards image-left


def grace_hopper_path() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def detect68(image: np.ndarray) -> np.ndarray:
    """dlib HOG detection (largest face) + 68 landmarks, float64 (68, 2)."""
    from mfr.align.dlib_models import hog_detector, landmark_predictor

    boxes = hog_detector()(image, 1)
    assert boxes, "test face not detected"
    box = max(boxes, key=lambda r: r.area())
    shape = landmark_predictor(68)(image, box)
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


@cache
def face(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(RGB image, landmarks) of an image file, longest side scaled to 250 px."""
    import cv2

    from mfr.data.images import read_image

    image = read_image(path)
    landmarks = detect68(image)
    scale = 250 / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        landmarks = landmarks * scale
    return image, landmarks


def real_faces(data_dir: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Grace Hopper and a few LFW faces as (name, image, landmarks)."""
    out = [("grace_hopper", *face(str(grace_hopper_path())))]
    for rel in LFW_SAMPLES:
        out.append((rel, *face(str(data_dir / "lfw" / "images" / rel))))
    return out
