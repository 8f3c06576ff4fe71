"""Training throughput: `mfr train` against the bare backbone step, and DCR against softmax.

For each precision setting (fp32; bf16 autocast + channels_last) it measures, in one process
and interleaved so machine load hits all alike:

* bare: backbone forward + backward (a fixed random upstream gradient) + Adam step on a fixed
  random batch (no data, no loss head);
* train/softmax and train/dcr: the real trainer (`mfr.train.recognizer.train`) on image files
  (decode, resize, flip, P x K sampling, loss, logging), steady-state images/s from
  ``metrics.jsonl`` with the first ``--warmup`` steps left out.

Goal: train/softmax >= 90 % of bare; DCR step time <= 3 % over softmax. Both wall-clock and
process CPU time per step are reported: on a shared machine the CPU-time figures are the
stable ones (with the default ``--workers 0`` they include image decoding).
The images are the first identities of ``runs/data/lfw-112`` (aligned LFW) when present, with
crude masked twins (lower half grey) made here, else synthetic ones; they only feed the clock.

    .venv/bin/python benchmarks/bench_train.py --size 64 --p 12 --k 4 --steps 8
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def make_images(root: Path, identities: int, per_identity: int, source: Path | None) -> Path:
    rng = np.random.default_rng(0)
    folders = []
    if source is not None and source.is_dir():
        folders = [d for d in sorted(source.iterdir()) if len(list(d.glob("*.png"))) >= 4]
    for i in range(identities):
        dest = root / f"id{i:03d}"
        (dest / "masked").mkdir(parents=True)
        files = sorted(folders[i % len(folders)].glob("*.png")) if folders else []
        for n in range(per_identity):
            if files:
                image = np.asarray(Image.open(files[n % len(files)]).convert("RGB"))
            else:
                image = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
            Image.fromarray(image).save(dest / f"{n}.png")
            twin = image.copy()
            twin[image.shape[0] // 2 :] = 128
            Image.fromarray(twin).save(dest / "masked" / f"{n}.png")
    return root


def bare_step_times(backbone_name, size, batch, steps, warmup, bf16, channels_last):
    from mfr.nets.backbones import build_backbone

    torch.manual_seed(0)
    model = build_backbone(backbone_name, input_size=size)
    images = torch.rand(batch, 3, size, size) * 2 - 1
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    upstream = torch.randn(batch, model.embedding_dim) / batch
    times, cpu = [], []
    for i in range(warmup + steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            features = model(images)
        optimizer.zero_grad(set_to_none=True)
        # a unit-scale upstream gradient, as a loss gives (features.mean() would send tiny
        # gradients that turn denormal in the backward pass and slow the CPU down)
        features.float().backward(upstream)
        optimizer.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    return times, cpu


def trainer_step_times(data, out, loss, args, bf16, channels_last):
    from mfr.train.config import TrainConfig, apply_overrides
    from mfr.train.recognizer import train

    overrides = {
        "data": str(data), "backbone": args.backbone, "input_size": args.size, "p": args.p,
        "k": args.k, "steps": args.warmup + args.steps, "loss": loss, "workers": args.workers,
        "log_every": 1, "checkpoint_every": 0, "device": "cpu", "bf16": bf16,
        "channels_last": channels_last, "lr_milestones": [1.0],
    }  # fmt: skip
    extra = list(getattr(args, "extra", []))  # e.g. distill.* from bench_distill.py
    config = apply_overrides(TrainConfig(), [f"{k}={v}" for k, v in overrides.items()] + extra)
    shutil.rmtree(out, ignore_errors=True)
    train(config, out, log=lambda _: None)
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    batch = args.p * args.k
    kept = records[args.warmup :]
    return [batch / r["images_per_s"] for r in kept], [r["cpu_s_per_step"] for r in kept]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--p", type=int, default=12)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8, help="measured steps per setting")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions")
    parser.add_argument(
        "--workers", type=int, default=0, help="loader workers (0: CPU time covers decoding)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--source", type=Path, default=Path("runs/data/lfw-112"))
    parser.add_argument("--settings", default="fp32,bf16cl", help="fp32 and/or bf16cl")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batch = args.p * args.k
    print(
        f"{args.backbone} {args.size}x{args.size}, batch {args.p}x{args.k}={batch}, "
        f"{args.steps} steps after {args.warmup} warm-up, {torch.get_num_threads()} threads"
    )
    with tempfile.TemporaryDirectory() as tmp:
        data = make_images(Path(tmp) / "data", max(2 * args.p, 16), args.k + 2, args.source)
        for setting in args.settings.split(","):
            bf16 = channels_last = setting == "bf16cl"
            bare, soft, dcr = ([], []), ([], []), ([], [])
            for _ in range(args.rounds):  # interleaved, so load changes hit all three alike
                for store, result in (
                    (bare, bare_step_times(args.backbone, args.size, batch, args.steps,
                                           args.warmup, bf16, channels_last)),
                    (soft, trainer_step_times(data, Path(tmp) / "s", "softmax", args, bf16,
                                              channels_last)),
                    (dcr, trainer_step_times(data, Path(tmp) / "d", "dcr", args, bf16,
                                             channels_last)),
                ):  # fmt: skip
                    store[0].extend(result[0])
                    store[1].extend(result[1])
            for clock, index in (("wall", 0), ("cpu", 1)):
                # min: contention only ever adds time; median shown for the spread
                t_bare, t_soft, t_dcr = (min(x[index]) for x in (bare, soft, dcr))
                m_bare, m_soft = (statistics.median(x[index]) for x in (bare, soft))
                print(
                    f"[{setting}, {clock}, min] bare {batch / t_bare:6.1f} img/s "
                    f"({t_bare:.3f} s/step) | train/softmax {batch / t_soft:6.1f} img/s = "
                    f"{100 * t_bare / t_soft:5.1f} % of bare "
                    f"(median {100 * m_bare / m_soft:5.1f} %)"
                    f" | train/dcr {batch / t_dcr:6.1f} img/s, step time "
                    f"{100 * (t_dcr / t_soft - 1):+5.1f} % vs softmax",
                    flush=True,
                )
            loss_overhead(args, batch)


def loss_overhead(args, batch: int, repeats: int = 200) -> None:
    """DCR's extra cost isolated: loss forward + backward on (batch, 512) features, interleaved
    with softmax, against the bare step time measured above."""
    from mfr.losses import build_loss

    torch.manual_seed(0)
    classes = 2 * args.p
    labels = torch.arange(args.p).repeat_interleave(args.k)
    domains = (torch.arange(batch) % args.k >= (args.k + 1) // 2).to(torch.uint8)
    losses = {name: build_loss(name, classes, 512) for name in ("softmax", "dcr")}
    times = {name: [] for name in losses}
    for _ in range(repeats):
        for name, loss in losses.items():
            features = torch.randn(batch, 512, requires_grad=True)
            start = time.process_time()
            loss(features, labels, domains).backward()
            times[name].append(time.process_time() - start)
    soft, dcr = (statistics.median(times[n]) for n in ("softmax", "dcr"))
    print(
        f"  loss only (CPU, median of {repeats}): softmax {1e3 * soft:.2f} ms, dcr "
        f"{1e3 * dcr:.2f} ms per step: DCR adds {1e3 * (dcr - soft):.2f} ms",
        flush=True,
    )


if __name__ == "__main__":
    main()
