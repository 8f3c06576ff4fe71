"""How much of the input face a masked-face GAN keeps: IAMGAN against plain CycleGAN.

    .venv/bin/python benchmarks/gan_identity.py runs/gan-cpu-iamgan/last.pt \
        runs/gan-cpu-cyclegan/last.pt [--twins runs/data/lfw-top300-max8-112-template]
        [--faces runs/data/lfw-top300-max8-112] [--n 300]

For the first N full faces of ``--faces`` (one per identity first, so different people), each
checkpoint's G_F→M makes a masked twin f_m, and S (the segmenter stored with the checkpoint)
marks its mask region. Per checkpoint it reports:

- ``mask %``: the share of f_m's pixels S marks as mask (does the GAN draw a mask?);
- ``L_rec``: eq. 6, mean |f ⊙ S(f_m) − f_m ⊙ S(f_m)| in [-1, 1] units (the out-of-mask face);
- ``cos``: mean cosine similarity between the recognizer's embeddings of f and of f_m;
- ``Rank-1``: how often f_m's nearest source face (among all N) is its own source f.

The recognizer (``--recognizer``, default the demo's model) was trained on full + KP-SYN
faces; it is a fixed yardstick here, the same for every GAN.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from mfr.data.images import read_image as read_rgb
from mfr.data.layout import list_identity_images
from mfr.embedders.network import CheckpointEmbedder
from mfr.train.gan_generate import generate_masked, load_generator


def pick_faces(root: Path, n: int) -> list[Path]:
    """Up to ``n`` images, round-robin over the identities so the first ones are all different."""
    per_identity = list(list_identity_images(root).values())
    picked: list[Path] = []
    for round_index in range(max(len(files) for files in per_identity)):
        picked += [files[round_index] for files in per_identity if round_index < len(files)]
    return picked[:n]


def generated_twins(checkpoint: Path, faces: list[np.ndarray], batch: int = 32):
    """G_F→M's masked twins of ``faces`` and S's labels on them (255 = mask)."""
    generator, segmenter, opts = load_generator(checkpoint)
    fakes, labels = [], []
    for start in range(0, len(faces), batch):
        out, lab = generate_masked(generator, segmenter, faces[start : start + batch], opts["size"])
        fakes += out
        labels += lab
    return fakes, labels


def stored_twins(root: Path, paths: list[Path]):
    """Masked twins already written in the ``mfr mask`` layout (e.g. KP-SYN), with labels."""
    fakes = [read_rgb(root / p.parent.name / "masked" / p.name) for p in paths]
    labels = [
        cv2.imread(str(root / "_labels" / p.parent.name / f"{p.stem}.png"), cv2.IMREAD_GRAYSCALE)
        for p in paths
    ]
    return fakes, labels


def measure(faces: list[np.ndarray], fakes, labels, embedder) -> dict:
    """mask %, L_rec, cos and Rank-1 of masked twins ``fakes`` of ``faces``."""
    full = np.stack(faces).astype(np.float32) / 127.5 - 1
    fake = np.stack(fakes).astype(np.float32) / 127.5 - 1
    keep = (np.stack(labels) == 0).astype(np.float32)[..., None]
    source, generated = embedder.embed(faces), embedder.embed(fakes)
    similarity = generated @ source.T
    return {
        "mask %": 100 * (1 - keep.mean()),
        "L_rec": float(np.abs(full * keep - fake * keep).mean()),
        "cos": float(np.mean(np.sum(source * generated, axis=1))),
        "Rank-1": 100 * float(np.mean(similarity.argmax(axis=1) == np.arange(len(faces)))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="*", type=Path)
    parser.add_argument(
        "--twins", nargs="*", type=Path, default=[], help="mfr mask outputs to compare (KP-SYN)"
    )
    parser.add_argument("--faces", type=Path, default=Path("runs/data/lfw-top300-max8-112"))
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--recognizer", default="runs/demo/dcr-kp-syn-mfr-cpu-s0/train/final.pt")
    args = parser.parse_args()

    paths = pick_faces(args.faces, args.n)
    faces = [read_rgb(path) for path in paths]
    embedder = CheckpointEmbedder(args.recognizer)
    print(f"{len(faces)} faces from {args.faces}; recognizer {args.recognizer}")
    print(f"{'twins':<50} {'mask %':>7} {'L_rec':>7} {'cos':>6} {'Rank-1':>7}")
    rows = [(str(c), generated_twins(c, faces)) for c in args.checkpoints]
    rows += [(f"{root} (stored)", stored_twins(root, paths)) for root in args.twins]
    for name, (fakes, labels) in rows:
        row = measure(faces, fakes, labels, embedder)
        print(
            f"{name:<50} {row['mask %']:7.1f} {row['L_rec']:7.3f} "
            f"{row['cos']:6.3f} {row['Rank-1']:7.1f}"
        )


if __name__ == "__main__":
    main()
