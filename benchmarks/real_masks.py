"""A model on the real-mask evaluation sets, end to end: mfr2-dev and rmfrd-dev.

Embeds the aligned copies (``mfr align`` of ``$MFR_DATA/mfr2-dev`` and ``rmfrd-dev`` under
``--data-dir``) with ``mfr embed``, scores them with ``mfr eval``, and counts every masked
probe ``mfr align`` could not align as a miss: Rank-k and mAP are scaled by aligned / all
masked probes (a miss has no rank and AP 0).

    .venv/bin/python benchmarks/real_masks.py --model dlib --out runs/real/dlib
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def masked_photos(name: str) -> int:
    """Masked photos of the original dataset (MFR2: labelled masked; rmfrd: under masked/)."""
    from mfr.data.dataset import load_index
    from mfr.paths import data_root

    return int((load_index(data_root() / name).domains == 1).sum())


def wilson(hits: float, n: int, z: float = 1.96) -> list[float]:
    """95 % Wilson score interval of a proportion, in percent."""
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return [round(100 * (centre - half), 1), round(100 * (centre + half), 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model spec (default: the default model)")
    parser.add_argument("--data-dir", type=Path, default=Path("runs/data"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    from mfr.cli import main as mfr

    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in ("mfr2-dev", "rmfrd-dev"):
        aligned = args.data_dir / f"{name}-112"
        emb, report = args.out / f"{name}.npz", args.out / f"{name}.json"
        if not emb.is_file():
            model = ["--model", args.model] if args.model else []
            if mfr(["embed", str(aligned), *model, "--out", str(emb)]):
                return 2
        if mfr(["eval", str(emb), "--json", str(report)]):
            return 2
        figures = json.loads(report.read_text())
        probes = int(figures["num_probes"])
        failed = masked_photos(name) - probes
        scale = probes / (probes + failed)
        row = {"probes": probes + failed, "failed_probes": failed}
        for key in ("rank1", "rank5", "mAP"):
            row[key] = round(figures[key] * scale, 1)
        row["rank1_wilson95"] = wilson(figures["rank1"] / 100 * probes, probes + failed)
        row["accuracy_aligned_only"] = figures.get("accuracy")
        results[name] = row
    print(json.dumps(results, indent=2))
    (args.out / "summary.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
