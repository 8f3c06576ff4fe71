"""dlib's ResNet face descriptor (128-d): the "what a user would use instead" baseline.

For each image (``aligned=False``, the default): dlib's HOG detector (upsampled once, twice
for images under 120 px on the short side) and the largest face it finds. When it finds
none, the image is taken to be a tight face crop (documented fallback): the face rectangle
is the whole image shrunk by ``margin`` of its size on every side. ``aligned=True`` skips
detection and always uses that rectangle. The 5-point landmark predictor is run on the
rectangle and dlib aligns the face chip and computes the descriptor (``num_jitters=0``).
``fallback_count`` counts the images that used the fallback rectangle.

The default margin 0.05 was chosen on LFW, never on mfr2-dev (evaluation only):
``benchmarks/tune_dlib_margin.py`` cuts 160 px crops around the 68 landmarks of
template-masked LFW faces (100 identities not in MFR2, seed 0) and measures masked-probe
Rank-1 with the fallback rectangle for every probe, for three framings (crop side 1.1x, 1.3x,
1.5x the landmark box). Mean Rank-1: margin 0 -> 26.2%, 0.05 -> 27.8%, 0.1 -> 25.0%,
0.15 -> 20.3%, 0.2 -> 11.8%, 0.25 -> 1.5%, 0.3 -> 0.7%. The best margin grows with the
context around the face (0.05 / 0 / 0.15 for the three framings): pass ``margin`` for crops
that frame the face more loosely.
"""

from __future__ import annotations

import numpy as np

from mfr.align.dlib_models import face_descriptor_model, hog_detector, landmark_predictor
from mfr.eval.embeddings import l2_normalise

SMALL_IMAGE = 120  # short side (px) below which the HOG detector is upsampled twice


class DlibEmbedder:
    name = "dlib"
    dim = 128

    def __init__(self, margin: float = 0.05, landmarks: int = 5, normalize: bool = False) -> None:
        if not 0 <= margin < 0.5:
            raise ValueError(f"margin must be in [0, 0.5), got {margin}")
        self.margin = margin
        #: L2-normalise the descriptors (``mfr embed``); dlib's own are ~1.43 long and its
        #: distance rule needs their real length, so raw is the default
        self.normalize = normalize
        self.detector = hog_detector()
        self.predictor = landmark_predictor(landmarks)
        self.model = face_descriptor_model()
        self.fallback_count = 0
        self.detected_count = 0

    def fallback_rectangle(self, height: int, width: int, margin: float | None = None):
        """The whole image shrunk by ``margin`` (default ``self.margin``) on every side."""
        import dlib

        margin = self.margin if margin is None else margin
        dx, dy = round(width * margin), round(height * margin)
        return dlib.rectangle(dx, dy, width - 1 - dx, height - 1 - dy)

    def face_rectangle(self, image: np.ndarray, detect: bool = True):
        """The dlib rectangle of the largest detected face, or the fallback rectangle.

        Returns ``(rectangle, detected)``.
        """
        height, width = image.shape[:2]
        if detect:
            upsample = 2 if min(height, width) < SMALL_IMAGE else 1
            faces = self.detector(image, upsample)
            if len(faces):
                return max(faces, key=lambda r: r.width() * r.height()), True
        return self.fallback_rectangle(height, width), False

    def descriptors(self, images: list[np.ndarray], rectangles: list) -> np.ndarray:
        """128-d descriptors (float32, N x 128) of the faces in the given dlib rectangles."""
        import dlib

        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch_shapes = []
        for image, rectangle in zip(images, rectangles, strict=True):
            shapes = dlib.full_object_detections()
            shapes.append(self.predictor(image, rectangle))
            batch_shapes.append(shapes)
        descriptors = self.model.compute_face_descriptor(list(images), batch_shapes, 0)
        return np.array([np.asarray(d[0]) for d in descriptors], dtype=np.float32)

    def embed(self, images: list[np.ndarray], aligned: bool = False) -> np.ndarray:
        """128-d descriptors (float32, N x 128) of RGB uint8 images (L2-normalised with
        ``normalize``)."""
        batch_images, rectangles = [], []
        for image in images:
            image = np.ascontiguousarray(image, dtype=np.uint8)
            if image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"expected an RGB image H x W x 3, got shape {image.shape}")
            rectangle, detected = self.face_rectangle(image, detect=not aligned)
            if detected:
                self.detected_count += 1
            else:
                self.fallback_count += 1
            batch_images.append(image)
            rectangles.append(rectangle)
        descriptors = self.descriptors(batch_images, rectangles)
        return l2_normalise(descriptors) if self.normalize else descriptors
