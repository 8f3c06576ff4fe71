"""``mfr gan generate``: masked twins of a full-face dataset with a trained G_F→M (of every
identity, or all but an excluded few: ``generate_dataset(exclude=...)``).

Writes the ``mfr mask`` layout, so the recognizer trains on it unchanged:
``DST/<id>/<img>`` (a copy of the full face), ``DST/<id>/masked/<img>`` (generated, at the
source resolution), ``DST/_labels/<id>/<stem>.png`` (S's mask region on the generated image,
255 = mask), ``DST/manifest.csv`` and ``DST/landmarks.npz`` when SRC has one. Images already
generated (masked image and label present) are kept, so an interrupted run resumes.
"""

from __future__ import annotations

import io
import logging
import shutil
from collections.abc import Collection
from pathlib import Path

import numpy as np
import torch

from mfr.data.images import read_image as read_rgb
from mfr.data.layout import (
    LANDMARKS_NAME,
    list_identity_images,
    twin_finished,
    write_twin,
    write_twin_manifest,
)
from mfr.errors import CheckpointError, MfrError
from mfr.io import atomic_write
from mfr.nets.cyclegan import ResnetGenerator
from mfr.nets.unet import MaskSegmenter

log = logging.getLogger(__name__)


def load_generator(path: Path) -> tuple[ResnetGenerator, MaskSegmenter | None, dict]:
    """G_F→M (eval mode), the segmenter stored with it (or None) and the run's options."""
    from mfr.train.iamgan import GAN_FORMAT
    from mfr.train.segmenter import read_checkpoint

    payload = read_checkpoint(path, GAN_FORMAT, "IAMGAN")
    opts = payload["options"]
    generator = ResnetGenerator(3, opts["ngf"], opts["n_blocks"], opts["n_down"])
    try:
        generator.load_state_dict(payload["model"]["G_FM"])
    except (RuntimeError, KeyError) as error:
        raise CheckpointError(f"{path}: generator weights do not fit ({error})") from None
    segmenter = None
    if payload.get("segmenter"):
        seg = payload["segmenter"]
        segmenter = MaskSegmenter(seg["size"], seg["base_channels"], seg["depth"])
        segmenter.load_state_dict(seg["state_dict"])
        segmenter.eval()
    return generator.eval(), segmenter, opts


@torch.no_grad()
def generate_masked(
    generator: ResnetGenerator,
    segmenter: MaskSegmenter | None,
    images: list[np.ndarray],
    size: int,
    composite: bool = False,
) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Full faces (any sizes) -> (masked twins at each source size, mask labels 255/0 or None).

    ``composite`` keeps the source pixels outside S's mask region (sharper at CPU scale)."""
    import cv2

    from mfr.data.images import resize_square
    from mfr.nets.preprocess import images_to_tensor, tensor_to_images
    from mfr.train.seg_predict import predict_images

    batch = images_to_tensor(np.stack([resize_square(image, size) for image in images]))
    fakes = tensor_to_images(generator(batch))
    outputs = [
        cv2.resize(fake, (src.shape[1], src.shape[0]), interpolation=cv2.INTER_CUBIC)
        if fake.shape[:2] != src.shape[:2]
        else fake
        for fake, src in zip(fakes, images, strict=True)
    ]
    if segmenter is None:
        return outputs, [None] * len(outputs)
    labels = predict_images(segmenter, outputs)
    if composite:
        outputs = [
            np.where(label[..., None] > 0, out, src)
            for out, src, label in zip(outputs, images, labels, strict=True)
        ]
    return outputs, labels


