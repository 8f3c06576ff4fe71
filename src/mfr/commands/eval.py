"""``mfr eval``: retrieval (CMC, mAP) and 10-fold pair verification of an embeddings file."""

from __future__ import annotations

from pathlib import Path

import typer


def default_pairs_path(embeddings: Path, json_out: Path | None) -> Path:
    """Where generated pairs go: ``<json stem>.pairs.csv`` beside the JSON, else beside EMB."""
    anchor = json_out if json_out is not None else embeddings
    return anchor.with_name(f"{anchor.stem}.pairs.csv")


def run_eval(
    embeddings_path: Path,
    pairs_path: Path | None = None,
    json_out: Path | None = None,
    plots_dir: Path | None = None,
    seed: int = 0,
    pairs_per_fold: int = 10_000,
    log=print,
) -> dict:
    """Evaluate an embeddings file; return the report dict (see ``mfr.eval.report``)."""
    import json

    import numpy as np

    from mfr.errors import MfrError
    from mfr.eval.embeddings import FULL, MASKED, l2_normalise, load_embeddings
    from mfr.eval.pairs import generate_pairs, pair_kinds, read_pairs, write_pairs
    from mfr.eval.report import build_report
    from mfr.eval.retrieval import evaluate_retrieval
    from mfr.eval.verification import pair_similarities, verification_metrics
    from mfr.io import atomic_write, check_writable

    emb = load_embeddings(embeddings_path)
    # every output checked before the first is written: none or all of them
    for target in (
        json_out,
        None if plots_dir is None else Path(plots_dir) / "cmc.png",
        None if pairs_path is not None else default_pairs_path(embeddings_path, json_out),
    ):
        if target is not None:
            check_writable(target)
    notes: list[str] = []
    num_probes = int(np.count_nonzero(emb.domains == MASKED))
    num_gallery = int(np.count_nonzero(emb.domains == FULL))

    retrieval = None
    if num_probes and num_gallery:
        retrieval = evaluate_retrieval(emb)
        if retrieval.skipped_probes:
            notes.append(
                f"{retrieval.skipped_probes} of {num_probes} masked probes skipped: their "
                "identity has no full-face gallery image"
            )
        if retrieval.num_probes == 0:
            notes.append("retrieval not computed: no probe identity has a gallery image")
            retrieval = None
    else:
        notes.append(
            f"retrieval not computed: {num_probes} masked probes and {num_gallery} full-face "
            "gallery images (both are needed)"
        )

    extra: dict = {"num_embeddings": len(emb), "num_masked": num_probes, "embedding_dim": emb.dim}
    extra["num_identities"] = int(len(np.unique(emb.identities)))
    if pairs_path is not None:
        pairs = read_pairs(pairs_path, num_embeddings=len(emb))
        extra.update(pairs_source=str(pairs_path), pairs_file=str(pairs_path))
    else:
        generated = generate_pairs(emb.identities, emb.domains, pairs_per_fold, seed=seed)
        pairs = generated.pairs
        out = default_pairs_path(embeddings_path, json_out)
        if len(pairs):
            write_pairs(out, pairs)
        extra.update(
            pairs_source="generated",
            pairs_file=str(out) if len(pairs) else None,
            seed=seed,
            pairs_per_fold_requested=pairs_per_fold,
            matched_pairs_per_fold=generated.matched_per_fold,
            pairs_shrunk=generated.shrunk,
            available_matched_pairs=generated.available_matched,
            available_unmatched_pairs=generated.available_unmatched,
        )
        if generated.shrunk:
            notes.append(generated.note())
    extra["pair_kinds"] = pair_kinds(pairs, emb.domains)

    verification = None
    if len(pairs) >= 10:
        sims = pair_similarities(l2_normalise(emb.embeddings), pairs.a, pairs.b)
        verification = verification_metrics(sims, pairs.same)
    else:
        notes.append(f"verification not computed: {len(pairs)} pairs (10 folds need at least 10)")
    if retrieval is None and verification is None:
        raise MfrError(f"{embeddings_path}: nothing to evaluate ({'; '.join(notes)})")

    extra["notes"] = notes
    report = build_report(retrieval, verification, num_probes, num_gallery, extra)
    for note in notes:
        log(f"note: {note}")
    if plots_dir is not None:
        from mfr.eval.plots import plot_cmc, plot_roc

        if retrieval is not None:
            plot_cmc(retrieval.cmc, Path(plots_dir) / "cmc.png")
        if verification is not None:
            plot_roc(verification.roc_far, verification.roc_tar, Path(plots_dir) / "roc.png")
    if json_out is not None:
        with atomic_write(json_out, "w") as handle:
            json.dump(report, handle, indent=2)
            handle.write("\n")
    return report


def register(app: typer.Typer) -> None:
    @app.command("eval")
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
    ) -> None:
        """Evaluate embeddings: masked-to-full retrieval (CMC Rank-1/5/10, mAP) and 10-fold
        masked-vs-full verification (accuracy, TAR@FAR, ROC AUC).

        Without --pairs, pairs are generated (10 folds of matched + unmatched masked-vs-full
        pairs from --seed) and written beside the JSON (or EMB) as <stem>.pairs.csv.
        """
        from rich.console import Console

        from mfr.eval.report import render_table

        err = Console(stderr=True)
        report = run_eval(
            embeddings,
            pairs,
            json_out,
            plots,
            seed,
            pairs_per_fold,
            log=lambda m: err.print(m, markup=False, highlight=False),
        )
        Console().print(render_table(report, title=f"mfr eval: {embeddings.name}"))
        if report.get("pairs_source") == "generated" and report.get("pairs_file"):
            err.print(f"pairs written to {report['pairs_file']}")
        if json_out is not None:
            err.print(f"results written to {json_out}")
