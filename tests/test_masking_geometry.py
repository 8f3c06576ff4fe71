"""Landmark geometry: homography fit, anchors, contour crossings, yaw variant."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _masking_faces import TURNED_LEFT, detect68, face, grace_hopper_path

from mfr.masking.geometry import (
    anchor_points,
    fit_homography,
    line_contour_crossings,
    nose_offset,
    yaw_variant,
)


def _apply(matrix, points):
    homogeneous = np.c_[points, np.ones(len(points))] @ matrix.T
    return homogeneous[:, :2] / homogeneous[:, 2:]


def test_homography_fit_recovers_a_known_homography(rng):
    for _ in range(5):
        truth = np.eye(3) + rng.normal(0, [[0.2, 0.2, 20], [0.2, 0.2, 20], [1e-4, 1e-4, 0]])
        source = rng.uniform(0, 400, (6, 2))
        fitted = fit_homography(source, _apply(truth, source))
        # OpenCV refines in single precision: agree to ~1e-5 relative, 1e-3 px on the points
        np.testing.assert_allclose(fitted / fitted[2, 2], truth / truth[2, 2], rtol=1e-4, atol=1e-6)
        probe = rng.uniform(0, 400, (50, 2))
        np.testing.assert_allclose(_apply(fitted, probe), _apply(truth, probe), atol=1e-3)


def test_homography_fit_is_least_squares_over_six_noisy_points(rng):
    truth = np.array([[0.3, 0.05, 10.0], [-0.02, 0.28, 5.0], [1e-4, 0, 1.0]])
    source = rng.uniform(0, 400, (6, 2))
    target = _apply(truth, source) + rng.normal(0, 0.3, (6, 2))
    fitted = fit_homography(source, target)
    residual = np.abs(_apply(fitted, source) - target).max()
    assert residual < 1.5  # the noise level, not an exact fit of 4 points


def test_homography_fit_agrees_with_opencv_least_squares(rng):
    import cv2

    truth = np.array([[0.3, 0.05, 10.0], [-0.02, 0.28, 5.0], [1e-4, 0, 1.0]])
    for _ in range(5):
        source = rng.uniform(0, 600, (6, 2))
        target = _apply(truth, source) + rng.normal(0, 0.5, (6, 2))
        ours = fit_homography(source, target)
        reference, _ = cv2.findHomography(source, target, 0)
        probe = rng.uniform(0, 600, (50, 2))
        # DLT vs DLT + Levenberg-Marquardt: the same fit to a small fraction of a pixel
        assert np.abs(_apply(ours, probe) - _apply(reference, probe)).max() < 0.25


def test_degenerate_anchors_raise_a_clear_error():
    with pytest.raises(ValueError, match="degenerate"):
        fit_homography(np.zeros((6, 2)), np.zeros((6, 2)))


def test_line_contour_crossings_match_a_hand_computed_case():
    contour = np.array([[0.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    points, t = line_contour_crossings(contour, np.array([-5.0, 4.0]), np.array([1.0, 0.0]))
    np.testing.assert_allclose(points, [[0.0, 4.0]])
    np.testing.assert_allclose(t, [5.0])


def test_anchor_points_sit_where_masktheface_puts_them(data_dir):
    for path in (str(grace_hopper_path()), str(data_dir / "lfw/images/AJ_Cook/AJ_Cook_0001.jpg")):
        _, lm = face(path)
        a, b, c, d, e, f = anchor_points(lm)
        # a/c on the contour left/right of the nose at nose-tip height, d/f at lip height
        assert a[0] < lm[31, 0] and c[0] > lm[35, 0]
        assert abs(a[1] - lm[30, 1]) < 0.15 * (lm[8, 1] - lm[27, 1])
        assert d[1] > a[1] and f[1] > c[1]
        assert abs(d[1] - lm[48:68, 1].max()) < 0.15 * (lm[8, 1] - lm[27, 1])
        np.testing.assert_allclose(b, (lm[27] + lm[30]) / 2)
        assert e[1] > lm[57, 1] and abs(e[1] - lm[8, 1]) < 0.1 * (lm[8, 1] - lm[27, 1])
        jaw_x = lm[0:17, 0]
        assert jaw_x.min() - 2 <= a[0] and c[0] <= jaw_x.max() + 2


def masktheface_angle(lm: np.ndarray) -> float:
    """MaskTheFace's yaw rule (get_six_points/get_angle), re-derived: the angle of the nose
    bridge 27->30 minus the angle of the line nose root 27 -> bottom-lip centre, both as line
    angles in [0, 180) in image coordinates; > 13 picks ``_left``, < -13 picks ``_right``."""

    def line_angle(p, q):
        dx, dy = q[0] - p[0], q[1] - p[1]
        if dx < 0:
            dx, dy = -dx, -dy
        angle = math.degrees(math.atan2(dy, dx if dx else 1e-9))
        return angle + 180 if angle < 0 else angle

    bottom_lip = lm[[54, 55, 56, 57, 58, 59, 48, 64, 65, 66, 67, 60]].mean(axis=0)
    return line_angle(lm[27], lm[30]) - line_angle(lm[27], bottom_lip)


def test_yaw_picks_left_for_a_face_turned_left_and_right_for_its_mirror(data_dir):
    image, lm = face(str(data_dir / "lfw/images" / TURNED_LEFT))
    mirrored = np.ascontiguousarray(image[:, ::-1])
    lm_mirrored = detect68(mirrored)  # re-detected, so dlib's own point order holds
    assert yaw_variant(lm) == "left"
    assert yaw_variant(lm_mirrored) == "right"
    assert nose_offset(lm) < -0.45 < 0.45 < nose_offset(lm_mirrored)
    # Same sign convention as MaskTheFace: its rule names the same variants.
    assert masktheface_angle(lm) > 13 and masktheface_angle(lm_mirrored) < -13


def test_yaw_of_a_frontal_face_is_front():
    _, lm = face(str(grace_hopper_path()))
    assert yaw_variant(lm) == "front"
    assert abs(nose_offset(lm)) < 0.1


def test_template_masker_uses_the_pose_variant_of_the_masktheface_folder(data_dir):
    from mfr.masking import make_method

    image, lm = face(str(data_dir / "lfw/images" / TURNED_LEFT))
    masker = make_method("template", "surgical_blue", data_dir / "mask-templates")
    masker(image, lm, np.random.default_rng(0))
    assert masker.last_template == "surgical_blue_left"
    mirrored = np.ascontiguousarray(image[:, ::-1])
    masker(mirrored, detect68(mirrored), np.random.default_rng(0))
    assert masker.last_template == "surgical_blue_right"
