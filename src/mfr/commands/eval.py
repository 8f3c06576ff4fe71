"""``mfr eval``: retrieval (CMC, mAP) and 10-fold pair verification of an embeddings file
(``mfr.eval.evaluate``)."""

from __future__ import annotations

from pathlib import Path

import typer


def eval_command(
    embeddings: Path = typer.Argument(..., help="Embeddings .npz (from `mfr embed`)."),
    pairs: Path | None = typer.Option(
        None, "--pairs", help="Pairs CSV (a,b,same); default: generate the paper's protocol."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Write the results as JSON."),
    plots: Path | None = typer.Option(None, "--plots", help="Write cmc.png and roc.png here."),
    seed: int = typer.Option(0, "--seed", help="Seed for generated pairs."),
    pairs_per_fold: int = typer.Option(
        10_000,
        "--pairs-per-fold",
        help="Generated pairs per fold, half matched, half unmatched (paper: 10,000).",
    ),
    dataset: Path | None = typer.Option(
        None,
        "--dataset",
        help="The dataset the embeddings were made from (before or after `mfr align`): "
        "end-to-end figures, every masked probe of it without embedding is a miss.",
    ),
    bootstrap: int = typer.Option(
        0,
        "--bootstrap",
        min=0,
        help="Add 95 % intervals for Rank-1/5/10 and mAP from N resamples of the "
        "identities (a resampled identity brings all its probes); e.g. 1000.",
    ),
) -> None:
    """Evaluate embeddings: masked-to-full retrieval (CMC Rank-1/5/10, mAP) and 10-fold
    masked-vs-full verification (accuracy, TAR@FAR, ROC AUC).

    With --dataset DIR the figures are end to end: a masked probe of DIR that was not
    aligned or embedded is a miss (no rank, AP 0, "different" in verification);
    `failed_probes` counts them and `embedded_only` keeps the figures over embedded faces.

    Without --pairs, pairs are generated (10 folds of matched + unmatched masked-vs-full
    pairs from --seed) and written beside the JSON (or EMB) as <stem>.pairs.csv.
    """
    from rich.console import Console

    from mfr.embedders import dataset_faces
    from mfr.eval import evaluate
    from mfr.eval.report import render_table

    err = Console(stderr=True)
    report = evaluate(
        embeddings,
        pairs,
        json_out,
        plots,
        seed,
        pairs_per_fold,
        log=lambda m: err.print(m, markup=False, highlight=False),
        dataset=dataset,
        bootstrap=bootstrap,
        dataset_faces=None if dataset is None else dataset_faces(dataset),
    )
    Console().print(render_table(report, title=f"mfr eval: {embeddings.name}"))
    if report.get("pairs_source") == "generated" and report.get("pairs_file"):
        err.print(f"pairs written to {report['pairs_file']}")
    if json_out is not None:
        err.print(f"results written to {json_out}")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
