"""Landmark geometry shared by the mask generators (dlib 68-point indexing).

Six anchor points place a mask on a face, as in MaskTheFace:

- ``a``/``c``: the face contour (jaw points 0-16) where it meets the line through the nose
  bottom (landmark 30) parallel to the eye line (nose-tip height);
- ``b``: the middle of the nose bridge (between landmarks 27 and 30);
- ``d``/``f``: the contour where it meets the line parallel to the eye line through the
  lowest lip point (lip height);
- ``e``: under the chin, where the line from the nose root (27) through the centre of the
  lips meets the contour.
"""

from __future__ import annotations

import numpy as np

JAW = np.arange(0, 17)
LEFT_EYE = np.arange(36, 42)
RIGHT_EYE = np.arange(42, 48)
EYES = np.arange(36, 48)
MOUTH = np.arange(48, 68)
ANCHOR_NAMES = ("a", "b", "c", "d", "e", "f")


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def eye_direction(landmarks: np.ndarray) -> np.ndarray:
    """Unit vector from the image-left eye centre to the image-right eye centre."""
    left = landmarks[LEFT_EYE].mean(axis=0)
    right = landmarks[RIGHT_EYE].mean(axis=0)
    direction = right - left
    norm = float(np.hypot(*direction))
    return direction / norm if norm > 1e-6 else np.array([1.0, 0.0])


