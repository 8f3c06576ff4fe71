"""``mfr embed``: a dataset in, an embeddings file (contract ``.npz``) out."""

from __future__ import annotations

from pathlib import Path

import typer


def _batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _decode_batch(paths: list[Path]):
    """Decode a batch; return (kept row numbers, images, [(path, reason)] of bad files)."""
    from mfr.data.images import read_image
    from mfr.errors import BadImageError

    rows, images, bad = [], [], []
    for row, path in paths:
        try:
            images.append(read_image(path))
            rows.append(row)
        except BadImageError as error:
            bad.append((path, str(error)))
    return rows, images, bad


def _unit(x):
    import numpy as np

    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def embed_dataset(
    src: Path,
    model: str,
    out: Path,
    batch_size: int = 32,
    flip: bool = False,
    exclude: Path | None = None,
    limit: int | None = None,
    aligned: bool | None = None,
    log=print,
    progress: bool = True,
) -> dict:
    """Embed every image of ``src`` with ``model`` and write ``out``; return a summary dict.

    ``aligned=None`` leaves the choice to the embedder (dlib detects faces, checkpoints
    expect aligned crops). With ``flip`` the embedding is the mean of the L2-normalised
    embeddings of the image and its mirror image, normalised again.
    """
    import time
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from tqdm import tqdm

    from mfr.data.dataset import load_index
    from mfr.embedders import load_embedder
    from mfr.errors import MfrError
    from mfr.eval.embeddings import save_embeddings

    if batch_size < 1:
        raise MfrError(f"--batch-size must be at least 1, got {batch_size}")
    index = load_index(src, exclude=exclude)
    if limit is not None:
        index = index.subset(np.arange(min(limit, len(index))))
    embedder = load_embedder(model)
    options = {} if aligned is None else {"aligned": aligned}
    relative = index.relative_paths()
    chunks = list(_batches(list(enumerate(index.paths)), batch_size))

    started = time.perf_counter()
    kept_rows: list[int] = []
    parts: list[np.ndarray] = []
    bad: list[tuple[Path, str]] = []
    bar = tqdm(
        total=len(index), desc=f"embed ({embedder.name})", unit="img", disable=not progress or None
    )
    with ThreadPoolExecutor(max_workers=1) as pool:  # decode the next batch while embedding
        pending = pool.submit(_decode_batch, chunks[0]) if chunks else None
        for number in range(len(chunks)):
            rows, images, batch_bad = pending.result()
            if number + 1 < len(chunks):
                pending = pool.submit(_decode_batch, chunks[number + 1])
            for _path, message in batch_bad:
                log(f"skipped {message}")
            bad += batch_bad
            if images:
                features = np.asarray(embedder.embed(images, **options), dtype=np.float32)
                if flip:
                    mirrored = [np.ascontiguousarray(im[:, ::-1]) for im in images]
                    features = _unit(
                        _unit(features) + _unit(embedder.embed(mirrored, **options))
                    ).astype(np.float32)
                parts.append(features)
                kept_rows += rows
            bar.update(len(rows) + len(batch_bad))
    bar.close()
    if not kept_rows:
        raise MfrError(f"{src}: no image could be decoded ({len(bad)} bad files)")
    embeddings = np.concatenate(parts)
    save_embeddings(
        out,
        embeddings,
        np.array([index.identities[r] for r in kept_rows], dtype=str),
        index.domains[kept_rows],
        np.array([relative[r] for r in kept_rows], dtype=str),
    )
    seconds = time.perf_counter() - started
    summary = {
        "out": str(out),
        "model": embedder.name,
        "images": len(kept_rows),
        "dim": int(embeddings.shape[1]),
        "bad_files": len(bad),
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
            "dlib", "--model", help="'dlib', a checkpoint (.pt) or an ONNX export (.onnx)."
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
            log=lambda message: typer.echo(f"mfr: {message}", err=True),
        )
        text = (
            f"{out}: {summary['images']} embeddings ({summary['dim']}-d, {summary['model']}) "
            f"in {summary['seconds']:.1f} s; {summary['bad_files']} bad files skipped"
        )
        if "fallback" in summary:
            text += f"; {summary['fallback']} faces not detected (whole-image fallback)"
        typer.echo(text)
