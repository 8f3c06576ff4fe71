"""``mfr align``: detect, landmark and align every face of a dataset."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from mfr.errors import MfrError
from mfr.io import on_interrupt, resume_note


def align(
    src: Path = typer.Argument(
        None, help="Dataset: identity folders, a manifest CSV, or the MFR2/LFW layout."
    ),
    dst: Path = typer.Argument(None, help="Output folder (mirrors the identity folders)."),
    size: int = typer.Option(112, "--size", help="Side of the aligned images in pixels."),
    workers: int = typer.Option(0, "--workers", help="Worker processes (0 = one per CPU core)."),
    shard: str = typer.Option(
        None, "--shard", help="Do only share i of n (0-based, e.g. 0/4) of the images."
    ),
    fallback: bool = typer.Option(
        True,
        "--fallback/--no-fallback",
        help="dlib only: for tight face crops HOG misses, try the checked centred-box fallback.",
    ),
    pick: str = typer.Option(
        "largest",
        "--pick",
        help="Of several faces: largest, or central (nearest the image centre; for "
        "face-centred sets such as LFW and CelebA).",
    ),
    detector: str = typer.Option(
        "mediapipe",
        "--detector",
        help="mediapipe (default: BlazeFace + FaceMesh, finds the most masked faces) or "
        "dlib (HOG + 68-point predictor + tight-crop fallback).",
    ),
    merge: bool = typer.Option(
        False, "--merge", help="Only merge the progress parts of DST (give DST alone)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Align faces to the ArcFace 5-point template (SIZE x SIZE PNG) with 68 landmarks
    (MediaPipe FaceMesh mapped to dlib's 68 points, or dlib's own).

    Writes DST/<identity>/<stem>.png (masked faces under <identity>/masked/), the 68
    landmarks in aligned pixels (DST/landmarks.npz), DST/manifest.csv and
    DST/failures.csv. A re-run resumes. Shards write separate progress parts, merged at
    the end of every run or by `mfr align --merge DST`.
    """
    from mfr.align.batch import align_folder, parse_shard
    from mfr.align.detect import DETECTORS, PICKS

    if pick not in PICKS:
        raise MfrError(f"--pick {pick!r}: choose one of {', '.join(PICKS)}")
    if detector not in DETECTORS:
        raise MfrError(f"--detector {detector!r}: choose one of {', '.join(DETECTORS)}")

    if merge:
        _merge(src, dst)
        return
    if src is None or dst is None:
        raise MfrError("usage: mfr align SRC DST [--size 112] (or mfr align --merge DST)")
    on_interrupt(lambda: resume_note(dst))
    summary = align_folder(
        src,
        dst,
        size=size,
        workers=workers or os.cpu_count() or 1,
        shard=parse_shard(shard),
        fallback=fallback,
        pick=pick,
        progress=not quiet,
        detector=detector,
    )
    _print_summary(summary, dst)


def _merge(src: Path | None, dst: Path | None) -> None:
    """``mfr align --merge DST``: merge the progress parts of the one folder given."""
    from mfr.align.batch import merge_parts

    target = dst or src
    if target is None or (src is not None and dst is not None):
        raise MfrError("--merge takes exactly one folder: mfr align --merge DST")
    summary = merge_parts(target)
    typer.echo(
        f"merged: {summary.total_aligned} aligned, {summary.total_failed} failed"
        + (
            f", {summary.missing_images} records without image left out"
            if summary.missing_images
            else ""
        )
    )


def _print_summary(summary, dst: Path) -> None:
    for note in summary.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(summary.line())
    if summary.missing_images:
        typer.echo(
            f"note: {summary.missing_images} recorded images are missing in {dst}; "
            "re-run to redo them",
            err=True,
        )
    if summary.total_failed:
        typer.echo(f"failures listed in {dst / 'failures.csv'}")


def register(app: typer.Typer) -> None:
    app.command()(align)
