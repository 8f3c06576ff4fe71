"""Embed a dataset into an embeddings file (design.md contract), resumably; and list the faces
an embeddings file of a dataset should hold (end-to-end evaluation).

A run saves its progress to ``OUT.partial.npz`` (every ``SAVE_EVERY_S`` seconds and when
interrupted); a rerun of the same job — same model weights (``mfr.embedders.fingerprint``),
options and image list — continues from it.
"""

from __future__ import annotations

from pathlib import Path

#: Smallest image side worth embedding: an aligned crop (what the networks accept; a photo a
#: face is detected in needs ``mfr.align.detect.MIN_SIDE``, ``mfr align``'s rule).
from mfr.embedders.faces import MIN_CROP_SIDE


def _batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _decode_batch(paths: list[Path], min_side: int = MIN_CROP_SIDE):
    """Decode a batch; return (kept row numbers, images, [(row, message)] of bad files).
    An image whose shorter side is under ``min_side`` is a bad file ("image too small")."""
    from mfr.data.images import read_image
    from mfr.errors import BadImageError

    rows, images, bad = [], [], []
    for row, path in paths:
        try:
            image = read_image(path)
        except BadImageError as error:
            bad.append((row, str(error)))
            continue
        height, width = image.shape[:2]
        if min(height, width) < min_side:
            bad.append((row, f"{path}: image too small ({width}x{height} px, need {min_side})"))
            continue
        images.append(image)
        rows.append(row)
    return rows, images, bad


SAVE_EVERY_S = 60.0  # how often a long run saves its progress for --resume


def _fingerprint(weights: str, flip: bool, aligned, relative: list[str]) -> str:
    """What a partial run must share with this one to be resumed: the model's weights (their
    hash, not the ``--model`` string: replaced weights never mix into one file, and
    ``m.pt`` and ``/abs/m.pt`` resume each other), the options and the image list."""
    import hashlib

    from mfr.io import name_bytes

    digest = hashlib.sha1(b"\n".join(name_bytes(r) for r in relative)).hexdigest()
    return f"weights={weights};flip={flip};aligned={aligned};images={len(relative)};{digest}"


def load_partial(path: Path, fingerprint: str, count: int):
    """``(rows, embeddings, bad_rows, bad_reasons)`` from the progress file ``path``
    (``OUT.partial.npz``) of an earlier run of the same job (``fingerprint``, ``count``
    images), or None when there is none, it is unreadable or it is another job's."""
    import numpy as np

    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["fingerprint"]) != fingerprint:
                return None
            rows, bad_rows = data["rows"], data["bad_rows"]
            result = (rows, data["embeddings"], bad_rows, data["bad_reasons"])
    except (OSError, KeyError, ValueError):
        return None
    if len(rows) != len(result[1]) or np.any(rows >= count) or np.any(bad_rows >= count):
        return None
    return result


