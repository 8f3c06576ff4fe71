"""Face detection and 68 landmarks: two detectors behind :func:`detect_face`.

``mediapipe`` (the default): BlazeFace boxes and the 468-point FaceMesh, mapped to dlib's 68
points (see ``mfr.align.mesh`` and ``mfr.align.mesh68``). It finds the most real masked faces
(docs/alignment.md). ``dlib``: the largest HOG face and dlib's 68-point predictor, or a
checked tight-crop fallback for images that are already face crops (e.g. masked faces HOG
misses), described below.

Fallback (only when HOG finds no face): a centred box where a face sits in a tight crop is
given to the 68-point predictor; the box is then re-derived from the predicted landmarks and
the predictor re-run (twice), so the box follows the face. The result is accepted only when
(1) the geometry is plausible: eyes above nose above mouth, eye line within 40 degrees of
horizontal, inter-ocular distance 0.22-0.60 of the box width, box mostly inside the image, and
the box stable between the last two passes; and (2) HOG, run on a crop around the box with a
lowered threshold, still scores a face there (score >= FALLBACK_MIN_SCORE). The constants
below were measured on LFW, CelebA and MFR2 (see docs/alignment.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mfr.data.images import shrink_to_side

MIN_SIDE = 40  # images whose shorter side is below this are "image too small"
SMALL_SIDE = 120  # below this shorter side, HOG upsamples twice (faces under 40 px)
MAX_DETECT_SIDE = 800  # larger images are detected on a downscaled copy

# Tight-crop prior: centre and side of the face box as fractions of the image (measured mean
# of HOG boxes on MFR2 160 px crops: centre (0.51, 0.59), side 0.58 of the image).
FALLBACK_CENTER = (0.5, 0.58)
FALLBACK_SIDE = 0.58
FALLBACK_MIN_SCORE = -0.9
FALLBACK_PASSES = 3
WEAK_MIN_AREA = 0.15

# HOG box from the extents of the 68 landmarks (measured means over LFW/CelebA/MFR2):
# left/right/top/bottom offsets as fractions of the landmark extent width/height.
_BOX_FROM_LANDMARKS = (-0.035, 0.025, -0.155, -0.065)


class FaceNotFound(Exception):
    """No usable face; ``reason`` is a short phrase for failure lists."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Detection:
    """A face in the source image: ``box`` (left, top, right, bottom), 68 (x, y) landmarks."""

    box: tuple[int, int, int, int]
    landmarks68: np.ndarray
    used_fallback: bool
    num_faces: int
    score: float


def _rect(box):
    import dlib

    left, top, right, bottom = (int(round(v)) for v in box)
    return dlib.rectangle(left, top, right, bottom)


def predict_landmarks(image: np.ndarray, box) -> np.ndarray:
    """The 68 dlib landmarks (float32, 68 x 2) for a face ``box`` (left, top, right, bottom)."""
    from mfr.align.dlib_models import landmark_predictor

    shape = landmark_predictor(68)(image, _rect(box))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def upsample_for(image: np.ndarray) -> int:
    """HOG upsampling: 1, or 2 when the shorter side is under ``SMALL_SIDE`` pixels."""
    return 2 if min(image.shape[:2]) < SMALL_SIDE else 1


def hog_faces(image: np.ndarray, upsample: int | None = None, threshold: float = 0.0):
    """All HOG detections as (boxes (N, 4) float in image pixels, scores (N,))."""
    from mfr.align.dlib_models import hog_detector

    small, factor = shrink_to_side(image, MAX_DETECT_SIDE)
    upsample = upsample_for(small) if upsample is None else upsample
    rects, scores, _ = hog_detector().run(small, upsample, threshold)
    boxes = np.array(
        [(r.left(), r.top(), r.right(), r.bottom()) for r in rects], dtype=np.float64
    ).reshape(-1, 4)
    return boxes / factor, np.asarray(scores, dtype=np.float64)


def box_from_landmarks(landmarks68: np.ndarray) -> np.ndarray:
    """The HOG-style face box (left, top, right, bottom) implied by 68 landmarks."""
    x0, y0 = landmarks68.min(0)
    x1, y1 = landmarks68.max(0)
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    a, b, c, d = _BOX_FROM_LANDMARKS
    return np.array([x0 + a * w, y0 + c * h, x1 + b * w, y1 + d * h])


def box_iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes; 0 when the union is empty."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def implausible(landmarks68: np.ndarray, box, image_shape) -> str | None:
    """Why landmarks cannot be a face in ``box`` (a short phrase), or None if plausible."""
    left_eye = landmarks68[36:42].mean(0)
    right_eye = landmarks68[42:48].mean(0)
    eyes = (left_eye + right_eye) / 2
    nose = landmarks68[30]
    mouth = (landmarks68[48] + landmarks68[54]) / 2
    if not eyes[1] < nose[1] < mouth[1]:
        return "eyes, nose and mouth out of order"
    dx, dy = right_eye - left_eye
    if dx <= 0 or abs(np.degrees(np.arctan2(dy, dx))) > 40:
        return "eye line tilted"
    width = box[2] - box[0]
    interocular = float(np.hypot(dx, dy))
    if not 0.22 * width <= interocular <= 0.60 * width:
        return "eye distance out of range"
    height, image_width = image_shape[:2]
    inside = box_iou(
        box, (max(box[0], 0), max(box[1], 0), min(box[2], image_width), min(box[3], height))
    )
    if inside < 0.7:
        return "box outside image"
    return None


