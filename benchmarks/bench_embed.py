"""Embedding speed of a recognizer as mfr runs it (``mfr embed``, ``mfr eval``, experiment
cells: ``CheckpointEmbedder``, a folded channels-last copy from ``mfr.nets.inference``) against
the training model fed NCHW batches (mfr's path before) and channels-last batches, on the same
crops, and the largest difference between the embeddings of the first and the last.

    .venv/bin/python benchmarks/bench_embed.py [--count 1024] [--rounds 3] [--backbone dlib-resnet]

Crops: the first ``--count`` aligned 112 px LFW crops under ``runs/data/lfw-112`` when they
exist (``mfr experiment`` makes them), random images otherwise. Each round embeds all of them
once with each model (round-robin, 64 a batch, the process's default threads); the median
round is reported. ``dlib-resnet`` uses dlib's weights; ``resnet18`` random weights.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from mfr.embedders.network import embed_images
from mfr.nets.backbones import DLIB_RESNET, build_backbone
from mfr.nets.inference import inference_copy

BEFORE = "training model, NCHW input (mfr before the inference copy)"
TRAINING = "training model, channels-last input"
INFERENCE = "inference copy (mfr's path)"


class _NCHW(torch.nn.Module):
    """The model fed contiguous NCHW batches, as ``embed_batches`` did before."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images.contiguous())


def crops(count: int) -> tuple[list[np.ndarray], str]:
    from mfr.data.images import read_image

    paths = sorted(Path("runs/data/lfw-112").glob("*/*.png"))[:count]
    if len(paths) == count:
        return [read_image(p) for p in paths], f"{count} aligned LFW crops (runs/data/lfw-112)"
    rng = np.random.default_rng(0)
    images = list(rng.integers(0, 256, (count, 112, 112, 3), dtype=np.uint8))
    return images, f"{count} random 112 px images (no runs/data/lfw-112)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backbone", default=DLIB_RESNET)
    args = parser.parse_args()

    if args.backbone == DLIB_RESNET:
        from mfr.embedders.checkpoint import dlib_resnet_model

        model, _ = dlib_resnet_model()
    else:
        model = build_backbone(args.backbone).eval()
    images, what = crops(args.count)
    models = {BEFORE: _NCHW(model), TRAINING: model, INFERENCE: inference_copy(model)}
    seconds = {name: [] for name in models}
    outputs = {}
    for _ in range(args.rounds):
        for name, net in models.items():
            start = time.perf_counter()
            outputs[name] = embed_images(net, images, 112, 64)
            seconds[name].append(time.perf_counter() - start)
    print(f"{args.backbone}, {what}, {torch.get_num_threads()} threads, load average "
          f"{os.getloadavg()[0]:.1f}; median of {args.rounds} rounds")  # fmt: skip
    print("| model | img/s | rounds (s) |\n|---|---|---|")
    rates = {}
    for name, runs in seconds.items():
        rates[name] = len(images) / float(np.median(runs))
        print(f"| {name} | {rates[name]:.1f} | {', '.join(f'{s:.1f}' for s in runs)} |")
    first, second = outputs[BEFORE], outputs[INFERENCE]
    cosine = (first * second).sum(1)
    print(f"speed-up {rates[INFERENCE] / rates[BEFORE]:.2f}x over the NCHW path, "
          f"{rates[INFERENCE] / rates[TRAINING]:.2f}x over channels-last input alone; "
          f"embeddings: max |difference| {np.abs(first - second).max():.2e}, "
          f"min cosine {cosine.min():.7f}")  # fmt: skip


if __name__ == "__main__":
    main()