def embed_dataset(
    src: Path,
    model: str | None,
    out: Path,
    batch_size: int = 32,
    flip: bool = False,
    exclude: Path | None = None,
    limit: int | None = None,
    aligned: bool | None = None,
    log=print,
    progress: bool = True,
    resume: bool = True,
) -> dict:
    """Embed every image of ``src`` (any layout ``mfr.data.dataset.load_index`` reads) with
    ``model`` (a name or file; None: the default model, see ``mfr.embedders.registry``) and
    write ``out``, the embeddings file of design.md (``embeddings`` float32 (N, D), L2-
    normalised whatever the model format; ``identities``, ``domains`` uint8, ``paths``
    relative to ``src``). Returns a summary dict: ``out``, ``model``, ``images``, ``dim``,
    ``bad_files``, ``resumed``, ``resumed_images``, ``seconds`` (and ``fallback``: dlib's
    faces not detected). Undecodable or too small images are skipped and logged; raises
    ``MfrError`` when none is left, for a bad ``batch_size`` or an unwritable ``out``.

    ``aligned=None`` leaves the choice to the embedder (dlib detects faces, checkpoints
    expect aligned crops). With ``flip`` the embedding is the mean of the L2-normalised
    embeddings of the image and its mirror image, normalised again. Progress is saved to
    ``OUT.partial.npz`` (every minute and when interrupted); a rerun of the same job
    (same images, model and options) with ``resume`` continues from it.
    """
    import time

    import numpy as np

    from mfr.align.detect import MIN_SIDE
    from mfr.embedders import check_finite, load_embedder
    from mfr.errors import MfrError
    from mfr.io import check_writable, on_interrupt, resume_note

    if batch_size < 1:
        raise MfrError(f"--batch-size must be at least 1, got {batch_size}")
    check_writable(out)  # a read-only or full folder fails now, not after the work
    index = _index_to_embed(src, exclude, limit, log)
    model = _resolve_model(model, log)
    embedder = load_embedder(model, normalize=True)  # every file L2-normalised, any format
    detects = aligned is False or (aligned is None and model == "dlib")
    min_side = MIN_SIDE if detects else MIN_CROP_SIDE
    options = {} if aligned is None else {"aligned": aligned}
    relative = index.relative_paths()

    started = time.perf_counter()
    state = _Progress.start(out, model, (flip, aligned), relative, resume, log)
    on_interrupt(lambda: resume_note(state.path, bool(state.count)))
    finished = set(state.kept_rows) | set(state.bad_rows)
    todo = [(row, path) for row, path in enumerate(index.paths) if row not in finished]

    def embed(rows: list[int], images: list) -> np.ndarray:
        features = np.asarray(embedder.embed(images, **options), dtype=np.float32)
        check_finite(features, model, [relative[r] for r in rows])
        if flip:
            features = _flip_mean(embedder, images, features, options)
        return features

    bar_options = {"total": len(index), "initial": len(finished), "disable": not progress or None}
    bar_options["desc"] = f"embed ({embedder.name})"
    _embed_batches(list(_batches(todo, batch_size)), min_side, embed, state, bar_options, log)
    if not state.kept_rows:
        raise MfrError(f"{src}: no image could be decoded ({len(state.bad_rows)} bad files)")
    dim = _save(out, index, relative, state)
    summary = {
        "out": str(out),
        "model": embedder.name,
        "images": len(state.kept_rows),
        "dim": dim,
        "bad_files": len(state.bad_rows),
        "resumed": state.resumed,
        "resumed_images": state.resumed_images,
        "seconds": round(time.perf_counter() - started, 2),
    }
    if hasattr(embedder, "fallback_count"):
        summary["fallback"] = int(embedder.fallback_count)
    return summary


def _index_to_embed(src: Path, exclude, limit: int | None, log):
    """The ``DatasetIndex`` of ``src`` less ``exclude``, cut to ``limit`` images; logs how many
    files were skipped as not images (with an example and its reason)."""
    import numpy as np

    from mfr.data.dataset import load_index
    from mfr.data.layout import classify

    index = load_index(src, exclude=exclude)
    if limit is not None:
        index = index.subset(np.arange(min(limit, len(index))))
    if index.skipped:
        example = index.skipped[0]
        reason = classify(example) or "outside identity folders"
        log(f"skipped {len(index.skipped)} files that are not images (e.g. {example}: {reason})")
    return index


def _resolve_model(model: str | None, log) -> str:
    """The model source of ``model`` (a name, a file or None), logged with its note; a spec the
    registry does not know goes to the loader as given (which names the problem)."""
    from mfr.embedders.registry import Resolved, resolve
    from mfr.errors import MfrError

    try:
        resolved = resolve(model)
    except MfrError:
        if model is None:
            raise
        resolved = Resolved(model, model, None, "model spec")  # the loader's own error, if any
    log(f"model: {resolved.spec} ({resolved.note})")
    return resolved.source


def _flip_mean(embedder, images: list, features, options: dict):
    """L2-normalised mean of the normalised embeddings of ``images`` and their mirror images."""
    import numpy as np

    from mfr.eval.embeddings import l2_normalise

    mirrored = [np.ascontiguousarray(im[:, ::-1]) for im in images]
    return l2_normalise(l2_normalise(features) + l2_normalise(embedder.embed(mirrored, **options)))


