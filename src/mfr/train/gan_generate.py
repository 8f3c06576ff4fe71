"""``mfr gan generate``: masked twins of a full-face dataset with a trained G_F→M.

Writes the ``mfr mask`` layout, so the recognizer trains on it unchanged:
``DST/<id>/<img>`` (a copy of the full face), ``DST/<id>/masked/<img>`` (generated, at the
source resolution), ``DST/_labels/<id>/<stem>.png`` (S's mask region on the generated image,
255 = mask), ``DST/manifest.csv`` and ``DST/landmarks.npz`` when SRC has one. Images already
generated (masked image and label present) are kept, so an interrupted run resumes.
"""

from __future__ import annotations

import csv
import io
import logging
import shutil
from pathlib import Path

import numpy as np
import torch

from mfr.errors import CheckpointError, MfrError
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
) -> dict[str, int]:
    """Write the ``mfr mask`` layout for every full face of ``src`` whose identity has at least
    ``min_images`` images; see the module docstring."""
    from tqdm import tqdm

    from mfr.data.gan_data import list_identity_images, read_rgb
    from mfr.io import atomic_write, check_separate_folders

    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise MfrError(f"{src}: source dataset folder not found")
    check_separate_folders(src, dst)
    generator, segmenter, opts = load_generator(model_path)
    if segmenter is None:
        raise CheckpointError(f"{model_path}: checkpoint has no segmenter to write mask labels")
    jobs = [
        (identity, path)
        for identity, files in list_identity_images(src).items()
        if len(files) >= min_images
        for path in files
    ]
    if not jobs:
        raise MfrError(f"{src}: no images in identity folders (expected SRC/<identity>/<image>)")
    rows: list[tuple[str, str, int]] = []
    counts = {"generated": 0, "existing": 0, "skipped": 0}
    pending: list[tuple[str, Path]] = []

    def targets(identity: str, path: Path) -> tuple[Path, Path, Path]:
        return (
            dst / identity / path.name,
            dst / identity / "masked" / path.name,
            dst / "_labels" / identity / f"{path.stem}.png",
        )

    def flush() -> None:
        images, kept = [], []
        for identity, path in pending:
            try:
                images.append(read_rgb(path))
                kept.append((identity, path))
            except MfrError as error:
                log.warning("skipping %s", error)
                counts["skipped"] += 1
        pending.clear()
        if not images:
            return
        outputs, labels = generate_masked(generator, segmenter, images, opts["size"], composite)
        for (identity, path), out, label in zip(kept, outputs, labels, strict=True):
            full_t, masked_t, label_t = targets(identity, path)
            with atomic_write(full_t, "wb") as handle, open(path, "rb") as source:
                shutil.copyfileobj(source, handle)
            with atomic_write(label_t, "wb") as handle:
                handle.write(_encode(label, ".png"))
            with atomic_write(masked_t, "wb") as handle:
                handle.write(_encode(out, path.suffix))
            rows.append((f"{identity}/{path.name}", identity, 0))
            rows.append((f"{identity}/masked/{path.name}", identity, 1))
            counts["generated"] += 1

    for identity, path in tqdm(jobs, desc="gan generate", unit="img", disable=not progress):
        full_t, masked_t, label_t = targets(identity, path)
        if full_t.is_file() and masked_t.is_file() and label_t.is_file():
            rows.append((f"{identity}/{path.name}", identity, 0))
            rows.append((f"{identity}/masked/{path.name}", identity, 1))
            counts["existing"] += 1
            continue
        pending.append((identity, path))
        if len(pending) >= batch_size:
            flush()
    flush()

    rows.sort()
    with atomic_write(dst / "manifest.csv", "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["path", "identity", "domain"])
        writer.writerows(rows)
    if (src / "landmarks.npz").is_file():
        with (
            atomic_write(dst / "landmarks.npz", "wb") as handle,
            open(src / "landmarks.npz", "rb") as source,
        ):
            shutil.copyfileobj(source, handle)
    if counts["skipped"]:
        log.warning("%s: skipped %d unreadable images", src, counts["skipped"])
    return counts
