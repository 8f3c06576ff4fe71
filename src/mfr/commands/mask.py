"""``mfr mask``: masked twins of an aligned dataset (DE, KP-CVX, KP-SYN)."""

from __future__ import annotations

from pathlib import Path

import typer

from mfr.masking.registry import method_help


def mask(
    src: Path = typer.Argument(..., help="Aligned dataset with landmarks.npz (mfr align)."),
    dst: Path = typer.Argument(..., help="Output dataset folder."),
    method: str = typer.Option("template", help=method_help() + "."),
    seed: int = typer.Option(0, help="Random seed (per image: seed + relative path)."),
    types: str = typer.Option(
        None,
        help="Template mix, e.g. surgical:0.5,n95:0.2,cloth:0.3 (built-in: surgical, n95, "
        "kn95, cloth; with --masks: the folder's template names). Default: all, uniform.",
    ),
    masks: Path = typer.Option(
        None, help="MaskTheFace template folder (masks.cfg + RGBA PNGs) instead of built-ins."
    ),
    workers: int = typer.Option(1, min=1, help="Worker processes."),
    preview: Path = typer.Option(
        None, help="Write a PNG grid of originals, masked twins and labels here."
    ),
    preview_count: int = typer.Option(8, min=1, help="Images in the preview grid."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Write DST/<identity>/<image> (full face), DST/<identity>/masked/<image> (masked twin),
    DST/_labels/<identity>/<stem>.png (255 = masked region), DST/manifest.csv and
    DST/landmarks.npz. Resumable; failed images are listed in DST/_failures.csv."""
    from mfr.io import on_interrupt, resume_note
    from mfr.masking.generate import mask_folder, preview_grid

    on_interrupt(lambda: resume_note(dst))
    report = mask_folder(src, dst, method, seed, types, masks, workers=workers, progress=not quiet)
    for _, reason in sorted(report.failures):
        typer.echo(f"skipped: {reason}", err=True)
    typer.echo(
        f"mask ({method}): {report.written} written, {report.resumed} already done, "
        f"{len(report.failures)} failed of {report.total} -> {dst}"
    )
    if preview is not None:
        chosen = sorted(report.finished)[:preview_count]
        typer.echo(f"preview: {preview_grid(dst, chosen, preview)}")


def register(app: typer.Typer) -> None:
    app.command()(mask)