def face_score(image: np.ndarray, box) -> float:
    """HOG's score for a face at ``box``: the best detection overlapping it (IoU > 0.3) on a
    crop around the box rescaled so the face is ~100 px; -inf when nothing overlaps."""
    import cv2

    left, top, right, bottom = box
    side = max(right - left, bottom - top)
    margin = 0.5 * side
    x0, y0 = int(np.floor(left - margin)), int(np.floor(top - margin))
    x1, y1 = int(np.ceil(right + margin)), int(np.ceil(bottom + margin))
    height, width = image.shape[:2]
    pad = ((max(0, -y0), max(0, y1 - height)), (max(0, -x0), max(0, x1 - width)), (0, 0))
    crop = np.pad(image[max(0, y0) : y1, max(0, x0) : x1], pad)
    factor = 100.0 / side
    crop = cv2.resize(
        crop,
        (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor))),
        interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR,
    )
    boxes, scores = hog_faces(crop, upsample=0, threshold=-3.0)
    target = (np.array(box) - [x0, y0, x0, y0]) * factor
    best = -np.inf
    for candidate, score in zip(boxes, scores, strict=True):
        if box_iou(candidate, target) > 0.3:
            best = max(best, float(score))
    return best


def weak_detection(image: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The largest HOG box scoring at least ``FALLBACK_MIN_SCORE`` that covers at least
    ``WEAK_MIN_AREA`` of the image (a tight crop), with its score; None if there is none."""
    height, width = image.shape[:2]
    boxes, scores = hog_faces(image, threshold=FALLBACK_MIN_SCORE)
    if not len(boxes):
        return None
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    large = np.flatnonzero(areas >= WEAK_MIN_AREA * height * width)
    if not len(large):
        return None
    best = large[np.argmax(areas[large])]
    return boxes[best], float(scores[best])


def fallback_face(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | str:
    """Tight-crop fallback: (box, landmarks68, score), or the reason it was rejected."""
    weak = weak_detection(image)
    if weak is not None:
        box, score = weak
        landmarks = predict_landmarks(image, box)
        if implausible(landmarks, box, image.shape) is None:
            return box, landmarks, score
    height, width = image.shape[:2]
    side = FALLBACK_SIDE * min(height, width)
    cx, cy = FALLBACK_CENTER[0] * width, FALLBACK_CENTER[1] * height
    box = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
    previous = box
    for _ in range(FALLBACK_PASSES):
        landmarks = predict_landmarks(image, box)
        previous, box = box, box_from_landmarks(landmarks)
    if box_iou(previous, box) < 0.8:
        return "fallback box unstable"
    reason = implausible(landmarks, box, image.shape)
    if reason:
        return reason
    score = face_score(image, box)
    if score < FALLBACK_MIN_SCORE:
        return "fallback face score too low"
    return box, landmarks, score


PICKS = ("largest", "central")
DETECTORS = ("mediapipe", "dlib")
DEFAULT_DETECTOR = "mediapipe"


def mesh_to_68(mesh: np.ndarray) -> np.ndarray:
    """dlib's 68 landmarks (float32, 68 x 2) from a 468-point FaceMesh (468 x 2, any units)."""
    from mfr.align.mesh68 import MESH68_INDEX, MESH68_WEIGHTS

    mesh = np.asarray(mesh, dtype=np.float64)
    index = np.asarray(MESH68_INDEX)
    weights = np.asarray(MESH68_WEIGHTS)[..., None]
    return (mesh[index] * weights).sum(axis=1).astype(np.float32)


def _mediapipe_face(image: np.ndarray, pick: str) -> Detection:
    from mfr.align.mesh import find_face

    found = find_face(image, pick=pick)
    if isinstance(found, str):
        raise FaceNotFound(found)
    face, count = found
    return Detection(
        tuple(int(round(v)) for v in face.box),
        mesh_to_68(face.mesh),
        used_fallback=face.step != "coarse",
        num_faces=count,
        score=face.score,
    )


def detect_face(
    image: np.ndarray,
    fallback: bool = True,
    pick: str = "largest",
    detector: str = DEFAULT_DETECTOR,
) -> Detection:
    """One face of an RGB uint8 image with its 68 landmarks; raises ``FaceNotFound``.

    ``detector``: ``mediapipe`` (default) or ``dlib``. When several faces are found,
    ``pick="largest"`` takes the largest box and ``"central"`` the box whose centre is nearest
    the image centre (right for face-centred sets like LFW and CelebA, whose labelled person
    is the centred face even when a bystander's face is larger). ``fallback`` is dlib's
    tight-crop fallback (MediaPipe's second-chance steps are always on; a face they found is
    marked ``used_fallback``)."""
    if pick not in PICKS:
        raise ValueError(f"pick must be one of {PICKS}, got {pick!r}")
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise FaceNotFound(f"image too small ({width}x{height} px, need {MIN_SIDE})")
    if detector == "mediapipe":
        return _mediapipe_face(image, pick)
    boxes, scores = hog_faces(image)
    if len(boxes):
        if pick == "largest":
            best = int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
        else:
            centres = (boxes[:, :2] + boxes[:, 2:]) / 2
            best = int(np.argmin(np.linalg.norm(centres - [width / 2, height / 2], axis=1)))
        box = boxes[best]
        return Detection(
            tuple(int(round(v)) for v in box),
            predict_landmarks(image, box),
            used_fallback=False,
            num_faces=len(boxes),
            score=float(scores[best]),
        )
    if not fallback:
        raise FaceNotFound("no face found")
    found = fallback_face(image)
    if isinstance(found, str):
        raise FaceNotFound(f"no face found ({found})")
    box, landmarks, score = found
    return Detection(tuple(int(round(v)) for v in box), landmarks, True, 1, score)
