"""Fine-tuning without a teacher, before and after the finetune scale's recipe (issue 19).

Trains Table 1's Softmax cell (full faces, seed 0) of ``experiment-finetune.yaml`` once per
backbone learning rate (``--lr``; 1e-5 is the model build's, which collapsed here; 1e-6 is
the recipe's), next to dlib's untrained weights, and reports for each:

- held-out Rank-1 / mAP: the finetune scale's synthetic test (1,000 identities never trained
  on, KP-CVX masked probes against full faces), the figure the recipe was chosen on;
- LFW 10-fold verification accuracy (``benchmarks/bench_lfw_protocol.py --aligned``, the
  6,000 pairs of ``lfw/meta/pairs.csv`` on ``runs/data/lfw-112``). Most pairs' identities are
  in the cells' training set, so this only shows whether fine-tuning broke the network.

    .venv/bin/python benchmarks/finetune_recipe.py                # ~10 min on a quiet machine
    .venv/bin/python benchmarks/finetune_recipe.py --lr 1e-5 1e-6 1e-7

Cells go to ``OUT/lr-<lr>/`` (``mfr experiment``'s cell layout; a finished cell is reused),
LFW embeddings to ``OUT/lfw/``, the summary to ``OUT/summary.json`` and stdout (Markdown).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from mfr.experiments.cells import Cell, baseline_cells
from mfr.experiments.config import load_experiment_config
from mfr.experiments.prepare import Prepared
from mfr.experiments.runner import run_cell


def lfw_accuracy(model: str, name: str, out: Path) -> dict:
    """LFW 10-fold accuracy of ``model`` (bench_lfw_protocol.py's JSON)."""
    script = Path(__file__).with_name("bench_lfw_protocol.py")
    command = [sys.executable, str(script), "--model", model, "--aligned", "--name", name,
               "--out-dir", str(out)]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / f"{name}.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, nargs="+", default=[1e-5, 1e-6])
    parser.add_argument("--loss", default="softmax")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/finetune-recipe"))
    args = parser.parse_args(argv)

    rows = []
    start = baseline_cells("recipe", ("dlib-resnet",))[0]
    cells = [(start, "dlib-resnet", None)]
    for lr in args.lr:
        label = f"{args.loss}, backbone lr {lr:g}"
        cells.append((Cell("recipe", label, args.loss, seed=args.seed), None, lr))
    for cell, model, lr in cells:
        config = load_experiment_config(None, "finetune")
        config.rmfrd = None  # the recipe is chosen on held-out LFW/CelebA; mfr2-dev for reference
        if lr is not None:
            config.train = {**config.train, "lr": lr}
        prepared = Prepared(config, log=lambda message: None)
        out = args.out / (f"lr-{lr:g}" if lr is not None else "untrained")
        result = run_cell(cell, config, prepared, out, log=lambda message: None)
        model = model or str(out / "train" / "final.pt")
        lfw = lfw_accuracy(model, out.name, args.out / "lfw")
        heldout = result["synthetic"]
        rows.append({"row": cell.row, "backbone_lr": lr, "heldout_rank1": heldout["rank1"],
                     "heldout_mAP": heldout["mAP"], "mfr2_rank1": result["mfr2"]["rank1"],
                     "lfw_accuracy": lfw["accuracy_percent"],
                     "lfw_accuracy_std": lfw["accuracy_std_percent"],
                     "lfw_pairs": lfw["pairs_used"]})  # fmt: skip
        print(json.dumps(rows[-1]), file=sys.stderr)
    (args.out / "summary.json").write_text(json.dumps(rows, indent=2))
    print("| model | held-out Rank-1 | held-out mAP | LFW 10-fold acc | mfr2-dev Rank-1 |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['row']} | {row['heldout_rank1']:.1f} | {row['heldout_mAP']:.1f} | "
              f"{row['lfw_accuracy']:.2f} ± {row['lfw_accuracy_std']:.2f} | "
              f"{row['mfr2_rank1']:.1f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
