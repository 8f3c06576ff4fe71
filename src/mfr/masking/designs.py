"""Built-in mask designs that mfr draws itself (no image files needed).

Each design is rendered once per process as an RGBA template on a 400 x 320 canvas with its
own six anchors (the layout MaskTheFace templates use: a/c upper corners at nose-tip height,
b top centre on the nose bridge, d/f lower corners at lip height, e bottom centre under the
chin), then kept at half size (200 x 160) for warping onto faces. Kinds and styles:

- ``surgical``: pleated (three folds), bound top and bottom edges, 5 colours;
- ``n95``: moulded cup with a rim, radial shading, with or without an exhalation valve;
- ``kn95``: folded two-panel shape with a centre seam and welded edges, 3 colours;
- ``cloth``: contoured shape with a centre seam and a procedural texture (stripes, dots,
  check, melange noise), 8 styles.

Pose variants ``left``/``right`` are the front drawing with its centre line moved to 30 % /
70 % of the width (the far half compressed and slightly darker), like MaskTheFace's
``_left``/``_right`` templates (nose towards the image-left / image-right edge).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from mfr.masking.mask_template import MaskTemplate

WIDTH, HEIGHT = 400, 320
WORK_SCALE = 0.5
ANCHORS = np.array(
    [[14, 78], [200, 18], [386, 78], [22, 222], [200, 298], [378, 222]], dtype=np.float64
)
VARIANT_CENTRE = {"front": 0.5, "left": 0.3, "right": 0.7}

_OUTLINES = {
    "surgical": [
        (200, 16), (300, 20), (394, 40), (398, 140), (394, 236), (300, 292), (200, 316),
        (100, 292), (6, 236), (2, 140), (6, 40), (100, 20),
    ],
    "n95": [
        (200, 6), (300, 22), (375, 75), (396, 150), (380, 225), (310, 288), (200, 316),
        (90, 288), (20, 225), (4, 150), (25, 75), (100, 22),
    ],
    "kn95": [
        (200, 4), (290, 34), (392, 62), (398, 150), (360, 235), (290, 290), (200, 316),
        (110, 290), (40, 235), (2, 150), (8, 62), (110, 34),
    ],
    "cloth": [
        (200, 8), (280, 36), (385, 68), (396, 150), (370, 240), (290, 295), (200, 316),
        (110, 295), (30, 240), (4, 150), (15, 68), (120, 36),
    ],
}  # fmt: skip

_SURGICAL_COLOURS = [
    (138, 186, 222),
    (236, 236, 232),
    (150, 204, 184),
    (48, 48, 54),
    (232, 176, 196),
]
_N95_STYLES = [((238, 236, 228), False), ((238, 236, 228), True), ((214, 210, 200), False),
               ((214, 210, 200), True)]  # fmt: skip
_KN95_COLOURS = [(240, 240, 238), (40, 40, 44), (170, 186, 204)]
_CLOTH_STYLES = [
    ("stripes", (30, 50, 110), (230, 230, 235)),
    ("stripes", (150, 30, 40), (240, 220, 200)),
    ("dots", (20, 30, 60), (235, 235, 235)),
    ("dots", (200, 80, 120), (250, 240, 245)),
    ("check", (60, 90, 60), (200, 190, 150)),
    ("check", (150, 40, 40), (40, 40, 50)),
    ("noise", (90, 90, 96), (140, 140, 150)),
    ("noise", (40, 60, 110), (90, 110, 160)),
]

KINDS = ("surgical", "n95", "kn95", "cloth")
STYLES = {
    "surgical": len(_SURGICAL_COLOURS),
    "n95": len(_N95_STYLES),
    "kn95": len(_KN95_COLOURS),
    "cloth": len(_CLOTH_STYLES),
}


def _closed_spline(points, samples_per_segment: int = 24) -> np.ndarray:
    """A periodic Catmull-Rom curve through ``points`` (K x 2) as a dense polygon."""
    p = np.asarray(points, dtype=np.float64)
    t = np.linspace(0, 1, samples_per_segment, endpoint=False)[:, None]
    t2, t3 = t * t, t * t * t
    out = []
    for i in range(len(p)):
        p0, p1, p2, p3 = p[i - 1], p[i], p[(i + 1) % len(p)], p[(i + 2) % len(p)]
        out.append(
            0.5
            * (
                2 * p1
                + (p2 - p0) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
                + (3 * p1 - p0 - 3 * p2 + p3) * t3
            )
        )
    return np.concatenate(out)


def _alpha(kind: str) -> np.ndarray:
    import cv2

    alpha = np.zeros((HEIGHT, WIDTH), np.uint8)
    polygon = np.round(_closed_spline(_OUTLINES[kind]) * 16).astype(np.int32)
    cv2.fillPoly(alpha, [polygon], 255, lineType=cv2.LINE_AA, shift=4)
    return alpha


def _grid():
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    return x, y


def _edge_distance(alpha: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.distanceTransform((alpha > 127).astype(np.uint8), cv2.DIST_L2, 5)


def _fabric_noise(seed: int, amount: float = 0.04) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 1.0 + amount * rng.standard_normal((HEIGHT, WIDTH)).astype(np.float32)


def _cylinder(x: np.ndarray, strength: float = 0.22) -> np.ndarray:
    return 1.0 - strength * ((x - WIDTH / 2) / (WIDTH / 2)) ** 2


def _surgical(style: int) -> np.ndarray:
    x, y = _grid()
    alpha = _alpha("surgical")
    colour = np.array(_SURGICAL_COLOURS[style], np.float32)
    shade = _cylinder(x) * _fabric_noise(1, 0.03)
    sag = 14 * ((x - WIDTH / 2) / (WIDTH / 2)) ** 2
    for fold in (112.0, 168.0, 224.0):
        centre = fold - sag
        shade = shade - 0.22 * np.exp(-(((y - centre) / 3.0) ** 2))
        shade = shade + 0.08 * np.exp(-(((y - centre - 9) / 7.0) ** 2))
    # Bound edges: a band along the top and bottom of every column, with a stitch line.
    inside = alpha > 127
    top = np.argmax(inside, axis=0).astype(np.float32)
    bottom = (HEIGHT - 1 - np.argmax(inside[::-1], axis=0)).astype(np.float32)
    band = ((y - top) < 14) | ((bottom - y) < 14)
    stitch = (np.abs(y - top - 10) < 1.2) | (np.abs(bottom - y - 10) < 1.2)
    shade = np.where(band, shade * 1.04, shade)
    shade = np.where(stitch & ((x.astype(np.int32) // 4) % 2 == 0), shade * 0.82, shade)
    return _compose(colour[None, None] * shade[..., None], alpha)


def _n95(style: int) -> np.ndarray:
    x, y = _grid()
    alpha = _alpha("n95")
    colour, valve = _N95_STYLES[style]
    r2 = ((x - 200) / 200) ** 2 + ((y - 170) / 160) ** 2
    shade = (1.05 - 0.3 * r2) * _fabric_noise(2, 0.05)
    distance = _edge_distance(alpha)
    shade = np.where(distance < 10, shade * 0.86, shade)
    shade = np.where(np.abs(distance - 10) < 1.0, shade * 0.8, shade)
    rgb = np.array(colour, np.float32)[None, None] * shade[..., None]
    if valve:
        rv = np.hypot(x - 290, y - 205)
        ring = (np.abs(rv - 22) < 2) | (np.abs(rv - 12) < 2)
        valve_shade = (1.0 - 0.25 * (rv / 36)) * np.where(ring, 0.7, 1.0)
        valve_rgb = np.array([110, 112, 118], np.float32) * valve_shade[..., None]
        rgb = np.where((rv < 36)[..., None], valve_rgb, rgb)
    return _compose(rgb, alpha)


def _kn95(style: int) -> np.ndarray:
    x, y = _grid()
    alpha = _alpha("kn95")
    colour = np.array(_KN95_COLOURS[style], np.float32)
    side = np.where(x < WIDTH / 2, 0.9 + 0.1 * x / (WIDTH / 2), 1.0 - 0.12 * (x - 200) / 200)
    shade = side * _fabric_noise(3, 0.025)
    shade = np.where(np.abs(x - 200) < 2.5, shade * 0.72, shade)  # centre seam
    fold = 96 + 0.0 * x
    shade = np.where(np.abs(y - fold) < 1.5, shade * 0.85, shade)
    shade = np.where(np.abs(y - fold - 3) < 1.5, shade * 1.06, shade)
    distance = _edge_distance(alpha)
    weld = (distance < 9) & (((x.astype(np.int32) + y.astype(np.int32)) // 3) % 2 == 0)
    shade = np.where(weld, shade * 0.88, shade)
    return _compose(colour[None, None] * shade[..., None], alpha)


def _texture(kind: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A 0..1 pattern of the cloth style ``kind``."""
    import cv2

    if kind == "stripes":
        return (np.sin((x + 0.6 * y) * (2 * np.pi / 28)) > 0.2).astype(np.float32)
    if kind == "dots":
        gx, gy = (x % 32) - 16, ((y + 16 * ((x // 32) % 2)) % 32) - 16
        return (np.hypot(gx, gy) < 6).astype(np.float32)
    if kind == "check":
        a = (np.sin(x * (2 * np.pi / 40)) > 0.3).astype(np.float32)
        b = (np.sin(y * (2 * np.pi / 40)) > 0.3).astype(np.float32)
        thin = (np.abs(np.sin(x * (2 * np.pi / 40) + 2.2)) < 0.08) | (
            np.abs(np.sin(y * (2 * np.pi / 40) + 2.2)) < 0.08
        )
        return np.clip(0.5 * a + 0.5 * b + 0.6 * thin, 0, 1)
    noise = np.random.default_rng(4).standard_normal((HEIGHT // 4, WIDTH // 4))
    noise = cv2.resize(noise.astype(np.float32), (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    fine = np.random.default_rng(5).standard_normal((HEIGHT, WIDTH)).astype(np.float32)
    return np.clip(0.5 + 0.35 * noise + 0.15 * fine, 0, 1)


def _cloth(style: int) -> np.ndarray:
    x, y = _grid()
    alpha = _alpha("cloth")
    pattern, dark, light = _CLOTH_STYLES[style]
    mix = _texture(pattern, x, y)[..., None]
    rgb = np.array(dark, np.float32) * mix + np.array(light, np.float32) * (1 - mix)
    shade = _cylinder(x, 0.28) * (1.0 - 0.15 * ((y - 170) / 160) ** 2)
    shade = np.where(np.abs(x - 200) < 2.0, shade * 0.75, shade)  # centre seam
    distance = _edge_distance(alpha)
    shade = np.where(distance < 6, shade * 0.85, shade)
    return _compose(rgb * shade[..., None], alpha)


def _compose(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return np.dstack([np.clip(rgb, 0, 255).astype(np.uint8), alpha])


_RENDER = {"surgical": _surgical, "n95": _n95, "kn95": _kn95, "cloth": _cloth}


def turn(rgba: np.ndarray, anchors: np.ndarray, centre: float) -> tuple[np.ndarray, np.ndarray]:
    """Move the vertical centre line of a front template to ``centre`` (fraction of width),
    compressing one half and stretching the other; the compressed half is darkened a little
    (it faces away). Returns (template, anchors)."""
    import cv2

    height, width = rgba.shape[:2]
    if abs(centre - 0.5) < 1e-6:
        return rgba, anchors
    mid, new_mid = width / 2, centre * width
    x = np.arange(width, dtype=np.float32)
    source = np.where(
        x < new_mid, x * mid / new_mid, mid + (x - new_mid) * (width - mid) / (width - new_mid)
    ).astype(np.float32)
    map_x = np.broadcast_to(source, (height, width)).copy()
    map_y = np.broadcast_to(np.arange(height, dtype=np.float32)[:, None], (height, width)).copy()
    out = cv2.remap(rgba, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    far = (x < new_mid) if centre < 0.5 else (x >= new_mid)
    out[:, far, :3] = (out[:, far, :3] * 0.88).astype(np.uint8)
    ax = anchors[:, 0]
    new_x = np.where(
        ax < mid, ax * new_mid / mid, new_mid + (ax - mid) * (width - new_mid) / (width - mid)
    )
    return out, np.column_stack([new_x, anchors[:, 1]])


@cache
def builtin_template(kind: str, style: int = 0, variant: str = "front") -> MaskTemplate:
    """The built-in template ``kind`` (see ``KINDS``), style index and pose variant."""
    import cv2

    if kind not in _RENDER:
        raise KeyError(kind)
    rgba, anchors = turn(_RENDER[kind](style % STYLES[kind]), ANCHORS, VARIANT_CENTRE[variant])
    size = (round(WIDTH * WORK_SCALE), round(HEIGHT * WORK_SCALE))
    small = cv2.resize(rgba, size, interpolation=cv2.INTER_AREA)
    name = f"{kind}{style}" + ("" if variant == "front" else f"_{variant}")
    return MaskTemplate.from_rgba(name, small, anchors * WORK_SCALE)


class BuiltinSource:
    """Mask source of the built-in designs; ``get(kind, variant, rng)`` picks a style."""

    name = "built-in"
    kinds = KINDS

    def get(self, kind: str, variant: str, rng: np.random.Generator) -> MaskTemplate:
        return builtin_template(kind, int(rng.integers(STYLES[kind])), variant)
