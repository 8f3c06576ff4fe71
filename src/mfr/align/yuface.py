"""A second detector for the faces MediaPipe refuses: libfacedetection's CNN (``yuface``
2023.5.1, BSD-3-Clause, its weights compiled into the 468 KB wheel, no dependencies).

Measured on masked-real (chosen there, never on the evaluation sets): of the 60 photos whose
face MediaPipe's steps do not accept, its detections (default confidence 0.5, on the photo
with a black border of 0.25 of its longer side, as BlazeFace's first framing) pass
:func:`mfr.align.mesh`'s checks for a second-chance face in 12, while non-faces (noise,
smoothed noise, LFW background corners) accepted went from 17 to 19 of 180. Corroboration (a
face both detectors find, :func:`mfr.align.mesh.find_face`) made that 16, and the other two
framings (no border, 0.5; tried when the first finds nothing) 17, non-faces still 19. It
never runs on a photo whose face MediaPipe accepts, so aligned crops of those are unchanged.
The photo is shrunk to ``MAX_SIDE`` first (small faces in large photos are the tiles' job):
yuface's time grows with the pixels (seconds for a 3-megapixel photo).
"""

from __future__ import annotations

import numpy as np

from mfr.data.images import shrink_to_side
from mfr.errors import MfrError

YUFACE_VERSION = "2023.5.1"
MIN_CONFIDENCE = 0.5  # yuface's default
PADS = (0.25, 0.0, 0.5)  # black borders tried in turn (share of the longer side), as BlazeFace's
MAX_SIDE = 640  # the longer side of the copy it looks at (BlazeFace's coarse copy: the same)


def detect(image: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """The faces yuface finds in an RGB uint8 image (H, W, 3), best first, in image pixels
    (float64): ``(box, keypoints, score)`` with box (left, top, right, bottom), keypoints 6 x 2
    in BlazeFace's order (the subject's right eye = the eye on the image's left, true of a
    face turned less than 90 degrees; left eye, nose tip, mouth centre, then the box's sides
    at eye height for the ears) and score in [0, 1]. Photos larger than ``MAX_SIDE`` are
    searched on a shrunk copy.

    Raises:
        MfrError: yuface is not installed.
    """
    import cv2

    try:
        import yuface
    except ImportError as error:
        raise MfrError(f"the second detector needs yuface=={YUFACE_VERSION} ({error})") from None
    image, factor = shrink_to_side(image, MAX_SIDE)
    for pad in PADS:
        border = int(round(pad * max(image.shape[:2])))
        bordered = cv2.copyMakeBorder(image, border, border, border, border,
                                      cv2.BORDER_CONSTANT, value=(0, 0, 0))  # fmt: skip
        scores, boxes, points = yuface.detect(np.ascontiguousarray(bordered[:, :, ::-1]),
                                              conf=MIN_CONFIDENCE)  # fmt: skip
        if len(scores):
            break
    faces = []
    for score, box, five in zip(scores, boxes.astype(np.float64), points.astype(np.float64)):
        left, top, width, height = box - [border, border, 0, 0]
        five = five.reshape(5, 2) - border
        eyes = five[:2][np.argsort(five[:2, 0])]
        eye_level = eyes[:, 1].mean()
        keypoints = np.vstack(
            [eyes, five[2], five[3:5].mean(0), [left, eye_level], [left + width, eye_level]]
        )
        box = np.array([left, top, left + width, top + height])
        faces.append((box / factor, keypoints / factor, float(score) / 100.0))
    return sorted(faces, key=lambda face: -face[2])
