"""`mfr verify` decisions on LFW's pairs.csv folds, with a model's own threshold (no flags).

Runs the same path as `mfr verify A B` — ``FaceRecognizer.load(MODEL)`` (default: the default
model), ``recognizer.verify(a, b)`` on the raw LFW photos (detected and aligned) — over the
pairs of the chosen folds, and prints the accuracy, the model and its operating point. For
dlib it also applies dlib's own rule (Euclidean distance < 0.6 between raw descriptors, dlib's
own detection) and reports the descriptors' lengths: where ``DLIB_LENGTH`` in
``mfr.embedders.registry`` comes from.

    .venv/bin/python benchmarks/verify_lfw_pairs.py --fold 1            # the default model
    .venv/bin/python benchmarks/verify_lfw_pairs.py --fold 1 --model dlib --dlib-rule
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mfr.paths import data_root


def read_pairs(path: Path, folds: list[int]) -> list[tuple[Path, Path, bool]]:
    """LFW pairs.csv rows of ``folds`` (1-based; 300 same then 300 different per fold)."""
    images = path.parent.parent / "images"
    rows = list(csv.reader(path.open()))[1:]
    out = []
    for fold in folds:
        for row in rows[(fold - 1) * 600 : fold * 600]:
            row = [x for x in row if x != ""]
            if len(row) == 3:
                a, b, same = (row[0], int(row[1])), (row[0], int(row[2])), True
            else:
                a, b, same = (row[0], int(row[1])), (row[2], int(row[3])), False
            paths = [images / n / f"{n}_{i:04d}.jpg" for n, i in (a, b)]
            out.append((paths[0], paths[1], same))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model spec (default: the default model)")
    parser.add_argument("--fold", type=int, action="append", help="1-10 (repeat; default 1)")
    parser.add_argument("--dlib-rule", action="store_true", help="also dlib's own rule")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument(
        "--aligned-root",
        type=Path,
        default=None,
        help="read the crops `mfr align --pick central` made of LFW (e.g. runs/data/lfw-112) "
        "instead of detecting and aligning each photo (much faster; same model and decision)",
    )
    args = parser.parse_args(argv)

    from mfr.api import FaceRecognizer, decision
    from mfr.errors import MfrError

    pairs = read_pairs(data_root() / "lfw" / "meta" / "pairs.csv", args.fold or [1])
    recognizer = FaceRecognizer.load(args.model)
    print(f"model: {recognizer.model.spec} ({recognizer.note})")
    print(f"threshold {recognizer.threshold:.4f}: {recognizer.operating_point}")
    cache: dict[Path, np.ndarray | None] = {}

    def embedding(path: Path):
        if path not in cache:
            source, aligned = path, False
            if args.aligned_root is not None:
                source = args.aligned_root / path.parent.name / f"{path.stem}.png"
                aligned = True
            try:
                result = recognizer.embed_many(
                    [source], aligned=aligned, skip_errors=False, raw=True
                )
                cache[path] = result.embeddings[0]
            except MfrError:
                cache[path] = None  # no face found: the pair is decided "different"
        return cache[path]

    started = time.perf_counter()
    similarities, decisions, truth, failed = [], [], [], 0
    for a, b, same in tqdm(pairs, desc="pairs", unit="pair"):
        ea, eb = embedding(a), embedding(b)
        if ea is None or eb is None:
            failed += 1
            similarities.append(-np.inf)  # no face: decided "different"
            decisions.append(False)
        else:  # the decision `mfr verify A B` prints
            made = decision(ea, eb, recognizer.threshold, recognizer.distance_rule)
            similarities.append(made.similarity)
            decisions.append(made.same)
        truth.append(same)
    similarities, decisions, truth = np.array(similarities), np.array(decisions), np.array(truth)
    figures = {
        "model": recognizer.model.spec,
        "threshold": recognizer.threshold,
        "operating_point": recognizer.operating_point,
        "folds": args.fold or [1],
        "input": "aligned crops" if args.aligned_root else "photos, detected and aligned",
        "pairs": len(pairs),
        "accuracy": round(100 * float((decisions == truth).mean()), 2),
        "true_accept": round(100 * float(decisions[truth].mean()), 2),
        "false_accept": round(100 * float(decisions[~truth].mean()), 2),
        "pairs_without_face": failed,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if args.dlib_rule:
        from mfr.data.images import read_image
        from mfr.embedders.dlib import DlibEmbedder

        dlib = DlibEmbedder()
        raw = {}
        for path in tqdm(sorted(cache), desc="dlib's own pipeline", unit="img"):
            raw[path] = dlib.embed([read_image(path)])[0]
        rule = np.array([np.linalg.norm(raw[a] - raw[b]) < 0.6 for a, b, _ in pairs])
        lengths = np.linalg.norm(np.stack(list(raw.values())), axis=1)
        figures["dlib_rule_accuracy"] = round(100 * float((rule == truth).mean()), 2)
        figures["agreement_with_dlib_rule"] = round(100 * float((rule == decisions).mean()), 2)
        figures["dlib_descriptor_length"] = {
            "images": len(lengths), "mean": round(float(lengths.mean()), 4),
            "min": round(float(lengths.min()), 4), "max": round(float(lengths.max()), 4),
            "p5": round(float(np.percentile(lengths, 5)), 4),
            "p95": round(float(np.percentile(lengths, 95)), 4),
        }  # fmt: skip
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
        np.savez(args.json.with_suffix(".npz"), similarities=similarities, same=truth)
    return 0


if __name__ == "__main__":
    sys.exit(main())