def _encode(image: np.ndarray, suffix: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP"}
    kind = fmt.get(suffix.lower(), "PNG")
    Image.fromarray(image).save(buffer, format=kind, **({"quality": 95} if kind == "JPEG" else {}))
    return buffer.getvalue()


def generate_dataset(
    model_path: Path,
    src: Path,
    dst: Path,
    batch_size: int = 16,
    composite: bool = False,
    progress: bool = True,
    min_images: int = 1,
    exclude: Collection[str] = (),
) -> dict[str, int]:
    """Write the ``mfr mask`` layout for every full face of ``src`` whose identity has at least
    ``min_images`` images and is not in ``exclude`` (identity folder names: ``mfr experiment``
    leaves out the identities it tests on, which no GAN twin is used for); see the module
    docstring. Returns the counts ``generated``, ``existing`` (pairs kept from an earlier run)
    and ``skipped`` (unreadable images).
    Raises ``MfrError`` for a missing or empty source, ``CheckpointError`` for a checkpoint
    without a segmenter."""
    from tqdm import tqdm

    from mfr.io import check_separate_folders

    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise MfrError(f"{src}: source dataset folder not found")
    check_separate_folders(src, dst)
    generator, segmenter, opts = load_generator(model_path)
    if segmenter is None:
        raise CheckpointError(f"{model_path}: checkpoint has no segmenter to write mask labels")
    jobs = _source_jobs(src, min_images, set(exclude))
    relpaths: list[str] = []
    counts = {"generated": 0, "existing": 0, "skipped": 0}
    pending: list[tuple[str, Path]] = []

    def flush() -> None:
        written = _generate_batch(generator, segmenter, opts["size"], composite, dst, pending)
        counts["skipped"] += len(pending) - len(written)
        counts["generated"] += len(written)
        relpaths.extend(written)
        pending.clear()

    for relpath, path in tqdm(jobs, desc="gan generate", unit="img", disable=not progress):
        if twin_finished(dst, relpath):
            relpaths.append(relpath)
            counts["existing"] += 1
            continue
        pending.append((relpath, path))
        if len(pending) >= batch_size:
            flush()
    flush()

    write_twin_manifest(dst, relpaths)
    _copy_landmarks(src, dst)
    if counts["skipped"]:
        log.warning("%s: skipped %d unreadable images", src, counts["skipped"])
    return counts


def _source_jobs(src: Path, min_images: int, exclude: set[str]) -> list[tuple[str, Path]]:
    """``(<identity>/<image>, path)`` of the full faces of identities with >= ``min_images``,
    not in ``exclude``."""
    jobs = [
        (f"{identity}/{path.name}", path)
        for identity, files in list_identity_images(src).items()
        if len(files) >= min_images and identity not in exclude
        for path in files
    ]
    if not jobs and exclude:
        raise MfrError(f"{src}: every identity with images is excluded ({len(exclude)} excluded)")
    if not jobs:
        raise MfrError(f"{src}: no images in identity folders (expected SRC/<identity>/<image>)")
    return jobs


def _generate_batch(generator, segmenter, size, composite, dst, batch) -> list[str]:
    """Generate and write the twins of ``batch`` (``(relpath, path)``); returns the relpaths
    written (unreadable images are logged and left out)."""
    images, kept = [], []
    for relpath, path in batch:
        try:
            images.append(read_rgb(path))
            kept.append((relpath, path))
        except MfrError as error:
            log.warning("skipping %s", error)
    if not images:
        return []
    outputs, labels = generate_masked(generator, segmenter, images, size, composite)
    for (relpath, path), out, label in zip(kept, outputs, labels, strict=True):
        write_twin(
            dst, relpath, path, masked=_encode(out, path.suffix), label=_encode(label, ".png")
        )
    return [relpath for relpath, _ in kept]


def _copy_landmarks(src: Path, dst: Path) -> None:
    """Copy ``SRC/landmarks.npz`` to ``DST`` when there is one (the full faces are copies)."""
    if (src / LANDMARKS_NAME).is_file():
        with (
            atomic_write(dst / LANDMARKS_NAME, "wb") as handle,
            open(src / LANDMARKS_NAME, "rb") as source,
        ):
            shutil.copyfileobj(source, handle)
