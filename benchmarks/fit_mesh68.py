"""Fit (and measure) the map from MediaPipe's 468-point FaceMesh to dlib's 68 landmarks.

    .venv/bin/python benchmarks/fit_mesh68.py [--train 600] [--test 300] [--write]

On unmasked LFW faces both find (dlib HOG + 68-point predictor; mfr's MediaPipe detector),
each dlib point k is written as a fixed weighted sum of its ``K`` nearest mesh vertices (in
the mean shape), the weights summing to one and fitted by least squares over the training
faces (every second image of an even LFW sample; the other half is the test set; identities
that overlap MFR2 are left out). Prints the test error of the mapped points against dlib's,
as a fraction of dlib's inter-ocular distance (eye centres): all 68, the jaw, the inner face,
and the five alignment points. ``--write`` rewrites ``src/mfr/align/mesh68.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from mfr.align.detect import FaceNotFound, detect_face
from mfr.align.mesh import find_face
from mfr.align.similarity import five_points, umeyama
from mfr.paths import data_root

K = 4
TARGET = Path(__file__).resolve().parents[1] / "src" / "mfr" / "align" / "mesh68.py"


def pairs(paths):
    """(dlib 68, mesh 468) for every image where both find one face."""
    out = []
    for path in paths:
        image = np.asarray(Image.open(path).convert("RGB"))
        try:
            dlib68 = detect_face(image, fallback=False, pick="central", detector="dlib")
        except FaceNotFound:
            continue
        found = find_face(image, pick="central")
        if isinstance(found, str):
            continue
        mesh = found[0].mesh
        centre = (dlib68.box[0] + dlib68.box[2]) / 2, (dlib68.box[1] + dlib68.box[3]) / 2
        if np.linalg.norm(mesh.mean(0) - centre) > 0.5 * (dlib68.box[2] - dlib68.box[0]):
            continue  # not the same face
        out.append((dlib68.landmarks68.astype(np.float64), mesh))
    return out


def interocular(points68: np.ndarray) -> float:
    return float(np.linalg.norm(points68[36:42].mean(0) - points68[42:48].mean(0)))


def fit(train):
    """Indices (68, K) and weights (68, K) of the map."""
    # normalise every face to the first mesh's frame so "nearest vertices" is meaningful
    reference = train[0][1]
    normalised = []
    for dlib68, mesh in train:
        matrix = umeyama(mesh, reference)
        normalised.append(
            (dlib68 @ matrix[:, :2].T + matrix[:, 2], mesh @ matrix[:, :2].T + matrix[:, 2])
        )
    mean_dlib = np.mean([d for d, _ in normalised], axis=0)
    mean_mesh = np.mean([m for _, m in normalised], axis=0)
    indices = np.zeros((68, K), dtype=np.int64)
    weights = np.zeros((68, K))
    for k in range(68):
        nearest = np.argsort(np.linalg.norm(mean_mesh - mean_dlib[k], axis=1))[:K]
        rows, targets = [], []
        for dlib68, mesh in normalised:
            rows += [mesh[nearest, 0], mesh[nearest, 1]]
            targets += [dlib68[k, 0], dlib68[k, 1]]
        a, b = np.array(rows), np.array(targets)
        # weights sum to one: w = e_0 + N v, solve for v in the null space of 1^T
        basis = np.linalg.svd(np.ones((1, K)))[2][1:].T
        base = np.full(K, 1.0 / K)
        v, *_ = np.linalg.lstsq(a @ basis, b - a @ base, rcond=None)
        indices[k], weights[k] = nearest, base + basis @ v
    return indices, weights


def errors(test, indices, weights):
    rows = []
    for dlib68, mesh in test:
        mapped = (mesh[indices] * weights[..., None]).sum(1)
        distance = np.linalg.norm(mapped - dlib68, axis=1) / interocular(dlib68)
        five = np.linalg.norm(five_points(mapped) - five_points(dlib68), axis=1)
        rows.append(np.r_[distance, five / interocular(dlib68)])
    return np.array(rows)


def write(indices, weights) -> None:
    lines = [
        '"""MediaPipe FaceMesh (468 points) to dlib\'s 68 landmarks: point k of the 68 is the',
        "sum of ``MESH68_WEIGHTS[k]`` times the mesh vertices ``MESH68_INDEX[k]``. Fitted by",
        "least squares on unmasked LFW faces by ``benchmarks/fit_mesh68.py`` (written by it).",
        '"""',
        "",
        "MESH68_INDEX = (",
    ]
    lines += [f"    ({', '.join(str(int(i)) for i in row)})," for row in indices]
    lines += [")", "", "MESH68_WEIGHTS = ("]
    lines += [f"    ({', '.join(f'{w:.4f}' for w in row)})," for row in weights]
    lines += [")", ""]
    TARGET.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    root = data_root() / "lfw"
    excluded = set((root / "exclude-mfr2-overlap.txt").read_text().split())
    paths = [p for p in sorted((root / "images").glob("*/*.jpg")) if p.parent.name not in excluded]
    sample = paths[:: max(1, len(paths) // (args.train + args.test))]
    train = pairs(sample[0::2][: args.train])
    test = pairs(sample[1::2][: args.test])
    print(f"faces: {len(train)} train, {len(test)} test (LFW, unmasked)")
    indices, weights = fit(train)
    result = errors(test, indices, weights)
    groups = {
        "all 68": result[:, :68],
        "jaw (0-16)": result[:, :17],
        "inner face (17-67)": result[:, 17:68],
        "5 alignment points": result[:, 68:],
    }
    print("error / dlib inter-ocular distance (test faces): mean, median, 90th percentile")
    for name, values in groups.items():
        print(
            f"  {name:20s} {values.mean():.3f}  {np.median(values):.3f}  "
            f"{np.percentile(values, 90):.3f}"
        )
    if args.write:
        write(indices, weights)
        print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
