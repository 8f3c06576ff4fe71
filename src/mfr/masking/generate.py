"""The ``mfr mask`` folder job: masked twins, labels, manifest and landmarks of a dataset.

Input: an aligned dataset ``SRC`` with its landmarks sidecar (``SRC/landmarks.npz``). For every
image in the sidecar it writes

- ``DST/<identity>/<image>``: the full face (the source file's bytes, copied),
- ``DST/_labels/<identity>/<stem>.png``: the label (uint8, 255 where the method covered),
- ``DST/<identity>/masked/<image>``: the masked twin (same format as the source), last,

each atomically, so a finished twin marks a finished pair and an interrupted run resumes by
skipping finished pairs. Every image has its own random stream, seeded by the job seed and
its relative path, so results do not depend on the order, on ``--workers`` or on resuming.
At the end ``DST/manifest.csv`` (``path,identity,domain`` for both twins of every finished
pair) and ``DST/landmarks.npz`` (the finished full faces' landmarks) are written, and the
images that failed are listed with their reason in ``DST/_failures.csv``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from mfr.data.layout import (
    MANIFEST_NAME,
    MASKED_DIR,
    twin_finished,
    twin_paths,
    write_twin,
    write_twin_manifest,
)
from mfr.errors import BadImageError, MfrError, OutputError
from mfr.io import (
    atomic_write,
    check_separate_folders,
    check_writable,
    name_bytes,
    remove_stale_temps,
    worker_initializer,
)

log = logging.getLogger(__name__)

FAILURES = "_failures.csv"


def image_rng(seed: int, relpath: str) -> np.random.Generator:
    """The random stream of one image: a function of the job seed and its relative path only."""
    digest = hashlib.sha256(name_bytes(relpath)).digest()
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *np.frombuffer(digest[:16], np.uint32)])


def encode_image(image: np.ndarray, suffix: str) -> bytes:
    """Encode an RGB uint8 image as ``suffix`` (``.png``, ``.jpg``, ...) with OpenCV."""
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix.lower() in (".jpg", ".jpeg") else []
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(suffix.lower(), image, params)
    if not ok:
        raise MfrError(f"cannot encode an image as {suffix}")
    return buffer.tobytes()


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_write(path, "wb") as handle:
        handle.write(data)


@dataclass
class MaskJob:
    """What a worker needs to mask one image (picklable)."""

    src: Path
    dst: Path
    method: str
    seed: int
    types: str | None = None
    masks: str | None = None


_WORKER: dict = {}


def _init_worker(job: MaskJob) -> None:
    from mfr.masking import make_method

    _WORKER["job"] = job
    _WORKER["method"] = make_method(job.method, job.types, job.masks)


def mask_one(item: tuple[str, np.ndarray]) -> tuple[str, str | None]:
    """Mask one image in a worker; returns (relpath, failure reason or None)."""
    import cv2

    from mfr.data.images import read_image

    relpath, landmarks, size = item
    job: MaskJob = _WORKER["job"]
    source = job.src / relpath
    try:
        image = read_image(source)
    except BadImageError as error:
        return relpath, str(error)
    if image.shape[:2] != (size, size):
        height, width = image.shape[:2]
        return relpath, (
            f"{source}: image is {width}x{height} px but the landmarks sidecar is for "
            f"{size}x{size} aligned images; re-run `mfr align`"
        )
    try:
        out, label = _WORKER["method"](image, landmarks, image_rng(job.seed, relpath))
        if not np.any(label):
            return relpath, f"{source}: the mask covers no pixel of the image (bad landmarks?)"
        write_twin(
            job.dst,
            relpath,
            source,
            masked=encode_image(out, source.suffix or ".png"),
            label=encode_image(label, ".png"),
        )
    except OutputError:
        raise  # the output folder, not this image: stop the job
    except (MfrError, ValueError, OSError, cv2.error) as error:
        return relpath, f"{source}: masking failed ({error})"
    return relpath, None


@dataclass
class MaskReport:
    """Counts of a ``mask_folder`` run and the failures with their reasons."""

    total: int = 0
    written: int = 0
    resumed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)


def _check_dst(src: Path, dst: Path) -> None:
    if not src.is_dir():
        raise MfrError(f"{src}: source folder not found")
    check_separate_folders(src, dst)
    check_writable(dst / MANIFEST_NAME)  # a read-only DST, or a file there, fails before any work


def write_failures(dst: Path, failures: list[tuple[str, str]]) -> Path | None:
    """``DST/_failures.csv`` (``path,reason``); removed when nothing failed."""
    target = dst / FAILURES
    if not failures:
        target.unlink(missing_ok=True)
        return None
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "reason"])
    writer.writerows(sorted(failures))
    with atomic_write(target, "w") as handle:
        handle.write(buffer.getvalue())
    return target


def mask_folder(
    src: str | Path,
    dst: str | Path,
    method: str = "template",
    seed: int = 0,
    types: str | None = None,
    masks: str | Path | None = None,
    workers: int = 1,
    progress: bool = True,
) -> MaskReport:
    """Mask every image of the aligned dataset ``src`` into ``dst`` (see the module doc)."""
    from mfr.align.landmarks import load_landmarks, save_landmarks
    from mfr.masking import make_method

    src, dst = Path(src), Path(dst)
    _check_dst(src, dst)
    landmarks, size = load_landmarks(src)
    make_method(method, types, masks)  # fail early on a bad method, mix or template folder
    job = MaskJob(src, dst, method, seed, types, None if masks is None else str(masks))
    report = MaskReport(total=len(landmarks))
    todo = []
    for relpath in sorted(landmarks):
        parts = PurePosixPath(relpath).parts
        if MASKED_DIR in parts[:-1] or len(parts) < 2:
            report.failures.append((relpath, f"{src / relpath}: not <identity>/<image>; skipped"))
        elif twin_finished(dst, relpath):
            report.resumed += 1
            report.finished.append(relpath)
        else:
            todo.append((relpath, landmarks[relpath], size))
    remove_stale_temps(dst)  # left by a killed run
    results = _run(job, todo, workers, progress)
    for relpath, reason in results:
        if reason is None:
            report.written += 1
            report.finished.append(relpath)
        else:
            log.debug("skipped %s", reason)  # reported once, by the caller, from the report
            report.failures.append((relpath, reason))
    write_twin_manifest(dst, report.finished)
    save_landmarks(dst, {p: landmarks[p] for p in report.finished}, size)
    write_failures(dst, report.failures)
    return report


def _run(job: MaskJob, todo: list, workers: int, progress: bool):
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc=f"mask ({job.method})", unit="img", disable=not progress)
    results = []
    try:
        if workers <= 1 or len(todo) < 2:
            _init_worker(job)
            for item in todo:
                results.append(mask_one(item))
                bar.update()
        else:
            import multiprocessing

            context = multiprocessing.get_context("spawn")
            init = (_init_worker, job)
            with context.Pool(workers, initializer=worker_initializer, initargs=init) as pool:
                for result in pool.imap_unordered(mask_one, todo, chunksize=16):
                    results.append(result)
                    bar.update()
    finally:
        bar.close()
    return results


def preview_grid(dst: str | Path, relpaths: list[str], path: str | Path, tile: int = 112) -> Path:
    """A PNG grid of the first images: originals (top row), masked twins, labels (bottom)."""
    import cv2

    from mfr.data.images import read_image

    dst = Path(dst)
    columns = []
    for relpath in relpaths:
        full, masked, label = twin_paths(dst, relpath)
        tiles = [read_image(full), read_image(masked), read_image(label)]
        columns.append(
            np.vstack([cv2.resize(t, (tile, tile), interpolation=cv2.INTER_AREA) for t in tiles])
        )
    if not columns:
        raise MfrError(f"{dst}: no finished images to preview")
    grid = np.hstack(columns)
    target = Path(path)
    write_bytes(target, encode_image(grid, target.suffix or ".png"))
    return target
