"""``mfr embed``: a dataset in, an embeddings file (contract ``.npz``) out."""

from __future__ import annotations

from pathlib import Path

import typer


def _batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


#: Smallest image side worth embedding: an aligned crop (what the networks accept,
#: ``mfr.gallery.faces.MIN_CROP_SIDE``) and a photo a face is detected in (``mfr align``'s
#: rule, ``mfr.align.detect.MIN_SIDE``).
MIN_CROP_SIDE = 16


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


def _load_partial(path: Path, fingerprint: str, count: int):
    """(rows, embeddings, bad_rows, bad_reasons) of an earlier run of the same job, or None."""
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


def _unit(x):
    import numpy as np

    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


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
    """Embed every image of ``src`` with ``model`` (a name or file; None: the default model,
    see ``mfr.embedders.registry``) and write ``out``; return a summary dict.

    ``aligned=None`` leaves the choice to the embedder (dlib detects faces, checkpoints
    expect aligned crops). With ``flip`` the embedding is the mean of the L2-normalised
    embeddings of the image and its mirror image, normalised again. Progress is saved to
    ``OUT.partial.npz`` (every minute and when interrupted); a rerun of the same job
    (same images, model and options) with ``resume`` continues from it.
    """
    import time
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from tqdm import tqdm

    from mfr.align.detect import MIN_SIDE
    from mfr.data.dataset import load_index
    from mfr.embedders import check_finite, load_embedder
    from mfr.embedders.registry import Resolved, resolve
    from mfr.errors import MfrError
    from mfr.eval.embeddings import save_embeddings
    from mfr.gallery.fingerprint import model_fingerprint
    from mfr.io import atomic_write, check_writable, on_interrupt, resume_note

    if batch_size < 1:
        raise MfrError(f"--batch-size must be at least 1, got {batch_size}")
    check_writable(out)  # a read-only or full folder fails now, not after the work
    index = load_index(src, exclude=exclude)
    if limit is not None:
        index = index.subset(np.arange(min(limit, len(index))))
    if index.skipped:
        from mfr.data.walk import classify

        example = index.skipped[0]
        reason = classify(example) or "outside identity folders"
        log(f"skipped {len(index.skipped)} files that are not images (e.g. {example}: {reason})")
    try:
        resolved = resolve(model)
    except MfrError:
        if model is None:
            raise
        resolved = Resolved(model, model, None, "model spec")  # the loader's own error, if any
    log(f"model: {resolved.spec} ({resolved.note})")
    model = resolved.source
    embedder = load_embedder(model)
    detects = aligned is False or (aligned is None and model == "dlib")
    min_side = MIN_SIDE if detects else MIN_CROP_SIDE
    options = {} if aligned is None else {"aligned": aligned}
    relative = index.relative_paths()

    started = time.perf_counter()
    partial_path = out.with_name(out.name + ".partial.npz")
    try:
        weights = model_fingerprint(model)
    except MfrError:  # an embedder that is no model file (plugged in by a test or a script)
        weights = f"spec={model}"
    fingerprint = _fingerprint(weights, flip, aligned, relative)
    done = _load_partial(partial_path, fingerprint, len(index)) if resume else None
    kept_rows: list[int] = []
    parts: list[np.ndarray] = []
    bad_rows: list[int] = []
    bad_reasons: list[str] = []
    if done is not None:
        kept_rows, bad_rows, bad_reasons = list(done[0]), list(done[2]), list(done[3])
        parts.append(done[1])
        log(f"resuming {partial_path}: {len(kept_rows) + len(bad_rows)} images already done")
    resumed_images = len(kept_rows) + len(bad_rows)
    on_interrupt(lambda: resume_note(partial_path, bool(kept_rows or bad_rows)))
    finished = set(kept_rows) | set(bad_rows)
    todo = [(row, path) for row, path in enumerate(index.paths) if row not in finished]
    chunks = list(_batches(todo, batch_size))

    def save_partial() -> None:
        if kept_rows or bad_rows:
            with atomic_write(partial_path, "wb") as handle:
                np.savez(
                    handle,
                    fingerprint=np.array(fingerprint),
                    rows=np.asarray(kept_rows, dtype=np.int64),
                    embeddings=np.concatenate(parts) if parts else np.zeros((0, 1), np.float32),
                    bad_rows=np.asarray(bad_rows, dtype=np.int64),
                    bad_reasons=np.asarray(bad_reasons, dtype=str),
                )

    bar = tqdm(
        total=len(index),
        initial=len(finished),
        desc=f"embed ({embedder.name})",
        unit="img",
        disable=not progress or None,
    )
    last_save = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:  # decode the next batch while embedding
            pending = pool.submit(_decode_batch, chunks[0], min_side) if chunks else None
            for number in range(len(chunks)):
                rows, images, batch_bad = pending.result()
                if number + 1 < len(chunks):
                    pending = pool.submit(_decode_batch, chunks[number + 1], min_side)
                if images:
                    names = [relative[r] for r in rows]
                    features = np.asarray(embedder.embed(images, **options), dtype=np.float32)
                    check_finite(features, model, names)
                    if flip:
                        mirrored = [np.ascontiguousarray(im[:, ::-1]) for im in images]
                        features = _unit(
                            _unit(features) + _unit(embedder.embed(mirrored, **options))
                        ).astype(np.float32)
                    parts.append(features)
                    kept_rows += rows
                for row, message in batch_bad:
                    log(f"skipped {message}")
                    bad_rows.append(row)
                    bad_reasons.append(message)
                bar.update(len(rows) + len(batch_bad))
                if time.monotonic() - last_save > SAVE_EVERY_S:
                    save_partial()
                    last_save = time.monotonic()
    except BaseException:
        save_partial()  # an interrupted run resumes from here
        raise
    finally:
        bar.close()
    if not kept_rows:
        raise MfrError(f"{src}: no image could be decoded ({len(bad_rows)} bad files)")
    order = np.argsort(np.asarray(kept_rows, dtype=np.int64), kind="stable")
    kept = np.asarray(kept_rows, dtype=np.int64)[order]
    embeddings = np.concatenate(parts)[order]
    save_embeddings(
        out,
        embeddings,
        np.array([index.identities[r] for r in kept], dtype=str),
        index.domains[kept],
        np.array([relative[r] for r in kept], dtype=str),
    )
    partial_path.unlink(missing_ok=True)
    bad = bad_rows
    seconds = time.perf_counter() - started
    summary = {
        "out": str(out),
        "model": embedder.name,
        "images": len(kept_rows),
        "dim": int(embeddings.shape[1]),
        "bad_files": len(bad),
        "resumed": done is not None,
        "resumed_images": resumed_images,
        "seconds": round(seconds, 2),
    }
    if hasattr(embedder, "fallback_count"):
        summary["fallback"] = int(embedder.fallback_count)
    return summary


