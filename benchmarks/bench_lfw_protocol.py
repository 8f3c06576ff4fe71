"""LFW full-face verification (the standard 10-fold protocol, ``lfw/meta/pairs.csv``) for any
model spec: 6,000 pairs, per-fold thresholds, accuracy mean +- std over the folds.

    nice -n 10 .venv/bin/python benchmarks/bench_lfw_protocol.py --model dlib --detect
    nice -n 10 .venv/bin/python benchmarks/bench_lfw_protocol.py --model runs/x/best.pt --aligned

Only the images the pairs use are embedded (about 7,700). Inputs: ``--detect`` reads the raw
LFW JPEGs (250 x 250) and lets the model find the face (dlib); ``--aligned`` reads the aligned
copies in ``--aligned-root`` (default ``runs/data/lfw-112``, made by ``mfr align``), matched by
identity and file stem; pairs whose image failed to align are left out and counted.
Embeddings are cached in ``OUT_DIR/<name>.npz`` (``mfr embed``'s code: a killed run resumes
from ``<name>.npz.partial.npz``) and reused only when ``OUT_DIR/<name>.model.txt`` names the
same model (dlib margin, or the model file's path, size and time) and options; the result goes
to ``OUT_DIR/<name>.json``. ``<name>`` defaults to ``dlib`` or ``<folder>-<stem>`` of the file.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from mfr.data.benchmarks import pairs_to_csv, read_lfw_pairs
from mfr.embedders import embed_dataset
from mfr.eval.embeddings import l2_normalise, load_embeddings
from mfr.eval.pairs import read_pairs
from mfr.eval.verification import pair_similarities, verification_metrics
from mfr.io import atomic_write
from mfr.paths import data_root


def aligned_copy(root: Path, image: Path) -> Path | None:
    """The aligned copy ``root/<Name>/<stem>.<png|jpg>`` of a raw LFW image, if it exists."""
    for suffix in (".png", ".jpg", ".jpeg"):
        candidate = root / image.parent.name / (image.stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def write_image_manifest(images: list[Path], out: Path) -> None:
    """A manifest CSV (absolute paths) of the images to embed, all full faces."""
    with atomic_write(out, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["path", "identity", "domain"])
        for image in images:
            writer.writerow([image.resolve().as_posix(), image.parent.name, 0])


def default_name(model: str, aligned: bool) -> str:
    """``dlib`` / ``dlib-aligned``, or ``<folder>-<stem>`` of a model file (x/best.pt: x-best)."""
    if model == "dlib":
        return "dlib-aligned" if aligned else "dlib"
    path = Path(model)
    return f"{path.parent.name}-{path.stem}" if path.parent.name else path.stem


def model_identity(model: str, aligned: bool, flip: bool) -> str:
    """What a cached embeddings file must have been made with to be reused."""
    if model == "dlib":
        from mfr.embedders.dlib import DlibEmbedder

        spec = f"dlib margin={DlibEmbedder.__init__.__defaults__[0]}"
    else:  # a built-in name (dlib-resnet) or a model file, by the one model fingerprint
        from mfr.embedders.fingerprint import model_fingerprint

        spec = f"{model} {model_fingerprint(model)}"
    return f"{spec} aligned={aligned} flip={flip}"


def finite(value: float, digits: int = 5) -> float | None:
    """``value`` rounded, or None (JSON null) where it is undefined."""
    return round(float(value), digits) if np.isfinite(value) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dlib", help="'dlib', a checkpoint .pt or an .onnx")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--aligned", dest="aligned", action="store_true", default=None)
    mode.add_argument("--detect", dest="aligned", action="store_false")
    parser.add_argument("--lfw", type=Path, default=None, help="LFW root (default $MFR_DATA/lfw)")
    parser.add_argument("--aligned-root", type=Path, default=Path("runs/data/lfw-112"))
    parser.add_argument("--out-dir", type=Path, default=Path("runs/lfw-protocol"))
    parser.add_argument("--name", default=None, help="cache name (default: the model's name)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--flip", action="store_true", help="average with the mirror image")
    parser.add_argument("--limit-pairs", type=int, default=None, help="first N pairs (smoke)")
    args = parser.parse_args(argv)

    aligned = args.aligned if args.aligned is not None else args.model != "dlib"
    lfw = args.lfw or data_root() / "lfw"
    name = args.name or default_name(args.model, aligned) + ("-flip" if args.flip else "")
    args.out_dir.mkdir(parents=True, exist_ok=True)

    pairs = read_lfw_pairs(lfw)
    if args.limit_pairs:
        pairs = pairs[: args.limit_pairs]
    raw_images = sorted({image for pair in pairs for image in (pair.a, pair.b)})
    if aligned:
        found = [aligned_copy(args.aligned_root, image) for image in raw_images]
        images = [image for image in found if image is not None]
        print(f"{len(raw_images) - len(images)} of {len(raw_images)} images have no aligned copy")
    else:
        images = raw_images
    manifest = args.out_dir / f"{name}-images.csv"
    write_image_manifest(images, manifest)

    cache = args.out_dir / f"{name}.npz"
    stamp = args.out_dir / f"{name}.model.txt"
    identity = model_identity(args.model, aligned, args.flip)
    wanted = {image.resolve().as_posix() for image in images}
    same_model = stamp.is_file() and stamp.read_text().strip() == identity
    cached = None
    if cache.is_file() and same_model:
        cached = load_embeddings(cache)
        have = {(args.out_dir.resolve() / p).resolve().as_posix() for p in cached.paths}
        if not wanted <= have:
            cached = None
    summary = {"resumed_from_cache": cached is not None}
    if cached is None:
        with atomic_write(stamp, "w") as handle:
            handle.write(identity + "\n")
        summary.update(
            embed_dataset(
                manifest,
                args.model,
                cache,
                batch_size=args.batch_size,
                flip=args.flip,
                aligned=aligned,
                log=lambda message: print(message, file=sys.stderr),
                resume=same_model,  # a partial file of another model or margin is not reused
            )
        )
    embeddings = load_embeddings(cache)

    pairs_csv = args.out_dir / f"{name}-pairs.csv"
    conversion = pairs_to_csv(pairs, embeddings, pairs_csv)
    rows = read_pairs(pairs_csv, num_embeddings=len(embeddings.embeddings))
    started = time.perf_counter()
    similarities = pair_similarities(l2_normalise(embeddings.embeddings), rows.a, rows.b)
    result = verification_metrics(similarities, rows.same, folds=10)
    report = {
        "model": args.model,
        "name": name,
        "input": "aligned " + str(args.aligned_root) if aligned else "raw LFW, detect",
        "flip": args.flip,
        "model_identity": identity,
        "pairs": conversion.summary(),
        "pairs_used": int(result.num_pairs),
        "accuracy_percent": round(100 * result.accuracy, 3),
        "accuracy_std_percent": round(100 * result.accuracy_std, 3),
        "fold_accuracies_percent": [round(100 * a, 2) for a in result.fold_accuracies],
        "tar_at_far_percent": {str(k): finite(100 * v) for k, v in result.tar_at_far.items()},
        "roc_auc": finite(result.roc_auc),
        "embed": summary,
        "metric_seconds": round(time.perf_counter() - started, 3),
    }
    with atomic_write(args.out_dir / f"{name}.json", "w") as handle:
        json.dump(report, handle, indent=2)
    print(json.dumps(report, indent=2))
    print(
        f"LFW 10-fold accuracy ({name}): {report['accuracy_percent']:.2f} % "
        f"+- {report['accuracy_std_percent']:.2f} ({conversion.summary()})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
