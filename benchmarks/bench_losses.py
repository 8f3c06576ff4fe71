"""Loss forward+backward time against plain softmax cross-entropy, in the same run.

Default shape is the paper's batch: 32 identities x 6 images (3 full + 3 masked), 512-d
features, 10,000 classes. Repetitions of all losses are interleaved so machine noise hits
them alike; the median per loss and its ratio to ``softmax`` are printed.

    .venv/bin/python benchmarks/bench_losses.py [--threads 1] [--reps 30] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mfr.losses import LOSSES, DCRLoss, build_loss


def _batch(p, k, dim, classes, device):
    g = torch.Generator().manual_seed(0)
    ids = torch.randperm(classes, generator=g)[:p]
    labels = ids.repeat_interleave(k)
    domains = (torch.arange(p * k) % k >= k // 2).long()
    feats = torch.randn(p * k, dim, generator=g)
    return feats.to(device), labels.to(device), domains.to(device)


def _sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--p", type=int, default=32)
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    feats, labels, domains = _batch(args.p, args.k, args.dim, args.classes, args.device)

    losses = {name: build_loss(name, args.classes, args.dim) for name in LOSSES}
    losses["dcr term alone"] = DCRLoss(args.classes, args.dim)
    for loss in losses.values():
        loss.to(args.device)
    times: dict[str, list[float]] = {name: [] for name in losses}
    for rep in range(args.reps + 3):  # 3 warm-up rounds
        for name, loss in losses.items():
            x = feats.clone().requires_grad_()
            _sync(args.device)
            start = time.perf_counter()
            loss(x, labels, domains).backward()
            _sync(args.device)
            if rep >= 3:
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["softmax"])
    print(
        f"batch {args.p}x{args.k}, {args.dim}-d, {args.classes} classes, "
        f"{args.threads} thread(s), {args.device}, median of {args.reps}"
    )
    print(f"{'loss':<16}{'fwd+bwd ms':>12}{'vs softmax':>12}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<16}{median * 1e3:>12.2f}{median / base:>12.3f}")


if __name__ == "__main__":
    main()
