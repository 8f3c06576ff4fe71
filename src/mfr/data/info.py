"""What a dataset holds: ``mfr data info`` as a library function (:func:`dataset_info`)."""

from __future__ import annotations

from pathlib import Path


def decode_all(paths, workers: int = 2, progress: bool = True) -> list[tuple[Path, str]]:
    """Decode every image of ``paths`` (``workers`` threads, a progress bar with
    ``progress``); return ``(path, reason)`` for each one that fails."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from mfr.data.images import read_image
    from mfr.errors import BadImageError

    def check(path: Path) -> str | None:
        try:
            read_image(path)
        except BadImageError as error:
            message = str(error)
            prefix = f"{path}: "
            return message[len(prefix) :] if message.startswith(prefix) else message
        return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(check, paths, chunksize=16)
        results = tqdm(
            results, total=len(paths), desc="decode", unit="img", disable=not progress or None
        )
        reasons = list(results)
    return [(path, reason) for path, reason in zip(paths, reasons) if reason is not None]


def dataset_info(
    root: Path, decode: bool = True, exclude: Path | None = None, progress: bool = True
) -> dict:
    """The report of ``mfr data info`` as a dict: ``root``, ``layout``, the counts of
    ``DatasetIndex.counts()`` (identities, images, full, masked, identities with both
    domains...), ``excluded_images``, ``non_image_files_skipped``, ``skipped_files``,
    ``missing_files`` and, with ``decode``, ``decoded`` and ``bad_files`` (path, reason) of
    the images that do not decode (else None). ``root`` is any layout
    ``mfr.data.dataset.load_index`` reads; its errors (``MfrError``) pass through."""
    from mfr.data.dataset import load_index

    index = load_index(root, exclude=exclude)
    info = {"root": str(index.root), "layout": index.kind, **index.counts()}
    info["excluded_images"] = index.excluded
    info["non_image_files_skipped"] = len(index.skipped)
    info["skipped_files"] = [str(p) for p in index.skipped]
    info["missing_files"] = [str(p) for p in index.missing]
    if decode:
        bad = decode_all(index.paths, progress=progress)
        info["decoded"] = len(index) - len(bad)
        info["bad_files"] = [{"path": str(p), "reason": r} for p, r in bad]
    else:
        info["decoded"] = None
        info["bad_files"] = None
    return info
