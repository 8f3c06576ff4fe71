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
    dataset: Path | None = None,
    bootstrap: int = 0,
) -> dict:
    """Evaluate an embeddings file; return the report dict (see ``mfr.eval.report``).

    With ``dataset`` (the folder or manifest the embeddings were made from, before or after
    ``mfr align``) the figures are end to end: every masked probe of the dataset that has no
    embedding is a miss (``mfr.eval.endtoend``), in retrieval and in generated verification
    pairs (a pair with a missing face is judged "different"); the embedded-only figures are
    kept under ``embedded_only``. With ``bootstrap`` > 0, ``rank1_ci``, ``rank5_ci``,
    ``rank10_ci`` and ``mAP_ci`` hold 95 % intervals from that many identity resamples
    (``mfr.eval.bootstrap``; end to end, the missed probes are resampled too)."""
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

    missing = _missing(emb, dataset) if dataset is not None else None
    embedded_retrieval = retrieval
    if missing is not None:
        retrieval = _end_to_end_retrieval(retrieval, missing, num_gallery)

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
    embedded_verification = verification
    if missing is not None:
        extra["end_to_end"] = True
        extra["dataset"] = str(dataset)
        extra["failed_probes"] = missing.failed
        extra["gallery_lost_probes"] = missing.gallery_lost
        extra["dataset_probes"] = missing.dataset_probes
        if missing.failed and pairs_path is None:
            verification = _end_to_end_verification(emb, missing, pairs_per_fold, seed)
        elif missing.failed:
            notes.append("verification is embedded-only: a --pairs file names embedded faces")
        extra["embedded_only"] = _headline(embedded_retrieval, embedded_verification)
        if missing.failed or missing.gallery_lost:
            notes.append(
                f"end to end: {missing.failed} masked probes of {dataset} were not embedded "
                f"and {missing.gallery_lost} lost their whole gallery; each is a miss"
            )
    else:
        extra["end_to_end"] = False
        extra["failed_probes"] = None

    if bootstrap > 0 and retrieval is not None and retrieval.first_rank is not None:
        from mfr.eval.bootstrap import bootstrap_intervals

        intervals = bootstrap_intervals(
            retrieval.first_rank, retrieval.average_precision, retrieval.probe_ids, bootstrap, seed
        )
        extra.update({f"{name}_ci": bounds for name, bounds in intervals.items()})
        extra["bootstrap"] = {"resamples": bootstrap, "seed": seed, "unit": "identity"}
    elif bootstrap > 0:
        notes.append("no bootstrap intervals: retrieval was not computed")
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


def _missing(emb, dataset: Path):
    """The masked probes of ``dataset`` (any layout ``mfr align`` reads) without embedding."""
    from mfr.align.batch import list_sources
    from mfr.eval.endtoend import find_missing

    rows = []
    for item in list_sources(dataset):
        parts = item.output.split("/")
        rows.append((parts[0], int("masked" in parts[1:-1]), item.output))
    return find_missing(emb, rows, str(dataset))


def _end_to_end_retrieval(retrieval, missing, num_gallery: int):
    from dataclasses import replace

    import numpy as np

    from mfr.eval.retrieval import RetrievalResult, with_missed_probes

    missed = missing.failed + missing.gallery_lost
    if retrieval is None:
        if not missed:
            return None
        retrieval = RetrievalResult(
            np.zeros(max(num_gallery, 1)), np.zeros(0), 0, num_gallery, 0, np.zeros(0, np.int64),
            np.zeros(0, str)
        )  # fmt: skip
    else:
        retrieval = replace(
            retrieval, skipped_probes=retrieval.skipped_probes - missing.gallery_lost
        )
    missed_ids = [*missing.failed_identities, *missing.gallery_lost_identities]
    return with_missed_probes(retrieval, missed, missed_ids)


def _end_to_end_verification(emb, missing, pairs_per_fold: int, seed: int):
    """10-fold verification over the embedded faces plus the missing probes: pairs are drawn
    from all of them, and a pair with a missing face has similarity -1 (never "same")."""
    import numpy as np

    from mfr.eval.embeddings import MASKED, l2_normalise
    from mfr.eval.pairs import generate_pairs
    from mfr.eval.verification import pair_similarities, verification_metrics

    count = len(emb)
    identities = np.r_[emb.identities, np.array(missing.failed_identities, dtype=str)]
    domains = np.r_[emb.domains, np.full(missing.failed, MASKED, dtype=np.uint8)]
    pairs = generate_pairs(identities, domains, pairs_per_fold, seed=seed).pairs
    if len(pairs) < 10:
        return None
    both = (pairs.a < count) & (pairs.b < count)
    sims = np.full(len(pairs), -1.0, dtype=np.float32)
    sims[both] = pair_similarities(l2_normalise(emb.embeddings), pairs.a[both], pairs.b[both])
    return verification_metrics(sims, pairs.same)


def _headline(retrieval, verification) -> dict:
    """The embedded-only figures (percent) with their probe and pair counts."""

    def percent(value):
        return None if value is None else 100.0 * float(value)

    return {
        "rank1": percent(retrieval.rank(1)) if retrieval else None,
        "rank5": percent(retrieval.rank(5)) if retrieval else None,
        "rank10": percent(retrieval.rank(10)) if retrieval else None,
        "mAP": percent(retrieval.mean_average_precision) if retrieval else None,
        "accuracy": percent(verification.accuracy) if verification else None,
        "accuracy_std": percent(verification.accuracy_std) if verification else None,
        "num_probes": retrieval.num_probes if retrieval else 0,
        "num_pairs": verification.num_pairs if verification else 0,
    }


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
            dataset=dataset,
            bootstrap=bootstrap,
        )
        Console().print(render_table(report, title=f"mfr eval: {embeddings.name}"))
        if report.get("pairs_source") == "generated" and report.get("pairs_file"):
            err.print(f"pairs written to {report['pairs_file']}")
        if json_out is not None:
            err.print(f"results written to {json_out}")
