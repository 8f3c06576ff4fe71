"""``mfr demo``: the whole pipeline on the shared data, ending in a report."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Where results and report go."),
    config: Path | None = typer.Option(
        None, "--config", help="Experiment YAML (default mfr/configs/demo.yaml)."
    ),
) -> None:
    """Align LFW and mfr2-dev, synthesize masked twins, train a recognizer with DCR,
    evaluate it beside the off-the-shelf dlib descriptor, and write a report.

    Re-running reuses every finished step (aligned data, masks, trained model).
    """
    from mfr.experiments.demo import run_demo

    report = run_demo(out, config, log=typer.echo)
    typer.echo(f"report: {report}")


def register(app: typer.Typer) -> None:
    app.command()(demo)
