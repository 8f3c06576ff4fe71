"""Throughput of ``mfr align`` with each detector against the bare detectors, same files.

    .venv/bin/python benchmarks/bench_align.py [--set rmfrd|lfw] [--count 200] [--rounds 3]

In one process (``--workers 1``), the jobs interleaved round-robin (round r runs every job
once, in an order rotated by r, so load that comes and goes on a shared machine hits each
job alike); each job's rate is the median over its rounds:

- **bare dlib**: PIL decode, HOG (upsample 1), the 68-point predictor on the largest face
  (the floor any dlib aligner pays; no fallback);
- **bare mediapipe**: PIL decode and ``mfr.align.detect.detect_face(detector="mediapipe")``
  (BlazeFace search, FaceMesh, checks: everything up to the 68 landmarks);
- **mfr align --detector dlib** (the old default: HOG + tight-crop fallback) and
  **mfr align** (MediaPipe, the default): decode, detect, warp, check, PNG, progress records.

``--set rmfrd`` takes ``--count`` images spread evenly over rmfrd-dev (masked and full,
160 px tight crops, where dlib needs its slow fallback for most masked faces); ``--set lfw``
an even sample of LFW (250 px photos). Goals: mfr align (MediaPipe) >= 3x the old default
and >= 90 % of the bare MediaPipe rate. It prints the rates, each job's run times, the two
ratios and the load average; on a shared machine only the ratios mean anything.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mfr.align.batch import align_folder
from mfr.align.detect import FaceNotFound, detect_face
from mfr.align.dlib_models import hog_detector, landmark_predictor
from mfr.paths import data_root


def bare_dlib(paths: list[Path]) -> float:
    detector, predictor = hog_detector(), landmark_predictor(68)
    start = time.perf_counter()
    for path in paths:
        image = np.asarray(Image.open(path).convert("RGB"))
        rects = detector(image, 1)
        if len(rects):
            largest = max(rects, key=lambda r: r.width() * r.height())
            predictor(image, largest)
    return time.perf_counter() - start


def bare_mediapipe(paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        image = np.asarray(Image.open(path).convert("RGB"))
        with contextlib.suppress(FaceNotFound):
            detect_face(image, detector="mediapipe")
    return time.perf_counter() - start


def mfr_align(source: Path, detector: str) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        align_folder(source, Path(out) / "dst", workers=1, progress=False, detector=detector)
        return time.perf_counter() - start


def _sample(which: str, count: int) -> list[Path]:
    if which == "lfw":
        paths = sorted((data_root() / "lfw" / "images").glob("*/*.jpg"))
        return paths[:: max(1, len(paths) // count)][:count]
    root = data_root() / "rmfrd-dev"
    paths = sorted(p for p in root.glob("*/**/*") if p.suffix.lower() in {".jpg", ".png"})
    return paths[:: max(1, len(paths) // count)][:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("rmfrd", "lfw"), default="rmfrd")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import cv2

    cv2.setNumThreads(1)
    paths = _sample(args.set, args.count)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "src"
        copies = []
        for path in paths:  # the same files, as identity folders (masked/ kept)
            relative = path.relative_to(
                path.parents[2] if path.parent.name == "masked" else path.parents[1]
            )
            target = source / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
            copies.append(target)
        detect_face(np.asarray(Image.open(copies[0]).convert("RGB")), detector="mediapipe")
        hog_detector(), landmark_predictor(68)
        jobs = {
            "bare dlib (HOG + predictor)": lambda: bare_dlib(copies),
            "bare mediapipe (detect_face)": lambda: bare_mediapipe(copies),
            "mfr align --detector dlib": lambda: mfr_align(source, "dlib"),
            "mfr align (mediapipe)": lambda: mfr_align(source, "mediapipe"),
        }
        runs: dict[str, list[float]] = {name: [] for name in jobs}
        names = list(jobs)
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                runs[name].append(jobs[name]())
    n = len(copies)
    rates = {name: n / float(np.median(times)) for name, times in runs.items()}
    load_after = os.getloadavg()[0]
    print(
        f"images: {n} from {args.set}, one worker, {args.rounds} rounds round-robin, median; "
        f"load average {load_before:.1f} before, {load_after:.1f} after"
    )
    print("| job | img/s | runs (s) |")
    print("|---|---|---|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.1f} | {', '.join(f'{t:.1f}' for t in runs[name])} |")
    new, old = rates["mfr align (mediapipe)"], rates["mfr align --detector dlib"]
    bare = rates["bare mediapipe (detect_face)"]
    print(f"mfr align mediapipe / dlib: {new / old:.2f}x (goal >= 3x)")
    print(f"mfr align mediapipe / bare mediapipe: {100 * new / bare:.1f} % (goal >= 90 %)")


if __name__ == "__main__":
    main()
