"""Face detectors on masked faces, in one run: found rates, landmark stability, speed.

    .venv/bin/python benchmarks/bench_detect.py [--synthetic 150] [--real 400] [--speed 120]

Backends: ``dlib`` (HOG + 68-point predictor + mfr's tight-crop fallback, the old default),
``mediapipe`` (mfr's BlazeFace + FaceMesh search, the default), and ``yuface`` (boxes and
five points from libfacedetection, only when the ``yuface`` package is installed).

- **found**: masked faces each backend finds on mfr2-dev (all masked), rmfrd-dev (all masked),
  the first ``--real`` masked-real photos, and ``--synthetic`` LFW faces with a painted mask.
  Found is not aligned correctly: the aligned counts come from ``mfr align`` (docs/).
- **stability**: on the synthetic set, how far each backend's eye centres move when the
  mask is painted on (same image otherwise), as a fraction of the unmasked inter-ocular
  distance: median and 90th percentile. A masked probe is framed like its full face only
  when this is small.
- **speed**: ms per image, single thread, on the first ``--speed`` rmfrd-dev masked images
  (decoded beforehand), interleaved over three rounds, best round.

The synthetic mask: the lower face (dlib jaw points 1-15 up to the nose bridge, point 29)
painted a flat colour, as in ``bench_align_fallback.py``; LFW identities overlapping MFR2
are left out.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from PIL import Image

from mfr.align.detect import FaceNotFound, detect_face
from mfr.paths import data_root

COLOURS = [(180, 210, 235), (240, 240, 240), (40, 40, 50), (120, 160, 200)]


def _load(paths):
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


def mfr_backend(name):
    def run(image):
        try:
            face = detect_face(image, pick="largest", detector=name)
        except FaceNotFound:
            return None
        points = face.landmarks68
        return points[36:42].mean(0), points[42:48].mean(0)

    return run


def yuface_backend():
    try:
        import yuface
    except ImportError:
        return None

    def run(image):
        scores, boxes, points = yuface.detect(np.ascontiguousarray(image[:, :, ::-1]), conf=0.5)
        if not len(scores):
            return None
        best = int(np.argmax(boxes[:, 2].astype(int) * boxes[:, 3].astype(int)))
        five = points[best].astype(np.float64).reshape(5, 2)
        return five[0], five[1]

    return run


def synthetic_pairs(count: int):
    """(unmasked, masked) LFW images with the mask painted from dlib's landmarks."""
    import cv2

    root = data_root() / "lfw"
    excluded = set((root / "exclude-mfr2-overlap.txt").read_text().split())
    paths = [p for p in sorted((root / "images").glob("*/*.jpg")) if p.parent.name not in excluded]
    paths = paths[:: max(1, len(paths) // (2 * count))]
    pairs = []
    for i, path in enumerate(paths):
        image = np.asarray(Image.open(path).convert("RGB"))
        try:
            face = detect_face(image, fallback=False, pick="central", detector="dlib")
        except FaceNotFound:
            continue
        points = face.landmarks68
        masked = image.copy()
        polygon = np.vstack([points[1:16], points[29:30]]).astype(np.int32)
        cv2.fillPoly(masked, [cv2.convexHull(polygon)], COLOURS[i % len(COLOURS)])
        pairs.append((image, masked))
        if len(pairs) == count:
            break
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=int, default=150)
    parser.add_argument("--real", type=int, default=400)
    parser.add_argument("--speed", type=int, default=120)
    args = parser.parse_args()
    import cv2

    cv2.setNumThreads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    root = data_root()
    sets = {
        "mfr2-dev masked": _load(
            p
            for p in sorted((root / "mfr2-dev").glob("*/*.png"))
            if _mfr2_masked(root / "mfr2-dev", p)
        ),
        "rmfrd-dev masked": _load(sorted((root / "rmfrd-dev").glob("*/masked/*"))),
        "masked-real": _load(sorted((root / "masked-real").glob("*"))[: args.real]),
    }
    pairs = synthetic_pairs(args.synthetic)
    sets["synthetic (LFW)"] = [masked for _, masked in pairs]
    backends = {"dlib": mfr_backend("dlib"), "mediapipe": mfr_backend("mediapipe")}
    if (yu := yuface_backend()) is not None:
        backends["yuface (reference)"] = yu
    for run in backends.values():  # build models and graphs before timing
        run(sets["rmfrd-dev masked"][0])

    print("found (masked faces)")
    print("| backend | " + " | ".join(f"{k} ({len(v)})" for k, v in sets.items()) + " |")
    print("|---" * (len(sets) + 1) + "|")
    for name, run in backends.items():
        found = [sum(run(image) is not None for image in images) for images in sets.values()]
        print(f"| {name} | " + " | ".join(str(n) for n in found) + " |")

    print("\neye-centre shift when the mask is painted on (x unmasked inter-ocular)")
    print("| backend | pairs found both ways | median | 90th pct |")
    print("|---|---|---|---|")
    for name, run in backends.items():
        shifts = []
        for image, masked in pairs:
            a, b = run(image), run(masked)
            if a is None or b is None:
                continue
            interocular = np.linalg.norm(a[1] - a[0])
            shift = max(np.linalg.norm(b[0] - a[0]), np.linalg.norm(b[1] - a[1]))
            shifts.append(shift / interocular)
        shifts = np.array(shifts)
        print(
            f"| {name} | {len(shifts)} of {len(pairs)} | {np.median(shifts):.3f} | "
            f"{np.percentile(shifts, 90):.3f} |"
        )

    images = sets["rmfrd-dev masked"][: args.speed]
    best = {name: np.inf for name in backends}
    for _ in range(3):
        for name, run in backends.items():
            start = time.perf_counter()
            for image in images:
                run(image)
            best[name] = min(best[name], (time.perf_counter() - start) / len(images))
    print(f"\nms per image (first {len(images)} rmfrd-dev masked, one thread, best of 3)")
    print("| backend | ms per image | x dlib's speed |")
    print("|---|---|---|")
    for name, seconds in best.items():
        print(f"| {name} | {1000 * seconds:.1f} | {best['dlib'] / seconds:.2f} |")


def _mfr2_masked(root, path) -> bool:
    labels = {}
    for line in (root / "mfr2_labels.txt").read_text().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[1].isdigit():
            labels[(parts[0], int(parts[1]))] = parts[2] != "no-mask"
    number = int(path.stem.rsplit("_", 1)[1])
    return labels.get((path.parent.name, number), False)


if __name__ == "__main__":
    main()