def line_contour_crossings(
    contour: np.ndarray, point: np.ndarray, direction: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Where the line ``point + t * direction`` crosses the polyline ``contour`` (K x 2).

    Returns (crossing points M x 2, their ``t`` along the line), in contour order."""
    side = _cross(direction, contour - point)  # signed distance from the line (unnormalised)
    s0, s1 = side[:-1], side[1:]
    hits = np.flatnonzero(_crossing_mask(contour, point, direction))
    if hits.size == 0:
        return np.zeros((0, 2)), np.zeros(0)
    denom = s0[hits] - s1[hits]
    frac = np.where(denom != 0, s0[hits] / np.where(denom != 0, denom, 1.0), 0.0)
    points = contour[hits] + frac[:, None] * (contour[hits + 1] - contour[hits])
    return points, (points - point) @ direction


def _contour_pair(landmarks: np.ndarray, point: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The image-left and image-right contour points on the line through ``point`` along ``u``
    (the outermost crossing of jaw points 0-8, resp. 8-16).

    Falls back to the outermost jaw point projected onto the line when the line misses the
    contour (e.g. a nose bottom above jaw point 0 on a tilted face)."""
    jaw = landmarks[:17]
    points, t = line_contour_crossings(jaw, point, u)
    out = np.empty((2, 2))
    if len(t):
        # crossings on segments 0-7 belong to the left half, 8-15 to the right half
        segment = np.flatnonzero(_crossing_mask(jaw, point, u))
        left, right = segment < 8, segment >= 8
    else:
        left = right = np.zeros(0, bool)
    along = (jaw - point) @ u
    if left.any():
        out[0] = points[left][np.argmin(t[left])]
    else:
        out[0] = point + along[:9].min() * u
    if right.any():
        out[1] = points[right][np.argmax(t[right])]
    else:
        out[1] = point + along[8:].max() * u
    return out


def _crossing_mask(contour: np.ndarray, point: np.ndarray, direction: np.ndarray) -> np.ndarray:
    side = _cross(direction, contour - point)
    s0, s1 = side[:-1], side[1:]
    return (s0 == 0) | (np.sign(s0) != np.sign(s1))


def anchor_points(landmarks: np.ndarray) -> np.ndarray:
    """The six mask anchors a, b, c, d, e, f (6 x 2, float64) of a face's 68 landmarks."""
    lm = np.asarray(landmarks, dtype=np.float64)
    u = eye_direction(lm)
    down = np.array([-u[1], u[0]])  # perpendicular to the eye line, pointing to the chin
    a, c = _contour_pair(lm, lm[30], u)
    b = (lm[27] + lm[30]) / 2
    lowest_lip = lm[MOUTH][np.argmax(lm[MOUTH] @ down)]
    d, f = _contour_pair(lm, lowest_lip, u)
    root, lips = lm[27], lm[MOUTH].mean(axis=0)
    axis = lips - root
    axis = axis / max(float(np.hypot(*axis)), 1e-6)
    points, t = line_contour_crossings(lm[JAW][3:14], root, axis)
    e = points[np.argmax(t)] if len(t) and t.max() > 0 else lm[8]
    return np.stack([a, b, c, d, e, f])


def nose_offset(landmarks: np.ndarray, anchors: np.ndarray | None = None) -> float:
    """Head yaw from landmark asymmetry, in [-1, 1]: where the nose bottom (30) sits between
    the two contour points at its height (anchors a and c; pass ``anchors`` when already
    computed). 0 is frontal; negative means the nose is nearer the image-left contour (face
    turned towards image-left), positive towards image-right."""
    lm = np.asarray(landmarks, dtype=np.float64)
    u = eye_direction(lm)
    a, c = (anchors[0], anchors[2]) if anchors is not None else _contour_pair(lm, lm[30], u)
    left = float((lm[30] - a) @ u)
    right = float((c - lm[30]) @ u)
    total = left + right
    if total <= 1e-6:
        return 0.0
    return float(np.clip((left - right) / total, -1.0, 1.0))


def yaw_variant(
    landmarks: np.ndarray, threshold: float = 0.45, anchors: np.ndarray | None = None
) -> str:
    """``"left"``, ``"right"`` or ``"front"``: the template variant for the head pose.

    Same convention as MaskTheFace (whose ``_left`` templates have the nose towards the
    image-left edge): a face turned towards image-left picks ``left``. The default threshold
    agreed with MaskTheFace's own rule (nose-bridge vs nose-root-to-lips angle, 13 degrees)
    on 96 % of 329 LFW faces, with no left/right swap."""
    offset = nose_offset(landmarks, anchors)
    if offset < -threshold:
        return "left"
    if offset > threshold:
        return "right"
    return "front"


def _normalise(points: np.ndarray) -> np.ndarray:
    """Hartley normalisation: centroid to the origin, mean distance sqrt(2)."""
    centre = points.mean(axis=0)
    spread = np.sqrt(((points - centre) ** 2).sum(axis=1)).mean()
    scale = np.sqrt(2.0) / spread if spread > 1e-12 else 1.0
    return np.array([[scale, 0, -scale * centre[0]], [0, scale, -scale * centre[1]], [0, 0, 1]])


def fit_homography(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares homography (3 x 3, float64, ``[2, 2] == 1``) mapping ``source`` points
    (N >= 4) onto ``target``: the normalised direct linear transform (Hartley & Zisserman,
    alg. 4.2), i.e. what ``cv2.findHomography(source, target, 0)`` starts from, without its
    iterative refinement (5x faster; the tests compare the two)."""
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    t_source, t_target = _normalise(source), _normalise(target)
    xs = source @ t_source[:2, :2].T + t_source[:2, 2]
    xt = target @ t_target[:2, :2].T + t_target[:2, 2]
    n = len(source)
    ones, zeros = np.ones((n, 1)), np.zeros((n, 3))
    homogeneous = np.hstack([xs, ones])
    rows = np.empty((2 * n, 9))
    rows[0::2] = np.hstack([homogeneous, zeros, -xt[:, :1] * homogeneous])
    rows[1::2] = np.hstack([zeros, homogeneous, -xt[:, 1:] * homogeneous])
    _, singular, vt = np.linalg.svd(rows)
    if singular[-2] < 1e-9 * max(singular[0], 1e-300):
        raise ValueError("degenerate anchor points: no homography fits them")
    matrix = np.linalg.inv(t_target) @ vt[-1].reshape(3, 3) @ t_source
    if abs(matrix[2, 2]) < 1e-12 or not np.all(np.isfinite(matrix)):
        raise ValueError("degenerate anchor points: no homography fits them")
    return matrix / matrix[2, 2]


def eye_cut_row(landmarks: np.ndarray) -> int:
    """First image row strictly below every eye landmark; masks never cover rows above it."""
    return int(np.floor(np.max(np.asarray(landmarks)[EYES, 1]))) + 1
