"""IAMGAN iteration time vs the plain CycleGAN iteration (variant no_ip), same size, same run.

    .venv/bin/python benchmarks/bench_gan.py [--config src/mfr/configs/gan-cpu.yaml] [--iters 10]

Both models are built from the same options (only ``variant`` differs) and stepped on the
same random batches, alternating, so machine noise hits both alike. The IAMGAN step adds S's
forward pass and C's two passes (L_cls^G through C into G, and C's own L_cls^C step).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mfr.nets.unet import MaskSegmenter
from mfr.train.iamgan import GanOptions, IAMGANModel
from mfr.train.options import load_options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="src/mfr/configs/gan-cpu.yaml")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seg-size", type=int, default=128, help="S's input size (seg-cpu: 128)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    opts = load_options(GanOptions, args.config)
    seg = MaskSegmenter(args.seg_size, 16, 4)  # seg-cpu.yaml's net; random weights time the same
    models = {}
    for variant in ("full", "no_ip"):
        torch.manual_seed(0)
        v_opts = load_options(GanOptions, args.config, [f"variant={variant}"])
        models[variant] = IAMGANModel(v_opts, num_classes=150, segmenter=seg)
    times: dict[str, list[float]] = {v: [] for v in models}
    n, s = opts.batch_size, opts.size
    for it in range(args.warmup + args.iters):
        f, m = torch.rand(n, 3, s, s) * 2 - 1, torch.rand(n, 3, s, s) * 2 - 1
        labels = torch.randint(0, 150, (n,))
        for variant, model in models.items():
            model.set_input(f, labels, m)
            began = time.perf_counter()
            model.optimize_parameters(opts.steps // 2)
            if it >= args.warmup:
                times[variant].append(time.perf_counter() - began)
    full, plain = statistics.median(times["full"]), statistics.median(times["no_ip"])
    print(
        f"{s}x{s} batch {n} ngf {opts.ngf} blocks {opts.n_blocks} threads {args.threads}, "
        f"median of {args.iters}:"
    )
    print(f"  CycleGAN (no_ip) step: {plain * 1000:.0f} ms")
    print(f"  IAMGAN   (full)  step: {full * 1000:.0f} ms")
    print(f"  ratio IAMGAN / CycleGAN: {full / plain:.2f}x (goal <= 1.3x)")


if __name__ == "__main__":
    main()
