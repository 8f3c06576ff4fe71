"""dlib models shipped by the ``face-recognition-models`` package, loaded once per process.

The package's own ``__init__`` imports ``pkg_resources`` (gone from recent setuptools), so the
files are located with ``importlib.util.find_spec`` without importing it.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from mfr.errors import MfrError

_FILES = {
    "predictor68": "shape_predictor_68_face_landmarks.dat",
    "predictor5": "shape_predictor_5_face_landmarks.dat",
    "descriptor": "dlib_face_recognition_resnet_model_v1.dat",
    "cnn_detector": "mmod_human_face_detector.dat",
}


def model_path(name: str) -> Path:
    """Path of a model file: ``predictor68``, ``predictor5``, ``descriptor``, ``cnn_detector``."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MfrError("the face-recognition-models package is not installed (pip install it)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / _FILES[name]
    if not path.is_file():
        raise MfrError(f"{path}: dlib model file missing; reinstall face-recognition-models")
    return path


@cache
def hog_detector():
    """dlib's frontal HOG face detector."""
    import dlib

    return dlib.get_frontal_face_detector()


@cache
def landmark_predictor(points: int = 68):
    """dlib's 68- or 5-point shape predictor."""
    import dlib

    return dlib.shape_predictor(str(model_path("predictor68" if points == 68 else "predictor5")))


@cache
def face_descriptor_model():
    """dlib's ResNet face descriptor (128-d)."""
    import dlib

    return dlib.face_recognition_model_v1(str(model_path("descriptor")))
