"""``mfr enroll``, ``mfr identify``, ``mfr verify`` and ``mfr gallery list|remove|rename``."""

from __future__ import annotations

from pathlib import Path

import typer

MODEL_HELP = "A model name (mfr-masked, dlib, dlib-resnet, `mfr model list`) or a .pt / .onnx file."

ALIGNED_HELP = (
    "--aligned: inputs are aligned crops; --detect: detect and align the face; "
    "default: auto (112 x 112 images are crops, others are detected)"
)


def _err(message: str) -> None:
    typer.echo(message, err=True)


def _embed(recognizer, paths: list[Path], aligned: bool | None):
    """Embed with a progress bar on stderr; each skip is logged, then the count. A single
    photo is not a batch: its problem is raised as the command's error."""
    from rich.console import Console
    from rich.progress import Progress

    if len(paths) == 1:
        result = recognizer.embed_many(paths, aligned=aligned, skip_errors=False)
        for note in result.notes:
            _err(f"note: {note}")
        return result

    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("embedding", total=len(paths))
        result = recognizer.embed_many(
            paths, aligned=aligned, progress=lambda n: progress.advance(task, n)
        )
    for note in result.notes:
        _err(f"note: {note}")
    for where, reason in result.skipped:
        _err(f"skipped: {reason}" if reason.startswith(where) else f"skipped: {where}: {reason}")
    if result.skipped:
        _err(f"skipped {len(result.skipped)} of {len(paths)} images")
    return result


def say_model(recognizer) -> None:
    """One stderr line: which model was used and why (after success: an error stays the
    command's only line)."""
    _err(f"model: {recognizer.model.spec} ({recognizer.note})")


def enroll(
    gallery: Path = typer.Argument(..., help="Gallery file (.npz); created if missing."),
    src: Path = typer.Argument(..., help="A photo, a folder of one person, or a dataset."),
    model: str = typer.Option(
        None,
        "--model",
        "-m",
        help=MODEL_HELP + " Default: the gallery's model, else the default model.",
    ),
    name: str = typer.Option(None, "--name", "-n", help="Identity of a photo or folder."),
    aligned: bool = typer.Option(None, "--aligned/--detect", help=ALIGNED_HELP),
) -> None:
    """Enrol faces into a gallery: one photo with --name, a folder of one person with
    --name, or a dataset folder <identity>/<images> (full faces only)."""
    from mfr.errors import MfrError
    from mfr.gallery.enrol import add_enrolled, enrolment_sources, new_sources
    from mfr.io import check_writable, on_interrupt, remove_stale_temps_of

    check_writable(gallery)  # a read-only or full folder fails before the embedding
    remove_stale_temps_of(gallery)  # a killed enrolment's
    sources = enrolment_sources(src, name, _err)
    if not sources:
        raise MfrError(f"{src}: no images to enrol")
    from mfr.api import FaceRecognizer

    recognizer, existing = FaceRecognizer.for_gallery(gallery, model)
    if existing is not None:  # a first look, to embed only new photos
        sources = new_sources(existing, sources, warn=True, log=_err)
    if not sources:
        typer.echo(f"nothing new to enrol into {gallery}")
        return
    on_interrupt(f"nothing enrolled, {gallery} unchanged; run the same command again")
    result = _embed(recognizer, [p for _, p in sources], aligned)
    if not result.kept:
        raise MfrError(f"{src}: nothing enrolled, all {len(sources)} images skipped")
    store, identities = add_enrolled(
        gallery, recognizer.model, sources, result.embeddings, result.kept, existing, _err
    )
    if identities:
        on_interrupt(f"enrolment saved in {gallery}")
    say_model(recognizer)
    if not identities:
        typer.echo(f"nothing new to enrol into {gallery}")
        return
    typer.echo(
        f"enrolled {len(identities)} images of {len(set(identities))} identities into "
        f"{gallery} (now {len(store.identity_counts())} identities, {len(store)} images)"
    )


