"""What goes into a gallery: the photos of an enrolment (:func:`enrolment_sources`), the ones a
gallery does not hold yet (:func:`new_sources`), adding embedded photos under the gallery's
lock (:func:`add_enrolled`), and the photos named for identification (:func:`photo_files`).

Folders are listed by the one folder walk, ``mfr.data.walk`` (the image suffixes of
``mfr.data.layout.IMAGE_SUFFIXES``, as ``mfr data info`` and ``mfr embed`` take them); every
file a walk leaves out is told to ``log`` with its reason, then the count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mfr.errors import MfrError
from mfr.gallery.store import Gallery, ModelInfo, locked, normalise_name

Log = Callable[[str], None]


def report_skips(skipped: Sequence[tuple[Path, str]], what: str, log: Log) -> None:
    """Each file a folder walk left out, then the count (never a silent drop)."""
    for path, reason in skipped:
        log(f"skipped: {path}: {reason}")
    if skipped:
        log(f"skipped {len(skipped)} files {what}")


def enrolment_sources(src: Path, name: str | None, log: Log) -> list[tuple[str, Path]]:
    """(identity, photo) pairs to enrol: one photo (needs ``name``); a folder of photos of
    ``name`` (sub-folders too, except ``masked`` ones); or a dataset in any layout
    ``mfr.data.dataset.load_index`` reads (identity folders, MFR2, LFW, a manifest), whose
    full faces are taken. Names are normalised (``normalise_name``). Raises ``MfrError``
    for a missing ``src`` or a single photo without ``name``."""
    from mfr.data.dataset import load_index
    from mfr.data.layout import FULL, MASKED_DIR, classify, walk_images

    if name is not None:
        name = normalise_name(name)
    if src.is_file():
        if not name:
            raise MfrError(f"{src}: enrolling a single photo needs --name NAME")
        return [(name, src)]
    if not src.is_dir():
        raise MfrError(f"{src}: no such file or folder")
    if name:
        walk = walk_images(src, skip_dirs={MASKED_DIR})
        report_skips(walk.skipped, f"in {src} (not images)", log)
        return [(name, p) for p in walk.images]
    index = load_index(src)
    reasons = [(p, classify(p) or "outside identity folders") for p in index.skipped]
    report_skips(reasons, f"in {src}", log)
    if index.missing:
        report_skips([(p, "listed but missing") for p in index.missing], f"in {src}", log)
    full = [(normalise_name(i), p) for i, p, d in zip(index.identities, index.paths,
            index.domains, strict=True) if d == FULL]  # fmt: skip
    renamed = sorted({i for i in index.identities if normalise_name(i) != i})
    for folder in renamed:
        log(f"note: folder {folder!r} enrolled as {normalise_name(folder)!r}")
    masked = len(index) - len(full)
    if masked:
        log(f"note: {masked} masked images of {src} not enrolled (a gallery holds full faces)")
    return full


def photo_files(items: Sequence[Path], log: Log) -> list[Path]:
    """Files as given; folders expanded to the images under them (sorted), each file the
    walk leaves out reported with a count."""
    from mfr.data.layout import walk_images

    out, skipped = [], []
    for item in items:
        if item.is_dir():
            walk = walk_images(item)
            out.extend(walk.images)
            skipped.extend(walk.skipped)
        else:
            out.append(item)
    report_skips(skipped, "(not images)", log)
    return out


def new_sources(
    store: Gallery, sources: list[tuple[str, Path]], warn: bool, log: Log
) -> list[tuple[str, Path]]:
    """The (identity, photo) pairs ``store`` does not hold yet (names already normalised). With
    ``warn``, say how many were left out, and warn about a photo enrolled under another name
    or a name that differs from an enrolled one only in case."""
    enrolled = set(zip(store.identities.tolist(), store.paths.tolist(), strict=True))
    names_of: dict[str, set[str]] = {}
    for identity, path in enrolled:
        names_of.setdefault(path, set()).add(identity)
    by_case = {identity.casefold(): identity for identity in store.identities.tolist()}
    fresh, told = [], set()
    for identity, photo in sources:
        key = str(photo.resolve())
        if (identity, key) in enrolled:
            continue
        fresh.append((identity, photo))
        others = sorted(names_of.get(key, set()) - {identity})
        enrolled.add((identity, key))
        names_of.setdefault(key, set()).add(identity)
        similar = by_case.setdefault(identity.casefold(), identity)
        if not warn:
            continue
        if others:
            log(f"warning: {photo}: already enrolled as {', '.join(others)}; "
                f"now also as {identity}")  # fmt: skip
        if similar != identity and identity not in told:
            told.add(identity)
            log(
                f"warning: {identity!r} differs from the enrolled {similar!r} only in case; "
                "they stay two identities (use `mfr gallery rename` to merge)"
            )
    if warn and len(fresh) < len(sources):
        log(f"{len(sources) - len(fresh)} images already enrolled, not added again")
    return fresh


def add_enrolled(
    gallery: Path,
    model: ModelInfo,
    sources: list[tuple[str, Path]],
    embeddings: np.ndarray,
    kept: list[int],
    first_look: Gallery | None,
    log: Log,
) -> tuple[Gallery, list[str]]:
    """Add the embedded photos (``embeddings`` (K, D) of ``sources[i]`` for i in ``kept``) to
    the gallery file ``gallery`` under its lock, as it is now (another enrolment may have
    written it since ``first_look``, the gallery read before embedding, or None when it did
    not exist): photos it holds by then are not added again. Saves only when something is
    added. Returns ``(gallery, identities added, one per photo)``. Raises ``MfrError`` when
    the gallery was enrolled with another model."""
    with locked(gallery):
        store = Gallery.load(gallery) if gallery.exists() else Gallery.empty(model)
        store.check_model(model, gallery)
        embedded = [(*sources[i], row) for row, i in enumerate(kept)]
        candidates = [(i, p) for i, p, _ in embedded]
        fresh = set(new_sources(store, candidates, warn=first_look is None, log=log))
        if len(fresh) < len(embedded) and first_look is not None:
            log(f"{len(embedded) - len(fresh)} images were enrolled meanwhile by another "
                "run, not added again")  # fmt: skip
        embedded = [(i, p, row) for i, p, row in embedded if (i, p) in fresh]
        identities = [i for i, _, _ in embedded]
        for identity in dict.fromkeys(identities):
            rows = [row for i, _, row in embedded if i == identity]
            paths = [str(p.resolve()) for i, p, _ in embedded if i == identity]
            store.add(identity, embeddings[rows], paths)
        if embedded:
            store.save(gallery)
    return store, identities
