"""The threshold of the built-in ``dlib-resnet`` model (``mfr.embedders.registry.BUILTIN``).

Calibrated like a model ``mfr model build`` makes, on the same held-out identities: the
default build's split (LFW + CelebA under MFR_DATA, 100 identities with at least 3 images
held out by a stable hash, MFR2-overlap identities never used), their KP-SYN masked twins of
even-numbered images as probes against their odd-numbered full faces; the threshold with the
best accuracy on every matched masked-vs-full pair and as many unmatched ones. Needs the
aligned and masked data of a `mfr model build` run under ``--work`` (default runs/data).

    .venv/bin/python benchmarks/builtin_thresholds.py [--model dlib-resnet] [--heldout 100]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dlib-resnet")
    parser.add_argument("--heldout", type=int, default=100)
    parser.add_argument("--work", type=Path, default=Path("runs/data"))
    args = parser.parse_args(argv)

    from mfr.experiments.model_build import Builder, BuildOptions, heldout_figures

    builder = Builder(BuildOptions(heldout=args.heldout, work=args.work), log=print)
    aligned = [builder.aligned(Path(folder)) for folder in builder.options.data]
    for folder in aligned:
        builder.masked(folder, "template")
    heldout = builder.heldout(aligned)
    tag = "-".join(folder.name for folder in aligned) + f"-h{args.heldout}"
    figures = heldout_figures(args.model, builder.heldout_test(heldout, tag))
    print(json.dumps({"model": args.model, "heldout_identities": len(heldout), **figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
