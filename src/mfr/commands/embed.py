"""``mfr embed``: a dataset in, an embeddings file (contract ``.npz``) out
(``mfr.embedders.embed_dataset``)."""

from __future__ import annotations

from pathlib import Path

import typer


def embed_command(
    src: Path = typer.Argument(..., help="Dataset folder, manifest CSV, MFR2 or LFW root."),
    model: str = typer.Option(
        None,
        "--model",
        help="A model name (mfr-masked, dlib, dlib-resnet: dlib's weights on aligned "
        "crops; `mfr model list`), a checkpoint (.pt) or an ONNX export (.onnx). "
        "Default: the best installed model, else dlib-resnet.",
    ),
    out: Path = typer.Option(..., "--out", help="Embeddings .npz to write."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per embedder call."),
    flip: bool = typer.Option(
        False, "--flip", help="Average with the embedding of the mirrored image."
    ),
    exclude: Path | None = typer.Option(
        None, "--exclude", help="File of identities to leave out (one per line)."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N images."),
    aligned: bool | None = typer.Option(
        None,
        "--aligned/--detect",
        help="Inputs are aligned crops / detect the face first "
        "(default: the model's own choice; dlib detects).",
    ),
    resume: bool = typer.Option(
        True, "--resume/--restart", help="Continue an interrupted run of the same job."
    ),
) -> None:
    """Embed every image of a dataset and write the embeddings file (.npz)."""
    from mfr.embedders import embed_dataset

    summary = embed_dataset(
        src,
        model,
        out,
        batch_size=batch_size,
        flip=flip,
        exclude=exclude,
        limit=limit,
        aligned=aligned,
        resume=resume,
        log=lambda message: typer.echo(f"mfr: {message}", err=True),
    )
    text = (
        f"{out}: {summary['images']} embeddings ({summary['dim']}-d, {summary['model']}) "
        f"in {summary['seconds']:.1f} s; {summary['bad_files']} bad files skipped"
    )
    if "fallback" in summary:
        text += f"; {summary['fallback']} faces not detected (whole-image fallback)"
    if summary["resumed"]:
        text += f"; resumed: {summary['resumed_images']} images were done by an earlier run"
    typer.echo(text)


def register(app: typer.Typer) -> None:
    app.command("embed")(embed_command)
