"""Distillation's step-time overhead: `mfr train` with and without a `distill` block.

Both runs use the real trainer on the same image files (interleaved rounds, one process), the
teacher's targets coming from a pre-filled cache (as in any run after the first: the teacher
itself never runs during training). Also times the distillation term alone (forward +
backward, batch P x K, 512 -> 128 projection). Goal: overhead <= 5 % of the step.

    .venv/bin/python benchmarks/bench_distill.py --size 64 --p 8 --k 4 --steps 6
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_train import make_images, trainer_step_times  # noqa: E402


def fill_cache(data: Path, cache: Path, dim: int = 128) -> str:
    """A teacher cache with random targets for every image of ``data``; returns its spec."""
    from mfr.distill import TeacherCache
    from mfr.distill.teacher import _file_digest
    from mfr.io import atomic_write

    teacher = cache / "teacher.pt"
    teacher.parent.mkdir(parents=True, exist_ok=True)
    teacher.write_bytes(b"stand-in teacher weights")
    folder = TeacherCache(cache, str(teacher)).folder
    files = sorted(p for p in data.rglob("*.png") if p.parent.name != "masked")
    keys = [_file_digest(p) for p in files]
    rows = np.random.default_rng(0).standard_normal((len(keys), dim)).astype(np.float32)
    with atomic_write(folder / "part-bench.npz", "wb") as handle:
        np.savez(handle, keys=np.array(keys), embeddings=rows)
    return str(teacher)


def term_time_ms(batch: int, repeats: int = 200) -> float:
    from mfr.distill import DistillationLoss

    loss = DistillationLoss(512, 128)
    features = torch.randn(batch, 512, requires_grad=True)
    teacher = torch.randn(batch, 128)
    domains = torch.arange(batch) % 2
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loss(features, teacher, domains)[0].backward()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--embedding-dim", type=int, default=512, help="128 for dlib-resnet")
    parser.add_argument("--p", type=int, default=8)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    plain_cpu, distill_cpu = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = make_images(root / "data", args.p * 2, args.k, Path("runs/data/lfw-112"))
        teacher = fill_cache(data, root / "cache")
        args.extra = [f"embedding_dim={args.embedding_dim}"]
        distill_args = argparse.Namespace(**vars(args))
        distill_args.extra = [*args.extra, f"distill.teacher={teacher}",
                              f"distill.cache={root / 'cache'}"]  # fmt: skip
        for _ in range(args.rounds):
            plain_cpu += trainer_step_times(data, root / "plain", "softmax", args, True, True)[1]
            distill_cpu += trainer_step_times(
                data, root / "distill", "softmax", distill_args, True, True
            )[1]
    plain, distill = min(plain_cpu), min(distill_cpu)
    term = term_time_ms(args.p * args.k)
    print(f"backbone {args.backbone} {args.size}x{args.size}, batch {args.p * args.k}, bf16")
    print(f"step CPU time  softmax: {plain:.3f} s   softmax + distill: {distill:.3f} s   "
          f"overhead {100 * (distill / plain - 1):+.1f} %")  # fmt: skip
    print(f"distillation term alone: {term:.2f} ms = {100 * term / 1000 / plain:.2f} % of a step")


if __name__ == "__main__":
    main()
