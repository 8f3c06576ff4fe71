"""``mfr demo``: the whole pipeline on the shared data, ending in a report."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Where results and report go."),
    config: Path | None = typer.Option(
        None, "--config", help="Experiment YAML (default src/mfr/configs/demo.yaml)."
    ),
) -> None:
    """The main job: align part of LFW, mfr2-dev and rmfrd-dev, synthesize masked twins, build
    and install the masked-face model mfr-masked (dlib's network fine-tuned), and report it
    beside dlib, dlib's weights untrained and a short from-scratch DCR run (runs/demo/report.md).

    Re-running reuses every finished step (aligned data, masks, trained models).
    """
    from mfr.experiments.demo import run_demo

    report = run_demo(out, config, log=typer.echo)
    typer.echo(f"report: {report}")


def register(app: typer.Typer) -> None:
    app.command()(demo)
