"""Apply a trained segmenter to image files: label PNGs (255 on the mask, 0 elsewhere)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mfr.errors import MfrError
from mfr.nets.unet import MaskSegmenter

log = logging.getLogger(__name__)


def predict_images(model: MaskSegmenter, images: list[np.ndarray]) -> list[np.ndarray]:
    """RGB uint8 images of any sizes -> uint8 masks (255 = mask) at each image's own size."""
    import cv2

    from mfr.data.images import resize_square
    from mfr.train.segmenter import predict_masks

    if not images:
        return []
    batch = np.stack([resize_square(image, model.size) for image in images])
    masks = predict_masks(model, batch)
    return [
        cv2.resize(mask * 255, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
        for mask, image in zip(masks, images, strict=True)
    ]


def predict_folder(model: MaskSegmenter, src: Path, dst: Path, batch_size: int = 16):
    """Label PNG per image of ``src`` (file or folder) into ``dst``; returns (written, skipped)."""
    from PIL import Image
    from tqdm import tqdm

    from mfr.data.images import read_image as read_rgb
    from mfr.data.layout import is_image_path
    from mfr.io import atomic_write, check_separate_folders

    src, dst = Path(src), Path(dst)
    if src.exists():
        check_separate_folders(src, dst)
    if src.is_file():
        files, base = [src], src.parent
    elif src.is_dir():
        files = sorted(p for p in src.rglob("*") if is_image_path(p))
        base = src
    else:
        raise MfrError(f"{src}: no such file or folder")
    written = skipped = 0
    for start in tqdm(range(0, len(files), batch_size), desc="seg predict", unit="batch"):
        chunk, images = [], []
        for path in files[start : start + batch_size]:
            try:
                images.append(read_rgb(path))
                chunk.append(path)
            except MfrError as error:
                log.warning("skipping %s", error)
                skipped += 1
        for path, mask in zip(chunk, predict_images(model, images), strict=True):
            target = (dst / path.relative_to(base)).with_suffix(".png")
            with atomic_write(target, "wb") as handle:
                Image.fromarray(mask).save(handle, format="PNG")
            written += 1
    if skipped:
        log.warning("%s: skipped %d unreadable images", src, skipped)
    return written, skipped
