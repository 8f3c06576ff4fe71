"""The MediaPipe detector (the default) and the checks that make an aligned crop an upright
face or nothing: blank and noise crops are refused, rotated faces never come out upside
down, a small face in a 24-megapixel photo is found, masked faces match their full faces."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_align import grace_hopper

from mfr.align.align import FaceNotFound, align_face, check_aligned, misaligned, not_upright
from mfr.align.detect import detect_face
from mfr.align.similarity import arcface_template, five_points
from mfr.embedders.faces import prepare_face
from mfr.errors import MfrError


def _lfw(data_dir, names=("Aaron_Eckhart", "Serena_Williams", "Colin_Powell")):
    folder = data_dir / "lfw" / "images"
    return [np.asarray(Image.open(folder / n / f"{n}_0001.jpg").convert("RGB")) for n in names]


def test_blank_and_noise_crops_are_refused_as_aligned_faces(rng):
    crops = [np.full((112, 112, 3), value, np.uint8) for value in (0, 128, 255)]
    crops += [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(5)]
    for crop in crops:
        with pytest.raises(FaceNotFound) as error:
            check_aligned(crop)
        assert error.value.reason.startswith("no face found")
        # the auto rule (a 112 x 112 image is taken as aligned) and aligned=True both check
        for aligned in (None, True):
            with pytest.raises(MfrError, match="no face found"):
                prepare_face(crop, aligned=aligned, where="blank.png")


def test_a_real_aligned_crop_passes_and_its_upside_down_copy_does_not():
    face = align_face(grace_hopper(200))
    check_aligned(face.image)
    with pytest.raises(FaceNotFound):
        check_aligned(np.ascontiguousarray(face.image[::-1, ::-1]))
    assert prepare_face(face.image).crop is face.image


def test_misaligned_names_landmarks_that_are_no_upright_face():
    points = np.zeros((68, 2), np.float32)
    template = arcface_template(112)
    points[36:42], points[42:48], points[30] = template[0], template[1], template[2]
    points[48], points[54] = template[3], template[4]
    assert misaligned(points) is None
    assert misaligned(points[:, ::-1] * [1, -1] + [0, 112]) is not None  # turned 90 degrees
    flipped = points.copy()
    flipped[:, 1] = 112 - flipped[:, 1]  # upside down
    assert misaligned(flipped) is not None


def test_rotated_faces_are_aligned_upright_or_refused_never_upside_down(data_dir):
    aligned_rotations = 0
    for image in [grace_hopper(200), *_lfw(data_dir)]:
        reference = align_face(image)
        upright = reference.image.astype(np.float32)
        for turns in (1, 2, 3):  # 90, 180, 270 degrees
            turned = np.ascontiguousarray(np.rot90(image, k=turns))
            try:
                face = align_face(turned)
            except FaceNotFound:
                continue
            aligned_rotations += 1
            crop = face.image.astype(np.float32)
            same = np.abs(crop - upright).mean()
            upside_down = np.abs(crop - upright[::-1, ::-1]).mean()
            assert same < upside_down, (turns, same, upside_down)
            eyes = five_points(face.landmarks68)[:2] - five_points(reference.landmarks68)[:2]
            assert (
                np.linalg.norm(eyes, axis=1).max() < 0.25 * 35
            )  # inter-ocular ~35 px; upside down is ~35
            assert misaligned(face.landmarks68) is None
    assert aligned_rotations >= 6  # the rotation search brings most turned faces back


def test_a_small_face_in_a_24_megapixel_photo_is_found(rng):
    import cv2

    face = grace_hopper(80)  # the face itself is ~45 px wide
    height, width = 4000, 6000
    photo = cv2.resize(
        rng.integers(60, 200, (40, 60, 3), dtype=np.uint8), (width, height), cv2.INTER_CUBIC
    )
    top, left = 2710, 4130
    photo[top : top + face.shape[0], left : left + face.shape[1]] = face
    reference = detect_face(face)
    detection = detect_face(photo)
    box = np.array(detection.box) - [left, top, left, top]
    assert np.abs(box - np.array(reference.box)).max() < 8, (box, reference.box)
    interocular = np.linalg.norm(
        reference.landmarks68[36:42].mean(0) - reference.landmarks68[42:48].mean(0)
    )
    shift = np.linalg.norm(
        five_points(detection.landmarks68 - [left, top]) - five_points(reference.landmarks68),
        axis=1,
    )
    assert shift.max() < 0.15 * interocular


def test_masked_face_and_its_full_face_get_the_same_eyes(data_dir):
    import cv2

    for image in _lfw(data_dir):
        full = detect_face(image, pick="central")
        points = detect_face(image, pick="central", detector="dlib").landmarks68
        masked = image.copy()
        polygon = np.vstack([points[1:16], points[29:30]]).astype(np.int32)
        cv2.fillPoly(masked, [cv2.convexHull(polygon)], (235, 235, 240))
        covered = detect_face(masked, pick="central")
        eyes = five_points(full.landmarks68)[:2]
        interocular = np.linalg.norm(eyes[1] - eyes[0])
        shift = np.linalg.norm(five_points(covered.landmarks68)[:2] - eyes, axis=1)
        assert shift.max() < 0.1 * interocular, shift / interocular


def test_mesh_landmarks_agree_with_dlib_on_unmasked_faces(data_dir):
    for image in _lfw(data_dir):
        ours = detect_face(image, pick="central").landmarks68
        dlib = detect_face(image, pick="central", detector="dlib").landmarks68
        interocular = np.linalg.norm(dlib[36:42].mean(0) - dlib[42:48].mean(0))
        error = np.linalg.norm(ours - dlib, axis=1) / interocular
        assert np.median(error) < 0.1 and error[17:].mean() < 0.12, error


def test_unknown_detector_is_refused():
    with pytest.raises(ValueError, match="detector"):
        detect_face(grace_hopper(200), detector="hog")


def test_a_crop_that_fails_its_check_is_fitted_again_in_the_template_frame(monkeypatch):
    import mfr.align.align as align_module
    from mfr.align.detect import Detection

    image = grace_hopper(200)
    good = detect_face(image)
    interocular = np.linalg.norm(good.landmarks68[36:42].mean(0) - good.landmarks68[42:48].mean(0))
    bad = good.landmarks68.copy()
    bad[[30, 48, 54]] += [0.6 * interocular, 0]  # nose and mouth pulled aside: a turned fit

    def distorted(*args, **kwargs):
        return Detection(good.box, bad, False, 1, good.score)

    monkeypatch.setattr(align_module, "detect_face", distorted)
    _, landmarks = align_module.warp_to_template(image, bad)
    assert misaligned(landmarks) is not None  # the first fit fails the crop check
    face = align_face(image)  # ... and the fit in the template's frame passes it
    assert misaligned(face.landmarks68) is None
    with pytest.raises(FaceNotFound, match="crop not upright"):
        align_face(image, detector="dlib")  # the dlib path is not fitted again


def test_the_second_look_runs_only_the_passes_it_needs(monkeypatch, rng):
    import mfr.align.mesh as mesh

    calls = []
    real = mesh.run_short

    def counted(picture, min_score=mesh.MIN_SCORE):
        found = real(picture, min_score)
        calls.append(len(found))
        return found

    monkeypatch.setattr(mesh, "run_short", counted)
    image = grace_hopper(200)
    sure = detect_face(image).landmarks68
    assert len(calls) == 1  # BlazeFace scores this face >= SURE_SCORE: the coarse pass only
    calls.clear()
    monkeypatch.setattr(mesh, "SURE_SCORE", 1.01)
    judged = detect_face(image).landmarks68
    assert len(calls) == 3  # coarse, the turned cut and the upright cut: the same face
    np.testing.assert_array_equal(judged, sure)
    # nothing on the turned cut: it cannot be upside down, and the upright cut is not run
    calls.clear()
    noise = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    box, keypoints = np.array([50.0, 50, 150, 150]), np.array([[80.0, 90], [120, 90]])
    look = mesh.SecondLook(noise, mesh.MeshFace(box, keypoints, 0.5, None))
    assert not look.flipped() and calls == [0]


def test_masked_faces_blazeface_frames_badly_are_aligned_by_a_look_framed_by_the_mesh(data_dir):
    # masked-real photos (no identities, free to tune on) whose BlazeFace keypoints disagree
    # with the mesh by more than MAX_EYE_SHIFT until BlazeFace looks again at a mesh-framed cut
    folder = data_dir / "masked-real"
    for name in ("masked_01440.jpg", "masked_01737.jpg"):
        image = np.asarray(Image.open(folder / name).convert("RGB"))
        face = align_face(image)
        assert misaligned(face.landmarks68) is None
        assert not_upright(face.landmarks68, 112) is None


def test_the_second_detector_finds_faces_in_image_pixels_with_blazeface_keypoint_order():
    from mfr.align.yuface import detect

    image = grace_hopper(200)
    box, keypoints, score = detect(image)[0]
    reference = detect_face(image)
    eyes = five_points(reference.landmarks68)[:2]  # image-left eye first
    interocular = np.linalg.norm(eyes[1] - eyes[0])
    assert 0.5 <= score <= 1.0
    assert np.linalg.norm(keypoints[:2] - eyes, axis=1).max() < 0.25 * interocular
    assert keypoints[0, 0] < keypoints[2, 0] < keypoints[1, 0]  # nose between the eyes
    assert keypoints[2, 1] < keypoints[3, 1]  # mouth below the nose
    left, top, right, bottom = box
    assert left < eyes[:, 0].min() and right > eyes[:, 0].max() and top < eyes[:, 1].min() < bottom


def test_a_face_mediapipe_does_not_find_is_aligned_by_the_second_detector(monkeypatch, rng):
    from mfr.align import mesh

    image = grace_hopper(200)
    reference = five_points(detect_face(image).landmarks68)
    monkeypatch.setattr(mesh, "coarse_faces", lambda image: [])
    monkeypatch.setattr(mesh, "rotated_faces", lambda image: iter(()))
    monkeypatch.setattr(mesh, "tile_levels", lambda image: iter(()))
    face, count = mesh.find_face(image)
    assert face.step == "second detector" and count == 1
    found = detect_face(image)
    assert found.used_fallback
    interocular = np.linalg.norm(reference[1] - reference[0])
    assert np.linalg.norm(five_points(found.landmarks68) - reference, axis=1).max() < (
        0.1 * interocular
    )
    with pytest.raises(FaceNotFound):  # and still nothing in noise
        detect_face(rng.integers(0, 256, (160, 160, 3), dtype=np.uint8))


def test_a_face_both_detectors_find_is_corroborated_only_when_its_eyes_agree():
    from mfr.align.mesh import MeshFace, _found_by

    box = np.array([10.0, 10.0, 110.0, 110.0])
    upright = np.array([[40, 50], [80, 50], [60, 75], [60, 90], [15, 55], [105, 55]], float)
    face = MeshFace(box, upright, 0.4, None, "low score")
    assert _found_by(face, [MeshFace(box + 5, upright + 5, 0.9, None, "second detector")])
    # the same box, but its eyes at the bottom: the face seen upside down
    turned = upright.copy()
    turned[:, 1] = 120 - turned[:, 1]
    turned[:2] = turned[1::-1]
    assert not _found_by(face, [MeshFace(box, turned, 0.9, None, "second detector")])
    # the same eyes, but a box of another size (IoU 0.23)
    assert not _found_by(face, [MeshFace(box * [1, 1, 2, 2], upright, 0.9, None, "x")])


def test_an_unconfirmed_second_chance_face_is_aligned_when_the_second_detector_finds_it(
    monkeypatch,
):
    from mfr.align import mesh

    image = grace_hopper(200)
    faces = mesh.coarse_faces(image)
    for face in faces:
        face.step = "low score"
    monkeypatch.setattr(mesh, "coarse_faces", lambda image: faces)
    monkeypatch.setattr(mesh.SecondLook, "confirmed", lambda self: None)
    monkeypatch.setattr(mesh, "MIN_PRESENCE", 1.1)  # the landmark model cannot confirm it
    second = mesh.second_detector_faces(image)
    monkeypatch.setattr(mesh, "second_detector_faces", lambda image: [])
    assert mesh.find_face(image) == "no face found (not confirmed)"
    monkeypatch.setattr(mesh, "second_detector_faces", lambda image: second)
    face, count = mesh.find_face(image)
    assert face.step == "low score" and count == len(faces)
    # a second detector's face elsewhere in the photo corroborates nothing
    elsewhere = [mesh.MeshFace(f.box + 150, f.keypoints + 150, f.score, None, f.step)
                 for f in second]  # fmt: skip
    monkeypatch.setattr(mesh, "second_detector_faces", lambda image: elsewhere)
    assert isinstance(mesh.find_face(image), str)
    # and a face judged upside down stays refused, corroborated or not
    monkeypatch.setattr(mesh, "second_detector_faces", lambda image: second)
    monkeypatch.setattr(mesh.SecondLook, "flipped", lambda self: True)
    assert mesh.find_face(image) == "no face found (upside down)"


def test_the_second_detectors_face_is_corroborated_by_a_blazeface_candidate_refused_otherwise(
    monkeypatch,
):
    from mfr.align import mesh

    image = grace_hopper(200)
    faces = mesh.coarse_faces(image)
    accept = mesh._accept

    def refuse_blazeface(image, face, corroborated=False):
        if face.step == "coarse":  # BlazeFace's own candidate: its mesh disagrees, say
            return "landmarks disagree with the detector"
        return accept(image, face, corroborated)

    monkeypatch.setattr(mesh, "_accept", refuse_blazeface)
    monkeypatch.setattr(mesh.SecondLook, "confirmed", lambda self: None)
    monkeypatch.setattr(mesh, "MIN_PRESENCE", 1.1)  # the landmark model cannot confirm it
    monkeypatch.setattr(mesh, "coarse_faces", lambda image: [])
    monkeypatch.setattr(mesh, "rotated_faces", lambda image: iter(()))
    monkeypatch.setattr(mesh, "tile_levels", lambda image: iter(()))
    assert mesh.find_face(image) == "no face found"  # yuface's face alone: not confirmed
    monkeypatch.setattr(mesh, "coarse_faces", lambda image: faces)
    face, count = mesh.find_face(image)
    assert face.step == "second detector" and count == 1


def test_the_second_detector_tries_three_framings_and_shrinks_large_photos(monkeypatch):
    import yuface

    from mfr.align import yuface as second

    image = grace_hopper(200)
    (box, keypoints, _), *_ = second.detect(image)
    calls = []
    real = yuface.detect

    def nothing_at_first(bordered, conf):
        calls.append(bordered.shape)
        found = real(bordered, conf=conf)
        return found if len(calls) == 2 else tuple(a[:0] for a in found)

    monkeypatch.setattr(yuface, "detect", nothing_at_first)
    (box2, keypoints2, _), *_ = second.detect(image)
    assert calls[1] == image.shape  # the second framing: no border
    assert np.abs(box2 - box).max() < 8 and np.abs(keypoints2[:4] - keypoints[:4]).max() < 8
    monkeypatch.setattr(yuface, "detect", real)
    height, width = image.shape[:2]
    large = np.asarray(Image.fromarray(image).resize((8 * width, 8 * height)))
    (box3, _, _), *_ = second.detect(large)
    assert np.abs(box3 / 8 - box).max() < 8  # found on a 640 px copy, in the photo's pixels
