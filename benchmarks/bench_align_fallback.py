"""Measure the tight-crop fallback on synthetic masked tight crops with known landmarks.

    .venv/bin/python benchmarks/bench_align_fallback.py [--count 150]

For LFW faces HOG detects, the lower face (jaw points 1-15 up to the nose bridge, point 29) is
painted a flat mask colour and the image cropped tightly around the face (the HOG box grown
by 30 % per side). On these crops: how often standard HOG misses, how often the fallback then
accepts, and the error of the eye centres and nose tip against the landmarks of the unmasked
original, as a fraction of the inter-ocular distance. Non-faces (noise, LFW background
corners) measure false accepts.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
from PIL import Image

from mfr.align.detect import detect_face, fallback_face, hog_faces
from mfr.paths import data_root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=150)
    args = parser.parse_args()
    paths = sorted((data_root() / "lfw" / "images").glob("*/*.jpg"))
    paths = paths[:: max(1, len(paths) // args.count)][: args.count]
    rng = np.random.default_rng(0)
    colours = [(180, 210, 235), (240, 240, 240), (40, 40, 50), (120, 160, 200)]
    misses = accepted = 0
    errors, caught_by_hog = [], []
    for i, path in enumerate(paths):
        image = np.asarray(Image.open(path).convert("RGB")).copy()
        try:
            face = detect_face(image, fallback=False, pick="central")
        except Exception:
            continue
        points = face.landmarks68
        polygon = np.vstack([points[1:16], points[29:30]]).astype(np.int32)
        cv2.fillPoly(image, [cv2.convexHull(polygon)], colours[i % len(colours)])
        left, top, right, bottom = face.box
        grow = 0.3 * (right - left)
        x0, y0 = max(0, int(left - grow)), max(0, int(top - grow))
        crop = np.ascontiguousarray(image[y0 : int(bottom + grow), x0 : int(right + grow)])
        truth = points - [x0, y0]
        boxes, _ = hog_faces(crop)
        if len(boxes):
            caught_by_hog.append(i)
            continue
        misses += 1
        found = fallback_face(crop)
        if isinstance(found, str):
            continue
        accepted += 1
        got = found[1]
        iod = np.linalg.norm(truth[36:42].mean(0) - truth[42:48].mean(0))
        eyes = [
            got[36:42].mean(0) - truth[36:42].mean(0),
            got[42:48].mean(0) - truth[42:48].mean(0),
        ]
        nose = got[30] - truth[30]
        errors.append(np.linalg.norm(np.vstack(eyes + [nose]), axis=1).mean() / iod)
    errors = np.array(errors)
    print(f"synthetic masked tight crops: {misses + len(caught_by_hog)}")
    print(f"  standard HOG still finds a face: {len(caught_by_hog)}; misses: {misses}")
    print(f"  fallback accepts {accepted} of the {misses} misses")
    if len(errors):
        median, p90 = np.median(errors), np.percentile(errors, 90)
        print(
            f"  eye/nose error / inter-ocular: median {median:.3f}, p90 {p90:.3f}, "
            f"max {errors.max():.3f}, share < 0.1: {(errors < 0.1).mean():.2f}"
        )
    false = 0
    negatives = [rng.integers(0, 256, (160, 160, 3), dtype=np.uint8) for _ in range(30)]
    for path in paths[:60]:
        image = np.asarray(Image.open(path).convert("RGB"))
        negatives += [np.ascontiguousarray(image[:80, :80]), np.ascontiguousarray(image[170:])]
    for image in negatives:
        false += not isinstance(fallback_face(image), str)
    print(
        f"non-faces (30 noise, 60 LFW top-left corners, 60 LFW bottom strips): "
        f"{false} of {len(negatives)} accepted by the fallback"
    )


if __name__ == "__main__":
    main()
