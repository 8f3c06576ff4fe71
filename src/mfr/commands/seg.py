"""``mfr seg train|eval|predict``: the mask segmenter S (a UNet)."""

from __future__ import annotations

from pathlib import Path

import typer


def train(
    config: Path = typer.Option(None, "--config", help="YAML options (src/mfr/configs/seg-*)."),
    overrides: list[str] = typer.Option(None, "--set", help="Override an option: key=value."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/last.pt."),
) -> None:
    """Train S on mask-seg (label 2 = mask); writes OUT/best.pt, OUT/last.pt, history.json."""
    from mfr.train.options import load_options
    from mfr.train.segmenter import SegOptions, train_segmenter

    opts = load_options(SegOptions, config, overrides)
    result = train_segmenter(opts, resume=resume)
    typer.echo(f"best test IoU {result['best_iou']:.4f}; checkpoints in {result['out']}")


def evaluate(
    model: Path = typer.Option(..., "--model", help="Segmenter checkpoint (.pt)."),
    data: str = typer.Option("mask-seg", "--data", help="mask-seg folder (or data-relative)."),
    split: str = typer.Option("test", "--split", help="Split folder to evaluate."),
    json_out: Path = typer.Option(None, "--json", help="Also write the metrics as JSON."),
) -> None:
    """Mask IoU (over all pixels of the split), mean per-image IoU and pixel accuracy."""
    import json

    from mfr.io import atomic_write
    from mfr.train.segmenter import evaluate_split, load_segmenter, resolve_data

    metrics = evaluate_split(load_segmenter(model), resolve_data(data), split)
    typer.echo(
        f"{split}: {metrics['images']} images  mask IoU {metrics['iou']:.4f}  "
        f"mean image IoU {metrics['mean_image_iou']:.4f}  "
        f"pixel accuracy {metrics['pixel_accuracy']:.4f}"
    )
    if json_out:
        with atomic_write(json_out, "w") as handle:
            json.dump(metrics, handle, indent=1)


def predict(
    src: Path = typer.Argument(..., help="An image or a folder of images (searched recursively)."),
    dst: Path = typer.Argument(..., help="Output folder for the label PNGs."),
    model: Path = typer.Option(..., "--model", help="Segmenter checkpoint (.pt)."),
    batch_size: int = typer.Option(16, "--batch-size"),
) -> None:
    """Write DST/<relative path>.png per image: uint8, 255 on the mask, 0 elsewhere."""
    from mfr.train.seg_predict import predict_folder
    from mfr.train.segmenter import load_segmenter

    written, skipped = predict_folder(load_segmenter(model), src, dst, batch_size)
    typer.echo(f"wrote {written} label PNGs to {dst}; skipped {skipped} unreadable images")


def register(app: typer.Typer) -> None:
    sub = typer.Typer(
        help="Mask-region segmenter S (UNet): train, evaluate, predict.", no_args_is_help=True
    )
    app.add_typer(sub, name="seg")
    sub.command("train")(train)
    sub.command("eval")(evaluate)
    sub.command("predict")(predict)
