"""``mfr export CKPT --onnx OUT.onnx``."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def export(
        checkpoint: Path = typer.Argument(..., help="An mfr recognizer checkpoint (.pt)."),
        onnx: Path = typer.Option(..., "--onnx", help="Output ONNX file."),
    ) -> None:
        """Export a recognizer's embedding model to ONNX (dynamic batch; input size,
        normalisation, embedding dim and threshold in its metadata)."""
        from mfr.export import export_checkpoint

        out = export_checkpoint(checkpoint, onnx)
        typer.echo(f"wrote {out}")
