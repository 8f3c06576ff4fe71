"""The folder job behind ``mfr align``: align every image of a dataset into ``DST``.

``DST`` mirrors the source as ``<identity>/[masked/]<stem>.png`` and gets the sidecar
``landmarks.npz``, ``manifest.csv`` (path,identity,domain) and ``failures.csv`` (path,reason).
Progress is recorded in ``DST/.align-parts/part-<i>of<n>-<k>.npz`` (flushed every few hundred
images): a re-run skips images whose landmarks or failure are recorded there (and whose image
exists), so an interrupted job resumes; ``--shard i/n`` jobs write separate parts, and
:func:`merge_parts` combines all parts into the sidecar, manifest and failure list.
"""

from __future__ import annotations

import csv
import io
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mfr.align.detect import DEFAULT_DETECTOR
from mfr.align.landmarks import save_landmarks
from mfr.data.dataset import load_index
from mfr.data.images import read_image
from mfr.data.layout import (
    LFW_IMAGES,
    MANIFEST_NAME,
    image_relpath,
    is_lfw_root,
    is_mfr2_root,
    list_mfr2,
    relpath_row,
    write_manifest_rows,
)
from mfr.errors import MfrError
from mfr.io import (
    atomic_write,
    check_separate_folders,
    check_writable,
    ensure_folder,
    worker_initializer,
)

PARTS = ".align-parts"
OUTPUT_EXTENSION = ".png"  # lossless: masking and GAN steps re-encode, so no JPEG generations
FLUSH_EVERY = 256
FLUSH_SECONDS = 30.0
_PART_NAME = re.compile(r"part-(\d+)of(\d+)-(\d+)\.npz$")


@dataclass(frozen=True)
class Item:
    """One source image: absolute ``source``, its ``name`` relative to SRC (for failure lists)
    and the ``output`` path relative to DST."""

    source: Path
    name: str
    output: str


@dataclass
class Summary:
    """Counts of one run (``skipped``: already done before) and of the merged dataset."""

    aligned: int = 0
    no_face: int = 0
    unreadable: int = 0
    too_small: int = 0
    fallback: int = 0
    multiple: int = 0
    skipped: int = 0
    total_aligned: int = 0
    total_failed: int = 0
    missing_images: int = 0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The one-line summary printed at the end of ``mfr align``."""
        return (
            f"aligned {self.aligned} / no face {self.no_face} / unreadable {self.unreadable} / "
            f"too small {self.too_small} / fallback used {self.fallback} / "
            f"multiple faces {self.multiple} / already done {self.skipped}; "
            f"dataset: {self.total_aligned} aligned, {self.total_failed} failed"
        )


# ----------------------------------------------------------------------------- sources


def _item(path: Path, base: Path, identity: str, domain: int) -> Item:
    try:
        name = path.relative_to(base).as_posix()
    except ValueError:
        name = str(path)
    return Item(path, name, image_relpath(identity, domain, path.stem + OUTPUT_EXTENSION))


def list_sources(src: str | Path, skipped: list | None = None) -> list[Item]:
    """Every image of SRC in any layout :mod:`mfr.data.layout` reads (identity folders, a
    manifest CSV, the MFR2 or LFW layout); files that are not taken are appended to
    ``skipped``. MFR2 images without a label line are aligned too, in the domain their
    folders give. Raises ``MfrError`` for a missing SRC and a dataset without images."""
    skipped = [] if skipped is None else skipped
    src = Path(src)
    if not src.exists():
        raise MfrError(f"{src}: no such file or folder")
    if src.is_dir() and is_lfw_root(src):
        src = src / LFW_IMAGES  # failure lists name LFW images <Name>/<Name>_NNNN.jpg
    if src.is_dir() and is_mfr2_root(src):
        listing = list_mfr2(src)
        unlabeled = set(listing.unlabeled)
        skipped.extend(p for p in listing.skipped if p not in unlabeled)
        rows = list(zip(listing.paths, listing.identities, listing.domains))
        for path in listing.unlabeled:
            rows.append((path, *relpath_row(path.relative_to(src).as_posix())[1:]))
        return [_item(p, src, identity, domain) for p, identity, domain in sorted(rows)]
    index = load_index(src)
    skipped.extend(index.skipped)
    base = (src if src.is_dir() else src.parent).resolve()
    return [
        _item(Path(path), base, identity, int(domain))
        for path, identity, domain in zip(index.paths, index.identities, index.domains)
    ]


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` (0 <= i < n) -> (i, n); None -> (0, 1)."""
    if not text:
        return 0, 1
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise MfrError(f"--shard {text!r}: expected i/n with 0 <= i < n, e.g. 0/4")
    return int(match.group(1)), int(match.group(2))


