"""``mfr version``."""

from __future__ import annotations

import typer


def version() -> None:
    """Print the mfr, torch and dlib versions."""
    import platform

    import torch

    import mfr

    try:
        import dlib

        dlib_version = dlib.__version__
    except ImportError:
        dlib_version = "not installed"
    typer.echo(
        f"mfr {mfr.__version__} | torch {torch.__version__} | dlib {dlib_version} | "
        f"python {platform.python_version()}"
    )


def register(app: typer.Typer) -> None:
    app.command()(version)
