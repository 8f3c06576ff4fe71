"""KP-SYN (key-point based synthetic mask, paper §5.4), the way MaskTheFace does it.

A mask template (RGBA with six anchors) is fitted onto the six face anchors derived from the
68 landmarks by a least-squares homography, warped with ``cv2.warpPerspective`` and alpha
blended. The pose variant (``_left``/``_right``/front) follows the head yaw; the mask's
brightness is scaled by the face's brightness under it (mean V of HSV over the covered
pixels, divided by 170 and clipped to [0.45, 1.15]), so masks on dark or dim faces are not
glowing. The label is the warped alpha > 0; the image is blended there and nowhere else. No
label pixel lies at or above the lowest eye landmark (the warped alpha is cut there).
"""

from __future__ import annotations

import numpy as np

from mfr.errors import ConfigError
from mfr.masking.designs import BuiltinSource
from mfr.masking.geometry import anchor_points, eye_cut_row, fit_homography, yaw_variant
from mfr.masking.library import TemplateLibrary
from mfr.masking.mask_template import MaskTemplate

REFERENCE_BRIGHTNESS = 170.0
BRIGHTNESS_RANGE = (0.45, 1.15)


def _roi(matrix: np.ndarray, template_shape, image_shape) -> tuple[int, int, int, int]:
    """Bounding box (x0, y0, x1, y1) of the warped template, clipped to the image."""
    height, width = template_shape[:2]
    corners = np.array([[0, 0, 1], [width, 0, 1], [0, height, 1], [width, height, 1]], float)
    mapped = corners @ matrix.T
    if np.any(mapped[:, 2] <= 1e-9):  # part of the plane goes through infinity: warp it all
        return 0, 0, image_shape[1], image_shape[0]
    xy = mapped[:, :2] / mapped[:, 2:]
    x0, y0 = np.floor(xy.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(xy.max(axis=0)).astype(int) + 2
    return max(0, x0), max(0, y0), min(image_shape[1], x1), min(image_shape[0], y1)


def brightness_factor(pixels: np.ndarray) -> float:
    """Mask brightness scale for the face pixels (N x 3 uint8) it covers."""
    if len(pixels) == 0:
        return 1.0
    return _factor(float(pixels.max(axis=1).mean()))


def _factor(mean_value: float) -> float:
    return float(np.clip(mean_value / REFERENCE_BRIGHTNESS, *BRIGHTNESS_RANGE))


def apply_template(
    image: np.ndarray,
    landmarks: np.ndarray,
    template: MaskTemplate,
    anchors: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit, warp and blend ``template`` onto the face; returns (masked image, label).

    ``anchors`` are the face's six anchors when already computed."""
    import cv2

    height, width = image.shape[:2]
    if anchors is None:
        anchors = anchor_points(landmarks)
    matrix = fit_homography(template.anchors, anchors)
    x0, y0, x1, y1 = _roi(matrix, template.premultiplied.shape, image.shape)
    label = np.zeros((height, width), np.uint8)
    out = image.copy()
    y0 = max(y0, eye_cut_row(landmarks))  # the mask never reaches the eyes
    if x1 <= x0 or y1 <= y0:
        return out, label
    shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], dtype=np.float64)
    warped = cv2.warpPerspective(
        template.premultiplied,
        shift @ matrix,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    alpha = np.ascontiguousarray(warped[..., 3])
    rgb = np.ascontiguousarray(warped[..., :3])
    face = np.ascontiguousarray(image[y0:y1, x0:x1])
    channels = cv2.split(face)
    value = cv2.max(cv2.max(channels[0], channels[1]), channels[2])  # V of HSV
    opaque = cv2.compare(alpha, 127, cv2.CMP_GT)
    mean_value = cv2.mean(value, mask=opaque)[0] if cv2.countNonZero(opaque) else None
    factor = 1.0 if mean_value is None else _factor(mean_value)
    # Premultiplied blend in uint8 (OpenCV, saturating): face * (255 - alpha) / 255 + mask
    # colour * factor. Where alpha is 0 the colour is 0 too, so those pixels come out exactly
    # as they went in; elsewhere each term is rounded once.
    keep = cv2.merge([cv2.subtract(255, alpha)] * 3)
    blended = cv2.add(
        cv2.multiply(face, keep, scale=1.0 / 255.0), cv2.convertScaleAbs(rgb, alpha=factor)
    )
    out[y0:y1, x0:x1] = blended
    label[y0:y1, x0:x1] = cv2.compare(alpha, 0, cv2.CMP_GT)
    return out, label


def parse_types(spec: str | dict | None, available) -> tuple[list[str], np.ndarray]:
    """Parse a type mix ``"surgical:0.5,n95:0.2,cloth"`` (a name without a weight gets 1)
    into (names, probabilities). ``None`` or ``""`` means every available type, uniformly."""
    available = list(available)
    if not spec:
        return available, np.full(len(available), 1.0 / len(available))
    if isinstance(spec, str):
        items = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, _, weight = part.partition(":")
            try:
                items[name.strip()] = float(weight) if weight.strip() else 1.0
            except ValueError:
                raise ConfigError(f"--types: {part!r} has no numeric weight") from None
        spec = items
    lookup = {name.lower(): name for name in available}
    names, weights = [], []
    for name, weight in spec.items():
        if name.lower() not in lookup:
            raise ConfigError(
                f"--types: unknown mask type {name!r}; available: {', '.join(available)}"
            )
        if not weight >= 0:
            raise ConfigError(f"--types: weight of {name!r} must be >= 0, got {weight}")
        names.append(lookup[name.lower()])
        weights.append(weight)
    total = float(sum(weights))
    if not names or total <= 0:
        raise ConfigError("--types: the weights must add up to more than 0")
    return names, np.asarray(weights, dtype=np.float64) / total


class TemplateMasker:
    """KP-SYN as a method ``(image, landmarks, rng) -> (masked, label)``: draws a mask type
    from the mix, picks the pose variant by yaw and the style with ``rng``."""

    def __init__(self, source=None, types: str | dict | None = None, yaw_threshold: float = 0.45):
        self.source = BuiltinSource() if source is None else source
        self.types, self.probabilities = parse_types(types, self.source.kinds)
        self.yaw_threshold = yaw_threshold
        self.last_template: str | None = None

    def choose(
        self, landmarks: np.ndarray, rng: np.random.Generator, anchors: np.ndarray | None = None
    ) -> MaskTemplate:
        kind = self.types[int(rng.choice(len(self.types), p=self.probabilities))]
        variant = yaw_variant(landmarks, self.yaw_threshold, anchors)
        return self.source.get(kind, variant, rng)

    def __call__(self, image, landmarks, rng):
        anchors = anchor_points(landmarks)
        template = self.choose(landmarks, rng, anchors)
        self.last_template = template.name
        return apply_template(image, landmarks, template, anchors)


def template_method(types: str | dict | None = None, masks=None) -> TemplateMasker:
    """KP-SYN with the type mix ``types`` from the built-in designs, or from the MaskTheFace
    folder ``masks`` (:class:`mfr.masking.library.TemplateLibrary`) when given."""
    return TemplateMasker(None if masks is None else TemplateLibrary(masks), types)


_DEFAULT: dict[str, TemplateMasker] = {}


def template_mask(image, landmarks, rng):
    """KP-SYN with the built-in designs, every type equally likely (one masker per process)."""
    if "masker" not in _DEFAULT:
        _DEFAULT["masker"] = TemplateMasker()
    return _DEFAULT["masker"](image, landmarks, rng)