def shard_items(items: list[Item], shard: int, count: int) -> list[Item]:
    """The disjoint share of shard ``shard`` of ``count``: every count-th item by output path."""
    ordered = sorted(items, key=lambda item: item.output)
    return ordered[shard::count]


# ----------------------------------------------------------------------------- workers

_options: dict = {}


def _init_worker(options: dict) -> None:
    import cv2

    cv2.setNumThreads(1)
    if options.get("detector") == "dlib":
        from mfr.align.dlib_models import hog_detector, landmark_predictor

        hog_detector()
        landmark_predictor(68)
    else:
        from mfr.align.mesh import warm_up

        warm_up()
    _options.update(options)


_read_ahead: dict = {}  # source path -> future of read_image (one worker: the next image)
_helper: list = []  # one worker: the thread that reads ahead and writes behind
_writes: list = []  # futures of the writes behind, checked as the run goes


def _write_replace(path: Path, data: bytes) -> None:
    """Atomic (temp file + rename) but without ``fsync``: an interrupted run never leaves a half
    image, and a power loss at worst loses images whose progress was not yet recorded (part
    files are fsynced, and a recorded image that is missing is redone). Stale temps are not
    looked for on every write: the run removed its own at the start."""
    with atomic_write(path, "wb", fsync=False, clean=False) as handle:
        handle.write(data)


def _process(item: Item):
    """Align one item and write its image; returns (item, status, landmarks|reason, faces)."""
    import cv2

    from mfr.align.align import FaceNotFound, align_face
    from mfr.errors import MfrError

    try:
        ahead = _read_ahead.pop(item.source, None)
        image = read_image(item.source) if ahead is None else ahead.result()
    except MfrError as error:
        return item, "unreadable", str(error), 0
    except OSError as error:
        return item, "unreadable", f"{item.source}: {error}", 0
    try:
        face = align_face(
            image,
            _options["size"],
            _options["fallback"],
            _options["pick"],
            _options.get("detector", DEFAULT_DETECTOR),
        )
    except FaceNotFound as error:
        status = "too_small" if error.reason.startswith("image too small") else "no_face"
        return item, status, error.reason, 0
    ok, encoded = cv2.imencode(OUTPUT_EXTENSION, cv2.cvtColor(face.image, cv2.COLOR_RGB2BGR))
    if not ok:
        return item, "unreadable", f"{item.source}: cannot encode the aligned image", 0
    if _helper:
        # written behind, while the next image is aligned: its record may come first, which
        # a re-run handles (a recorded image whose file is missing is redone)
        _writes.append(
            _helper[0].submit(_write_replace, _options["dst"] / item.output, encoded.tobytes())
        )
    else:
        _write_replace(_options["dst"] / item.output, encoded.tobytes())
    status = "fallback" if face.used_fallback else "aligned"
    return item, status, face.landmarks68, face.num_faces


# ----------------------------------------------------------------------------- parts


