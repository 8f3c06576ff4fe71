"""``mfr experiment``: the paper's Tables 1-4 as resumable grids of train + evaluate cells."""

from __future__ import annotations

from pathlib import Path

import typer


def experiment(
    table: str = typer.Argument(..., help="table1 | table2 | table3 | table4"),
    scale: str = typer.Option(
        "cpu", "--scale", help="quick | cpu | finetune | paper (src/mfr/configs/experiment-*.yaml)"
    ),
    config: Path | None = typer.Option(None, "--config", help="An experiment YAML instead."),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Results folder (default runs/experiments; runs/experiments-finetune for "
        "--scale finetune, whose cells must not share results with from-scratch ones).",
    ),
) -> None:
    """Run a table of the paper: every cell trains a recognizer, then evaluates it on
    mfr2-dev (real masks) and on held-out LFW identities with synthetic masks.

    Finished cells are never re-run; an interrupted cell resumes from its checkpoint.
    Writes OUT/<table>/<table>.csv, .md and -cmc.png.
    """
    from mfr.experiments.config import load_experiment_config
    from mfr.experiments.runner import run_table
    from mfr.experiments.tables import markdown_table

    if out is None:
        out = Path("runs/experiments" + ("-finetune" if scale == "finetune" else ""))
    settings = load_experiment_config(config, scale)
    results = run_table(table, settings, out, log=typer.echo)
    typer.echo(markdown_table(results))
    typer.echo(f"results: {out / table}")


def register(app: typer.Typer) -> None:
    app.command()(experiment)
