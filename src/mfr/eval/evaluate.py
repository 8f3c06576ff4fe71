"""``mfr eval`` as a library function: retrieval (CMC, mAP) and 10-fold pair verification of an
embeddings file, optionally end to end against its dataset (design.md, "mfr eval")."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path


def default_pairs_path(embeddings: Path, json_out: Path | None) -> Path:
    """Where generated pairs go: ``<json stem>.pairs.csv`` beside the JSON, else beside EMB."""
    anchor = json_out if json_out is not None else embeddings
    return anchor.with_name(f"{anchor.stem}.pairs.csv")


def evaluate(
    embeddings_path: Path,
    pairs_path: Path | None = None,
    json_out: Path | None = None,
    plots_dir: Path | None = None,
    seed: int = 0,
    pairs_per_fold: int = 10_000,
    log: Callable[[str], None] = print,
    dataset: str | Path | None = None,
    bootstrap: int = 0,
    dataset_faces: Sequence[tuple[str, int, str]] | None = None,
    probes_out: Path | None = None,
) -> dict:
    """Evaluate an embeddings file (design.md contract) and return the report dict
    (``mfr.eval.report.build_report``: ``rank1, rank5, rank10, mAP, accuracy, accuracy_std``
    in percent 0-100, ``num_probes, num_gallery, num_pairs, skipped_probes`` and more).

    Pairs are read from ``pairs_path`` or generated (``pairs_per_fold`` per fold from
    ``seed``) and written to :func:`default_pairs_path`. ``json_out`` gets the report as JSON,
    ``plots_dir`` ``cmc.png`` and ``roc.png``; every output is checked writable before the
    first is written. Notes (skipped probes, shrunk pairs...) go to ``log``.

    With ``dataset_faces`` — the ``(identity, domain, aligned path)`` of every image of the
    dataset the embeddings were made from (``mfr.embedders.dataset_faces``), ``dataset`` its
    name — the figures are end to end: every masked probe of the dataset that has no
    embedding is a miss (``mfr.eval.endtoend``), in retrieval and in generated verification
    pairs (a pair with a missing face is judged "different"); the embedded-only figures are
    kept under ``embedded_only``. With ``bootstrap`` > 0, ``rank1_ci``, ``rank5_ci``,
    ``rank10_ci`` and ``mAP_ci`` hold 95 % intervals from that many identity resamples
    (``mfr.eval.bootstrap``; end to end, the missed probes are resampled too). ``probes_out``
    gets the per-probe ranks and APs behind the retrieval figures (``mfr.eval.probes``), for
    paired comparisons of models on the same probes.

    Raises ``MfrError`` for an unreadable embeddings or pairs file, an unwritable output,
    embeddings that are not of ``dataset``, or nothing to evaluate."""
    import numpy as np

    from mfr.errors import MfrError
    from mfr.eval.embeddings import FULL, MASKED, load_embeddings
    from mfr.eval.endtoend import find_missing
    from mfr.eval.report import build_report

    emb = load_embeddings(embeddings_path)
    _check_outputs(embeddings_path, pairs_path, json_out, plots_dir)
    notes: list[str] = []
    num_probes = int(np.count_nonzero(emb.domains == MASKED))
    num_gallery = int(np.count_nonzero(emb.domains == FULL))
    retrieval = _retrieval(emb, num_probes, num_gallery, notes)

    missing = None
    if dataset_faces is not None:
        dataset = "the dataset" if dataset is None else dataset
        missing = find_missing(emb, list(dataset_faces), str(dataset))
    embedded_retrieval = retrieval
    if missing is not None:
        retrieval = _end_to_end_retrieval(retrieval, missing, num_gallery)

    extra: dict = {"num_embeddings": len(emb), "num_masked": num_probes, "embedding_dim": emb.dim}
    extra["num_identities"] = int(len(np.unique(emb.identities)))
    pairs = _pairs(emb, embeddings_path, pairs_path, json_out, pairs_per_fold, seed, extra, notes)
    verification = _verification(emb, pairs, notes)
    if retrieval is None and verification is None:
        raise MfrError(f"{embeddings_path}: nothing to evaluate ({'; '.join(notes)})")
    if missing is not None:
        embedded = (embedded_retrieval, verification)
        verification = _end_to_end_extra(
            emb, missing, embedded, dataset, pairs_path, pairs_per_fold, seed, extra, notes
        )
    else:
        extra["end_to_end"] = False
        extra["failed_probes"] = None
    _bootstrap(retrieval, bootstrap, seed, extra, notes)
    extra["notes"] = notes
    report = build_report(retrieval, verification, num_probes, num_gallery, extra)
    for note in notes:
        log(f"note: {note}")
    _write_outputs(report, retrieval, verification, json_out, plots_dir)
    if probes_out is not None and retrieval is not None and retrieval.first_rank is not None:
        from mfr.eval.probes import save_probe_results

        save_probe_results(probes_out, retrieval, _probe_keys(emb, missing))
    return report


def _probe_keys(emb, missing) -> list[str]:
    """The key of every probe of the retrieval, in its order (``mfr.eval.probes``): the
    embedded masked probes with a gallery identity, then (end to end) the failed ones and
    those whose gallery was lost."""
    from mfr.eval.embeddings import FULL, MASKED

    gallery = set(emb.identities[emb.domains == FULL].tolist())
    masked = emb.domains == MASKED
    keys = [str(path) for identity, path in zip(emb.identities[masked].tolist(),
            emb.paths[masked].tolist()) if identity in gallery]  # fmt: skip
    if missing is not None:
        keys += [*missing.failed_keys, *missing.lost_paths]
    return keys


def _check_outputs(embeddings_path, pairs_path, json_out, plots_dir) -> None:
    """Every output checked writable before the first is written: none or all of them."""
    from mfr.io import check_writable

    for target in (
        json_out,
        None if plots_dir is None else Path(plots_dir) / "cmc.png",
        None if pairs_path is not None else default_pairs_path(embeddings_path, json_out),
    ):
        if target is not None:
            check_writable(target)


def _retrieval(emb, num_probes: int, num_gallery: int, notes: list[str]):
    """Masked probes against the full-face gallery, or None (with a note) when there is
    nothing to search."""
    from mfr.eval.retrieval import evaluate_retrieval

    if not (num_probes and num_gallery):
        notes.append(
            f"retrieval not computed: {num_probes} masked probes and {num_gallery} full-face "
            "gallery images (both are needed)"
        )
        return None
    retrieval = evaluate_retrieval(emb)
    if retrieval.skipped_probes:
        notes.append(
            f"{retrieval.skipped_probes} of {num_probes} masked probes skipped: their "
            "identity has no full-face gallery image"
        )
    if retrieval.num_probes == 0:
        notes.append("retrieval not computed: no probe identity has a gallery image")
        return None
    return retrieval


def _pairs(emb, embeddings_path, pairs_path, json_out, pairs_per_fold, seed, extra, notes):
    """The verification pairs: read from ``pairs_path``, or generated and written to
    :func:`default_pairs_path`; their source and kinds go into ``extra``."""
    from mfr.eval.pairs import generate_pairs, pair_kinds, read_pairs, write_pairs

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
    return pairs


def _verification(emb, pairs, notes: list[str]):
    """10-fold verification of ``pairs``, or None (with a note) for fewer than 10 pairs."""
    from mfr.eval.embeddings import l2_normalise
    from mfr.eval.verification import pair_similarities, verification_metrics

    if len(pairs) < 10:
        notes.append(f"verification not computed: {len(pairs)} pairs (10 folds need at least 10)")
        return None
    sims = pair_similarities(l2_normalise(emb.embeddings), pairs.a, pairs.b)
    return verification_metrics(sims, pairs.same)


def _end_to_end_extra(emb, missing, embedded, dataset, pairs_path, per_fold, seed, extra, notes):
    """Record the end-to-end counts in ``extra`` (and the embedded-only figures of
    ``embedded`` = (retrieval, verification)); returns the verification to report."""
    from mfr.eval.report import headline

    verification = embedded[1]
    extra["end_to_end"] = True
    extra["dataset"] = str(dataset)
    extra["failed_probes"] = missing.failed
    extra["gallery_lost_probes"] = missing.gallery_lost
    extra["dataset_probes"] = missing.dataset_probes
    if missing.failed and pairs_path is None:
        verification = _end_to_end_verification(emb, missing, per_fold, seed)
    elif missing.failed:
        notes.append("verification is embedded-only: a --pairs file names embedded faces")
    extra["embedded_only"] = headline(*embedded)
    if missing.failed or missing.gallery_lost:
        notes.append(
            f"end to end: {missing.failed} masked probes of {dataset} were not embedded "
            f"and {missing.gallery_lost} lost their whole gallery; each is a miss"
        )
    return verification


def _bootstrap(retrieval, bootstrap: int, seed: int, extra: dict, notes: list[str]) -> None:
    """95 % intervals of the retrieval figures from ``bootstrap`` identity resamples."""
    if bootstrap > 0 and retrieval is not None and retrieval.first_rank is not None:
        from mfr.eval.bootstrap import bootstrap_intervals

        intervals = bootstrap_intervals(
            retrieval.first_rank, retrieval.average_precision, retrieval.probe_ids, bootstrap, seed
        )
        extra.update({f"{name}_ci": bounds for name, bounds in intervals.items()})
        extra["bootstrap"] = {"resamples": bootstrap, "seed": seed, "unit": "identity"}
    elif bootstrap > 0:
        notes.append("no bootstrap intervals: retrieval was not computed")


def _write_outputs(report: dict, retrieval, verification, json_out, plots_dir) -> None:
    """``plots_dir/cmc.png`` and ``roc.png`` (those computed), then ``json_out``."""
    import json

    from mfr.io import atomic_write

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