def register(app: typer.Typer) -> None:
    @app.command("embed")
    def embed_command(
        src: Path = typer.Argument(..., help="Dataset folder, manifest CSV, MFR2 or LFW root."),
        model: str = typer.Option(
            None,
            "--model",
            help="A model name (mfr-masked, dlib, dlib-resnet: dlib's weights on aligned "
            "crops; `mfr model list`), a checkpoint (.pt) or an ONNX export (.onnx). "
            "Default: the best installed model, else dlib-resnet.",
        ),
        out: Path = typer.Option(..., "--out", help="Embeddings .npz to write."),
        batch_size: int = typer.Option(32, "--batch-size", help="Images per embedder call."),
        flip: bool = typer.Option(
            False, "--flip", help="Average with the embedding of the mirrored image."
        ),
        exclude: Path | None = typer.Option(
            None, "--exclude", help="File of identities to leave out (one per line)."
        ),
        limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N images."),
        aligned: bool | None = typer.Option(
            None,
            "--aligned/--detect",
            help="Inputs are aligned crops / detect the face first "
            "(default: the model's own choice; dlib detects).",
        ),
        resume: bool = typer.Option(
            True, "--resume/--restart", help="Continue an interrupted run of the same job."
        ),
    ) -> None:
        """Embed every image of a dataset and write the embeddings file (.npz)."""
        summary = embed_dataset(
            src,
            model,
            out,
            batch_size=batch_size,
            flip=flip,
            exclude=exclude,
            limit=limit,
            aligned=aligned,
            resume=resume,
            log=lambda message: typer.echo(f"mfr: {message}", err=True),
        )
        text = (
            f"{out}: {summary['images']} embeddings ({summary['dim']}-d, {summary['model']}) "
            f"in {summary['seconds']:.1f} s; {summary['bad_files']} bad files skipped"
        )
        if "fallback" in summary:
            text += f"; {summary['fallback']} faces not detected (whole-image fallback)"
        if summary["resumed"]:
            text += f"; resumed: {summary['resumed_images']} images were done by an earlier run"
        typer.echo(text)