def _read_part(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except Exception as error:
        raise MfrError(f"{path}: unreadable progress file ({error}); delete it to redo") from error


def _part_files(dst: Path) -> list[Path]:
    files = [p for p in (dst / PARTS).glob("part-*.npz") if _PART_NAME.search(p.name)]
    return sorted(files, key=lambda p: tuple(int(g) for g in _PART_NAME.search(p.name).groups()))


class PartWriter:
    """Buffers results and flushes them to ``DST/.align-parts/part-<i>of<n>-<k>.npz``."""

    def __init__(self, dst: Path, shard: int, count: int, size: int):
        self.folder = ensure_folder(dst / PARTS)
        self.prefix = f"part-{shard}of{count}-"
        existing = [
            int(_PART_NAME.search(p.name).group(3)) for p in self.folder.glob(self.prefix + "*.npz")
        ]
        self.next = max(existing, default=-1) + 1
        self.size = size
        self.rows: list[tuple] = []
        self.failures: list[tuple[str, str, str]] = []
        self.last_flush = time.monotonic()

    def add(self, item: Item, status: str, payload, faces: int) -> None:
        if status in ("aligned", "fallback"):
            self.rows.append((item.output, payload, status == "fallback", faces))
        else:
            self.failures.append((item.name, item.output, str(payload)))
        pending = len(self.rows) + len(self.failures)
        if pending >= FLUSH_EVERY or time.monotonic() - self.last_flush > FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if not self.rows and not self.failures:
            return
        landmarks = np.stack([r[1] for r in self.rows]) if self.rows else np.zeros((0, 68, 2))
        buffer = io.BytesIO()
        np.savez(
            buffer,
            paths=np.array([r[0] for r in self.rows], dtype=str),
            landmarks=landmarks.astype(np.float32),
            fallback=np.array([r[2] for r in self.rows], dtype=bool),
            num_faces=np.array([r[3] for r in self.rows], dtype=np.int32),
            fail_names=np.array([f[0] for f in self.failures], dtype=str),
            fail_outputs=np.array([f[1] for f in self.failures], dtype=str),
            fail_reasons=np.array([f[2] for f in self.failures], dtype=str),
            size=np.int32(self.size),
        )
        with atomic_write(self.folder / f"{self.prefix}{self.next:05d}.npz", "wb") as handle:
            handle.write(buffer.getvalue())
        self.next += 1
        self.rows, self.failures = [], []
        self.last_flush = time.monotonic()


def _recorded(dst: Path) -> tuple[dict[str, dict], dict[str, tuple[str, str]], int | None]:
    """All parts in order: output -> {landmarks, fallback, num_faces}, output -> (name, reason)
    for failures (a later record of the same output replaces an earlier one), and the size."""
    done: dict[str, dict] = {}
    failed: dict[str, tuple[str, str]] = {}
    size = None
    for path in _part_files(dst):
        part = _read_part(path)
        if size is not None and int(part["size"]) != size:
            raise MfrError(f"{path}: aligned at size {int(part['size'])}, other parts at {size}")
        size = int(part["size"])
        for i, output in enumerate(part["paths"].tolist()):
            done[output] = {
                "landmarks": part["landmarks"][i],
                "fallback": bool(part["fallback"][i]),
                "num_faces": int(part["num_faces"][i]),
            }
            failed.pop(output, None)
        for name, output, reason in zip(
            part["fail_names"].tolist(),
            part["fail_outputs"].tolist(),
            part["fail_reasons"].tolist(),
        ):
            failed[output] = (name, reason)
            done.pop(output, None)
    return done, failed, size


def merge_parts(dst: str | Path, summary: Summary | None = None) -> Summary:
    """Combine all progress parts of DST into ``landmarks.npz``, ``manifest.csv`` and
    ``failures.csv``. Records whose image is missing are left out and counted."""
    dst = Path(dst)
    summary = summary or Summary()
    if not (dst / PARTS).is_dir():
        raise MfrError(f"{dst}: no {PARTS} folder; nothing to merge (run `mfr align SRC {dst}`)")
    done, failed, size = _recorded(dst)
    if size is None:
        raise MfrError(f"{dst / PARTS}: no progress files to merge")
    present = {output: record for output, record in done.items() if (dst / output).is_file()}
    summary.missing_images = len(done) - len(present)
    save_landmarks(dst, {output: record["landmarks"] for output, record in present.items()}, size)
    write_manifest_rows(dst / MANIFEST_NAME, [relpath_row(output) for output in sorted(present)])
    with atomic_write(dst / "failures.csv", "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["path", "reason"])
        for name, reason in sorted(failed.values()):
            writer.writerow([name, reason])
    summary.total_aligned, summary.total_failed = len(present), len(failed)
    return summary


# ----------------------------------------------------------------------------- the job


def _remove_stray_temps(dst: Path, outputs: set[str]) -> int:
    """Delete temp files left by an interrupted run of this shard (``.<name>.<rand>.tmp``)."""
    removed = 0
    for tmp in dst.rglob(".*.tmp"):
        target = tmp.parent / tmp.name[1:].rsplit(".", 2)[0]
        rel = target.relative_to(dst).as_posix()
        if rel in outputs:
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def align_folder(
    src: str | Path,
    dst: str | Path,
    size: int = 112,
    workers: int = 1,
    shard: tuple[int, int] = (0, 1),
    fallback: bool = True,
    pick: str = "largest",
    progress: bool = True,
    detector: str = DEFAULT_DETECTOR,
) -> Summary:
    """Align every image of SRC into DST (resumable, sharded, multi-process) with ``detector``
    (``mediapipe`` or ``dlib``); see module doc."""
    src, dst = Path(src), Path(dst)
    if size < 16:
        raise MfrError(f"--size {size}: aligned images need at least 16 pixels")
    check_separate_folders(src, dst)
    not_images: list = []
    items = list_sources(src, not_images)
    summary = Summary()
    if not_images:
        summary.notes.append(
            f"skipped {len(not_images)} files that are not images or lie outside identity "
            f"folders (e.g. {not_images[0]})"
        )
    seen: dict[str, Item] = {}
    unique, duplicates = [], []
    for item in items:
        if item.output in seen:
            duplicates.append(item)
        else:
            seen[item.output] = item
            unique.append(item)
    mine = shard_items(unique, *shard)
    check_writable(dst / MANIFEST_NAME)  # before any work: a read-only or full DST
    done, failed, recorded_size = _recorded(dst) if (dst / PARTS).is_dir() else ({}, {}, None)
    if recorded_size is not None and recorded_size != size:
        raise MfrError(
            f"{dst}: already aligned at size {recorded_size}, not {size}; use another DST"
        )
    outputs = {item.output for item in mine}
    _remove_stray_temps(dst, outputs)
    todo = [
        item
        for item in mine
        if not (item.output in failed or (item.output in done and (dst / item.output).is_file()))
    ]
    summary.skipped = len(mine) - len(todo)
    writer = PartWriter(dst, *shard, size)
    if shard == (0, 1) or shard[0] == 0:
        for item in duplicates:
            other = seen[item.output].name
            writer.add(
                Item(item.source, item.name, item.name),
                "duplicate",
                f"same output name as {other}",
                0,
            )
            summary.notes.append(f"{item.name}: same output name as {other}")
    counts: Counter = Counter()
    try:
        options = dict(size=size, fallback=fallback, pick=pick, dst=dst, detector=detector)
        results = _run(todo, workers, options)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=len(todo), desc="align", unit="img", smoothing=0.05)
        for item, status, payload, faces in results:
            counts[status] += 1
            counts["multiple"] += faces > 1
            writer.add(item, status, payload, faces)
    finally:
        writer.flush()
    summary.aligned = counts["aligned"] + counts["fallback"]
    summary.fallback = counts["fallback"]
    summary.no_face = counts["no_face"]
    summary.unreadable = counts["unreadable"]
    summary.too_small = counts["too_small"]
    summary.multiple = counts["multiple"]
    return merge_parts(dst, summary)


def _run(todo: list[Item], workers: int, options: dict):
    """Yield results of ``_process`` over ``todo`` (in-process for one worker)."""
    if workers <= 1 or len(todo) <= 1:
        from concurrent.futures import ThreadPoolExecutor

        _init_worker(options)
        # the next image is decoded, and the last one written, in a thread while this one is
        # aligned (decoding, file writes and MediaPipe's graphs release the GIL)
        with ThreadPoolExecutor(1) as helper:
            _helper.append(helper)
            try:
                for i, item in enumerate(todo):
                    if i + 1 < len(todo):
                        following = todo[i + 1].source
                        _read_ahead[following] = helper.submit(read_image, following)
                    yield _process(item)
                    while _writes and _writes[0].done():
                        _writes.pop(0).result()  # a failed write stops the run
                for write in _writes:
                    write.result()
            finally:
                _helper.clear()
                _read_ahead.clear()
                _writes.clear()  # the pool finishes the writes under way on the way out
        return
    import multiprocessing

    # MediaPipe's graphs run threads, and a process forked from one that holds graphs can
    # deadlock; a fork server forks its workers from a clean process
    start = "spawn"
    if os.name == "posix":
        start = "fork" if options.get("detector") == "dlib" else "forkserver"
    context = multiprocessing.get_context(start)
    with context.Pool(
        workers, initializer=worker_initializer, initargs=(_init_worker, options)
    ) as pool:
        yield from pool.imap_unordered(_process, todo, chunksize=8)
