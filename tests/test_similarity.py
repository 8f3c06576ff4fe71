"""The similarity fit, the ArcFace template and the 5 points from 68 landmarks."""

from __future__ import annotations

import numpy as np
import pytest

from mfr.align.similarity import (
    ARCFACE_TEMPLATE_112,
    apply_affine,
    arcface_template,
    five_points,
    similarity_scale,
    umeyama,
)


def _random_similarity(rng):
    angle = rng.uniform(-np.pi, np.pi)
    scale = rng.uniform(0.2, 5.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.hstack([scale * rotation, rng.uniform(-200, 200, (2, 1))])


def _lstsq_similarity(src, dst):
    """Naive reference: x' = a x - b y + tx, y' = b x + a y + ty solved by linear least squares."""
    rows = []
    for (x, y), (u, v) in zip(src, dst):
        rows.append(([x, -y, 1, 0], u))
        rows.append(([y, x, 0, 1], v))
    design = np.array([r[0] for r in rows])
    target = np.array([r[1] for r in rows])
    a, b, tx, ty = np.linalg.lstsq(design, target, rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def test_umeyama_recovers_an_exact_random_similarity(rng):
    for _ in range(20):
        truth = _random_similarity(rng)
        src = rng.uniform(0, 250, (5, 2))
        fitted = umeyama(src, apply_affine(truth, src))
        np.testing.assert_allclose(fitted, truth, atol=1e-8 * max(1, abs(truth).max()))


def test_umeyama_with_noise_matches_linear_least_squares_and_leaves_small_residual(rng):
    for _ in range(20):
        truth = _random_similarity(rng)
        src = rng.uniform(0, 250, (68, 2))
        dst = apply_affine(truth, src) + rng.normal(0, 0.5, (68, 2))
        fitted = umeyama(src, dst)
        np.testing.assert_allclose(fitted, _lstsq_similarity(src, dst), atol=1e-6)
        residual = np.linalg.norm(apply_affine(fitted, src) - dst, axis=1).mean()
        assert residual < 1.0  # noise is 0.5 px per axis: mean error ~0.63 px
        assert similarity_scale(fitted) == pytest.approx(similarity_scale(truth), rel=0.01)


def test_umeyama_never_returns_a_reflection(rng):
    src = rng.uniform(0, 100, (5, 2))
    mirrored = src * [-1, 1]
    assert np.linalg.det(umeyama(src, mirrored)[:, :2]) > 0


def test_umeyama_rejects_mismatched_points():
    with pytest.raises(ValueError):
        umeyama(np.zeros((5, 2)), np.zeros((4, 2)))


def test_template_scales_with_size():
    np.testing.assert_allclose(arcface_template(112), ARCFACE_TEMPLATE_112)
    np.testing.assert_allclose(arcface_template(224), 2 * ARCFACE_TEMPLATE_112, rtol=1e-6)
    np.testing.assert_allclose(arcface_template(56), ARCFACE_TEMPLATE_112 / 2, rtol=1e-6)


def test_five_points_are_eye_centres_nose_tip_and_mouth_corners(rng):
    landmarks = rng.uniform(0, 100, (68, 2)).astype(np.float32)
    expected = np.array(
        [
            landmarks[[36, 37, 38, 39, 40, 41]].mean(0),
            landmarks[[42, 43, 44, 45, 46, 47]].mean(0),
            landmarks[30],
            landmarks[48],
            landmarks[54],
        ]
    )
    np.testing.assert_allclose(five_points(landmarks), expected, rtol=1e-6)
    batch = np.stack([landmarks, landmarks + 1])
    np.testing.assert_allclose(five_points(batch)[1], expected + 1, rtol=1e-6)
