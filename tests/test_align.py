"""Face detection and alignment on real faces with both detectors (a few images: dlib HOG
costs ~50 ms each); dlib's tight-crop fallback. MediaPipe-only behaviour (rotations, small
faces, aligned-crop checks) is in test_align_detector.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mfr.align.align import FaceNotFound, align_face
from mfr.align.detect import (
    DETECTORS,
    box_from_landmarks,
    detect_face,
    fallback_face,
    mesh_to_68,
    predict_landmarks,
)
from mfr.align.mesh import find_upright_face
from mfr.align.similarity import arcface_template, five_points


def grace_hopper(width: int = 200) -> np.ndarray:
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    with Image.open(path) as image:
        image = image.convert("RGB")
        height = round(image.height * width / image.width)
        return np.asarray(image.resize((width, height), Image.BILINEAR))


def _lfw_samples(data_dir, count=3):
    folder = data_dir / "lfw" / "images"
    paths = [folder / name / f"{name}_0001.jpg" for name in ("Aaron_Eckhart", "Serena_Williams")]
    paths += sorted((folder / "George_W_Bush").glob("*.jpg"))[:1]
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths[:count]]


def _check_aligned(face, size, detector):
    assert face.image.shape == (size, size, 3) and face.image.dtype == np.uint8
    assert face.landmarks68.shape == (68, 2)
    # The 5 alignment points of the aligned landmarks sit near the template (the least-squares
    # residual of a real face: a few pixels at 112; the mesh's mapped points fit a little
    # looser: its nose tip sits lower than dlib's point 30).
    error = np.linalg.norm(five_points(face.landmarks68) - arcface_template(size), axis=1)
    assert error.mean() < (3.0 if detector == "dlib" else 4.0) * size / 112, error
    # The stored landmarks agree with the warped pixels: re-running the landmarker on the
    # aligned image (upscaled x2 for dlib) finds the same points.
    if detector == "dlib":
        big = np.asarray(Image.fromarray(face.image).resize((2 * size, 2 * size), Image.BILINEAR))
        again = predict_landmarks(big, box_from_landmarks(face.landmarks68 * 2)) / 2
    else:
        again = mesh_to_68(find_upright_face(face.image).mesh)
    assert np.linalg.norm(again - face.landmarks68, axis=1).mean() < 2.0 * size / 112


@pytest.mark.parametrize("detector", DETECTORS)
def test_grace_hopper_aligns_onto_the_template_at_two_sizes(detector):
    image = grace_hopper()
    for size in (112, 160):
        face = align_face(image, size=size, detector=detector)
        assert not face.used_fallback and face.num_faces == 1
        _check_aligned(face, size, detector)


@pytest.mark.parametrize("detector", DETECTORS)
def test_lfw_faces_align_onto_the_template(data_dir, detector):
    for image in _lfw_samples(data_dir):
        _check_aligned(align_face(image, size=112, detector=detector), 112, detector)


def test_largest_of_two_faces_is_chosen():
    big, small = grace_hopper(220), grace_hopper(120)
    canvas = np.full((300, 400, 3), 128, np.uint8)
    canvas[: big.shape[0], : big.shape[1]] = big[:300]
    canvas[10 : 10 + small.shape[0], 260 : 260 + small.shape[1]] = small
    detection = detect_face(canvas)
    assert detection.num_faces == 2
    left, top, right, bottom = detection.box
    assert right <= 220 and right - left > 80  # the face inside the big copy
    face = align_face(canvas)
    assert face.num_faces == 2


def test_central_pick_takes_the_face_nearest_the_centre_not_the_largest():
    big, small = grace_hopper(220), grace_hopper(120)
    canvas = np.full((300, 560, 3), 128, np.uint8)
    canvas[: big.shape[0], : big.shape[1]] = big[:300]
    canvas[40 : 40 + small.shape[0], 220 : 220 + small.shape[1]] = small
    largest, central = detect_face(canvas), detect_face(canvas, pick="central")
    assert largest.num_faces == central.num_faces == 2
    assert largest.box[2] <= 220 and central.box[0] >= 220
    assert central.box[2] - central.box[0] < largest.box[2] - largest.box[0]
    with pytest.raises(ValueError):
        detect_face(canvas, pick="biggest")


def test_non_face_and_tiny_images_give_reasons(rng):
    noise = rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)
    with pytest.raises(FaceNotFound) as error:
        align_face(noise)
    assert error.value.reason.startswith("no face found")
    with pytest.raises(FaceNotFound) as error:
        align_face(grace_hopper(200)[:30, :30].copy())
    assert error.value.reason.startswith("image too small")


def test_tight_crop_fallback_matches_the_detector_landmarks():
    image = grace_hopper(200)
    detected = detect_face(image, detector="dlib")
    left, top, right, bottom = detected.box
    side = right - left
    # A tight crop: the face box fills ~60 % of the image, as in MFR2-style crops.
    x0, y0 = max(0, left - side // 3), max(0, top - side // 3)
    crop = image[y0 : bottom + side // 4, x0 : right + side // 3].copy()
    found = fallback_face(crop)
    assert not isinstance(found, str), found
    reference = predict_landmarks(crop, np.array(detected.box) - [x0, y0, x0, y0])
    interocular = np.linalg.norm(reference[36:42].mean(0) - reference[42:48].mean(0))
    assert np.linalg.norm(found[1] - reference, axis=1).mean() < 0.1 * interocular


def test_fallback_finds_a_masked_face_hog_misses_and_no_fallback_refuses(data_dir):
    path = data_dir / "mfr2-dev" / "GaryHerbert" / "GaryHerbert_0003.png"
    image = np.asarray(Image.open(path).convert("RGB"))
    with pytest.raises(FaceNotFound):
        align_face(image, fallback=False, detector="dlib")
    face = align_face(image, detector="dlib")
    assert face.used_fallback
    error = np.linalg.norm(five_points(face.landmarks68) - arcface_template(112), axis=1)
    assert error.mean() < 6.0


def test_align_face_rejects_non_rgb_arrays():
    with pytest.raises(ValueError):
        align_face(np.zeros((100, 100), np.uint8))