class _Progress:
    """The rows embedded so far (``kept_rows`` with their ``parts``), the bad files
    (``bad_rows``, ``bad_reasons``) and the progress file ``path`` they are saved to."""

    def __init__(self, path: Path, fingerprint: str):
        self.path, self.fingerprint = path, fingerprint
        self.kept_rows: list[int] = []
        self.parts: list = []
        self.bad_rows: list[int] = []
        self.bad_reasons: list[str] = []
        self.resumed, self.resumed_images = False, 0

    @classmethod
    def start(cls, out: Path, model: str, options: tuple, relative: list[str], resume, log):
        """The progress of the job (``model``, ``options`` = (flip, aligned), the images
        ``relative``) writing ``out``: resumed from ``OUT.partial.npz`` when ``resume`` and
        that file is this job's, else empty."""
        from mfr.embedders.fingerprint import model_fingerprint
        from mfr.errors import MfrError

        try:
            weights = model_fingerprint(model)
        except MfrError:  # an embedder that is no model file (plugged in by a test or a script)
            weights = f"spec={model}"
        state = cls(out.with_name(out.name + ".partial.npz"),
                    _fingerprint(weights, *options, relative))  # fmt: skip
        done = load_partial(state.path, state.fingerprint, len(relative)) if resume else None
        if done is not None:
            state.resume_from(done)
            log(f"resuming {state.path}: {state.count} images already done")
        return state

    @property
    def count(self) -> int:
        return len(self.kept_rows) + len(self.bad_rows)

    def resume_from(self, done) -> None:
        self.kept_rows, self.bad_rows, self.bad_reasons = (
            list(done[0]),
            list(done[2]),
            list(done[3]),
        )
        self.parts.append(done[1])
        self.resumed, self.resumed_images = True, self.count

    def save(self) -> None:
        import numpy as np

        from mfr.io import atomic_write

        if self.kept_rows or self.bad_rows:
            with atomic_write(self.path, "wb") as handle:
                np.savez(
                    handle,
                    fingerprint=np.array(self.fingerprint),
                    rows=np.asarray(self.kept_rows, dtype=np.int64),
                    embeddings=np.concatenate(self.parts)
                    if self.parts
                    else np.zeros((0, 1), np.float32),
                    bad_rows=np.asarray(self.bad_rows, dtype=np.int64),
                    bad_reasons=np.asarray(self.bad_reasons, dtype=str),
                )


def _save(out: Path, index, relative: list[str], state: _Progress) -> int:
    """Write the embeddings file of the rows embedded, in index order, and remove the progress
    file; returns the embedding dimension."""
    import numpy as np

    from mfr.eval.embeddings import save_embeddings

    order = np.argsort(np.asarray(state.kept_rows, dtype=np.int64), kind="stable")
    kept = np.asarray(state.kept_rows, dtype=np.int64)[order]
    embeddings = np.concatenate(state.parts)[order]
    save_embeddings(
        out,
        embeddings,
        np.array([index.identities[r] for r in kept], dtype=str),
        index.domains[kept],
        np.array([relative[r] for r in kept], dtype=str),
    )
    state.path.unlink(missing_ok=True)
    return int(embeddings.shape[1])


def _embed_batches(chunks: list, min_side: int, embed, state: _Progress, bar_options, log):
    """Decode each chunk of ``(row, path)`` (the next one while ``embed`` runs on this one),
    add its embeddings and bad files to ``state``, save ``state`` every ``SAVE_EVERY_S``
    seconds and when interrupted (then re-raise)."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    bar = tqdm(unit="img", **bar_options)
    last_save = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:  # decode the next batch while embedding
            pending = pool.submit(_decode_batch, chunks[0], min_side) if chunks else None
            for number in range(len(chunks)):
                rows, images, batch_bad = pending.result()
                if number + 1 < len(chunks):
                    pending = pool.submit(_decode_batch, chunks[number + 1], min_side)
                if images:
                    state.parts.append(embed(rows, images))
                    state.kept_rows += rows
                for row, message in batch_bad:
                    log(f"skipped {message}")
                    state.bad_rows.append(row)
                    state.bad_reasons.append(message)
                bar.update(len(rows) + len(batch_bad))
                if time.monotonic() - last_save > SAVE_EVERY_S:
                    state.save()
                    last_save = time.monotonic()
    except BaseException:
        state.save()  # an interrupted run resumes from here
        raise
    finally:
        bar.close()


def dataset_faces(dataset: Path) -> list[tuple[str, int, str]]:
    """``(identity, domain, aligned path)`` of every image of ``dataset`` (before or after
    ``mfr align``, any layout it reads: ``mfr.align.batch.list_sources``), the path being the
    one ``mfr align`` writes (``<identity>/[masked/]<stem>.png``): the faces an embeddings file
    of it should hold (``mfr.eval.endtoend.find_missing``). Raises ``MfrError`` for a
    missing or unreadable dataset."""
    from mfr.align.batch import list_sources
    from mfr.data.layout import relpath_row

    rows = []
    for item in list_sources(dataset):
        _, identity, domain = relpath_row(item.output)
        rows.append((identity, domain, item.output))
    return rows
