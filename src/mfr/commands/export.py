"""``mfr export MODEL --onnx OUT.onnx``."""

from __future__ import annotations

from pathlib import Path

import typer


def export(
    model: str = typer.Argument(
        None,
        help="An mfr checkpoint (.pt) or an installed model's name (`mfr model list`); "
        "default: the best installed model.",
    ),
    onnx: Path = typer.Option(..., "--onnx", help="Output ONNX file."),
) -> None:
    """Export a recognizer's embedding model to ONNX (dynamic batch; input size,
    normalisation, embedding dim, threshold and its operating point in its metadata)."""
    from mfr.embedders.registry import resolve
    from mfr.errors import MfrError
    from mfr.export import export_checkpoint

    resolved = resolve(model)
    if not resolved.source.endswith((".pt", ".pth", ".ckpt")):
        raise MfrError(
            f"{resolved.spec}: only mfr checkpoints export to ONNX (build one with "
            "`mfr model build` or `mfr train`)"
        )
    out = export_checkpoint(resolved.source, onnx)
    typer.echo(f"model: {resolved.spec} ({resolved.note})", err=True)
    typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.command()(export)