def identify(
    gallery: Path = typer.Argument(..., help="Gallery file made by `mfr enroll`."),
    photos: list[Path] = typer.Argument(..., help="Photos (or folders of photos)."),
    k: int = typer.Option(5, "--k", "-k", min=1, help="Identities to list per photo."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    model: str = typer.Option(
        None, "--model", "-m", help=MODEL_HELP + " Default: the gallery's model."
    ),
    aligned: bool = typer.Option(None, "--aligned/--detect", help=ALIGNED_HELP),
    faiss: bool = typer.Option(False, "--faiss", help="Search with a faiss index."),
) -> None:
    """Rank the enrolled identities most similar to each photo (an identity scores the
    cosine similarity of its best-matching enrolled image)."""
    import json

    from mfr.errors import MfrError
    from mfr.gallery.search import GallerySearch

    if not gallery.is_file():
        from mfr.io import missing_file

        raise missing_file(gallery, "gallery", "create it with `mfr enroll`")
    from mfr.api import FaceRecognizer

    recognizer, store = FaceRecognizer.for_gallery(gallery, model)
    from mfr.gallery.enrol import photo_files

    paths = photo_files(photos, _err)
    where = f"{photos[0]}{' ...' if len(photos) > 1 else ''}"
    if not paths:
        raise MfrError(f"{where}: no photos to identify")
    result = _embed(recognizer, paths, aligned)
    if not result.kept:
        raise MfrError(f"{where}: none of the {len(paths)} photos could be used (see above)")
    search = GallerySearch(store.embeddings, store.identities, "faiss" if faiss else "exact")
    ranked = search.search(result.embeddings, k)
    threshold = recognizer.threshold
    say_model(recognizer)
    records = [
        {"photo": str(paths[row]), "matches": _match_records(matches, threshold, store)}
        for row, matches in zip(result.kept, ranked, strict=True)
    ]
    if as_json:
        skipped = [{"photo": w, "reason": r} for w, r in result.skipped]
        payload = {
            "gallery": str(gallery),
            "model": recognizer.model.spec,
            "threshold": threshold,
            "operating_point": recognizer.operating_point,
            "results": records,
            "skipped": skipped,
            "notes": result.notes,
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    _print_identify_table(records)


def _match_records(matches, threshold: float | None, store) -> list[dict]:
    """The ranked matches of one photo as the records ``mfr identify --json`` prints."""
    return [
        {
            "rank": rank,
            "identity": m.identity,
            "score": round(m.score, 6),
            "same": None if threshold is None else bool(m.score > threshold),
            "entry_id": int(store.ids[m.entry]),
            "enrolled_path": str(store.paths[m.entry]),
        }
        for rank, m in enumerate(matches, 1)
    ]


def _print_identify_table(records: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("rank", "identity", "score", "same?")
    table.add_column("photo", overflow="fold")
    for record in records:
        for match in record["matches"]:
            same = {None: "", True: "yes", False: "no"}[match["same"]]
            photo = record["photo"] if match["rank"] == 1 else ""
            score = f"{match['score']:.4f}"
            table.add_row(str(match["rank"]), match["identity"], score, same, photo)
    Console().print(table)


def verify(
    a: Path = typer.Argument(None, help="First photo."),
    b: Path = typer.Argument(None, help="Second photo."),
    model: str = typer.Option(
        None,
        "--model",
        "-m",
        help=MODEL_HELP + " Default: the best installed model, else dlib-resnet.",
    ),
    threshold: float = typer.Option(None, "--threshold", help="Override the stored one."),
    aligned: bool = typer.Option(None, "--aligned/--detect", help=ALIGNED_HELP),
    calibrate: Path = typer.Option(
        None,
        "--calibrate",
        help="Embeddings file (from `mfr embed` with this model): "
        "calibrate the threshold on its pairs and store it with the model.",
    ),
    pairs: Path = typer.Option(None, "--pairs", help="Pairs CSV for --calibrate."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Are two photos the same person? Prints the cosine similarity and the decision
    (same when above the model's threshold, whose operating point is printed). A model
    without a threshold refuses to decide. With --calibrate, store one."""
    import json

    from mfr.errors import MfrError
    from mfr.gallery.threshold import check_threshold

    if threshold is not None:
        threshold = check_threshold(threshold, "--threshold")
    from mfr.api import FaceRecognizer

    recognizer = FaceRecognizer.load(model, threshold=threshold)
    if calibrate is not None:
        from mfr.gallery.threshold import calibrate_model

        model_info = recognizer.model
        record, where = calibrate_model(
            model_info.spec, model_info.fingerprint, calibrate, pairs, dim=recognizer.dim
        )
        typer.echo(
            f"threshold {record['threshold']:.4f} (accuracy {100 * record['accuracy']:.2f}% "
            f"on {record['num_pairs']} pairs) stored in {where}"
        )
        return
    if a is None or b is None:
        raise MfrError("verify needs two photos (or --calibrate EMB.npz)")
    decision = recognizer.decide(a, b, aligned=aligned)
    say_model(recognizer)
    if as_json:
        payload = {"a": str(a), "b": str(b), "similarity": decision.similarity,
                   "same": decision.same, "threshold": decision.threshold,
                   "model": recognizer.model.spec,
                   "operating_point": decision.operating_point}  # fmt: skip
        typer.echo(json.dumps(payload))
    else:
        verdict = "same person" if decision.same else "different people"
        typer.echo(
            f"{verdict}: similarity {decision.similarity:.4f} (threshold "
            f"{decision.threshold:.4f}, model {recognizer.model.spec}; operating point: "
            f"{decision.operating_point})"
        )


def list_(
    gallery: Path = typer.Argument(..., help="Gallery file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a gallery's model and its identities with their image counts."""
    import json

    from mfr.gallery.store import Gallery

    store = Gallery.load(gallery)
    counts = store.identity_counts()
    if as_json:
        payload = {
            "model": store.model.to_json(),
            "created": store.created,
            "updated": store.updated,
            "images": len(store),
            "identities": counts,
            "entries": [
                {"id": int(i), "identity": str(n), "path": str(p)}
                for i, n, p in zip(store.ids, store.identities, store.paths, strict=True)
            ],
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    typer.echo(f"{gallery}: {len(counts)} identities, {len(store)} images")
    typer.echo(f"model {store.model.spec} ({store.model.name}, {store.model.dim}-d, "
               f"weights {store.model.fingerprint[:19]})")  # fmt: skip
    typer.echo(f"created {store.created}, updated {store.updated}")
    for identity, count in counts.items():
        typer.echo(f"  {identity}\t{count}")


def remove(
    gallery: Path = typer.Argument(..., help="Gallery file."),
    identity: str = typer.Argument(None, help="Identity to remove (all its images)."),
    entry: list[int] = typer.Option(
        None,
        "--entry",
        help="Remove one entry by id (repeatable; ids from `gallery list --json`). With "
        "IDENTITY, each entry must be that identity's.",
    ),
) -> None:
    """Remove an identity (all its images) or single entries (--entry ID); IDENTITY with
    --entry removes those entries only and checks they are IDENTITY's. An unknown
    identity or id, or an entry of another identity, removes nothing."""
    from collections import Counter

    from mfr.errors import MfrError
    from mfr.gallery.store import Gallery, locked

    if identity is None and not entry:
        raise MfrError("name an identity or give --entry ID")
    with locked(gallery):
        store = Gallery.load(gallery)
        names = Counter(store.identities[store.select(identity, entry, gallery)].tolist())
        removed = store.remove(identity, entry, gallery)
        store.save(gallery)
    of = ", ".join(f"{count} of {name}" for name, count in sorted(names.items()))
    typer.echo(f"removed {removed} images ({of}) from {gallery} ({len(store)} left)")


def rename(
    gallery: Path = typer.Argument(..., help="Gallery file."),
    old: str = typer.Argument(..., help="Current identity name."),
    new: str = typer.Argument(..., help="New name (merged if it exists)."),
) -> None:
    """Rename an identity (merging into NEW if it is already enrolled)."""
    from mfr.errors import MfrError
    from mfr.gallery.store import Gallery, locked

    with locked(gallery):
        store = Gallery.load(gallery)
        count = store.rename(old, new)
        if not count:
            raise MfrError(f"{gallery}: no identity {old!r}")
        store.save(gallery)
    typer.echo(f"renamed {old} to {new} ({count} images)")


def register(app: typer.Typer) -> None:
    app.command()(enroll)
    app.command()(identify)
    app.command()(verify)
    sub = typer.Typer(help="Inspect and edit a gallery.", no_args_is_help=True)
    app.add_typer(sub, name="gallery")
    sub.command("list")(list_)
    sub.command()(remove)
    sub.command()(rename)
