"""Training, evaluation and checkpoints of the mask segmenter S (a UNet; see ``mfr.nets.unet``)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mfr.errors import CheckpointError, ConfigError
from mfr.io import load_torch
from mfr.nets.unet import MaskSegmenter
from mfr.train.options import options_dict

log = logging.getLogger(__name__)

SEG_FORMAT = "mfr-segmenter"
SEG_VERSION = 1


@dataclass
class SegOptions:
    """Segmenter training options (``mfr/configs/seg-*.yaml``)."""

    data: str = "mask-seg"  # relative to the data root, or an absolute path
    extra_label_roots: list[str] = field(default_factory=list)  # `mfr mask` outputs (_labels/)
    size: int = 128
    base_channels: int = 16
    depth: int = 4
    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    dice_weight: float = 1.0
    flip: bool = True
    recolor: float = 0.0  # probability of repainting the mask region in a random colour
    zoom: float = 1.0  # random crops of zoom..1 of the side (tight-crop faces); 1 = off
    seed: int = 0
    threads: int = 0  # 0 = torch default
    out: str = "runs/seg"

    def validate(self, source: str) -> None:
        if self.size % 2**self.depth:
            raise ConfigError(f"{source}: size {self.size} must be divisible by 2**depth")
        for name in ("size", "base_channels", "depth", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{source}: option '{name}' must be >= 1")
        if self.lr <= 0:
            raise ConfigError(f"{source}: option 'lr' must be > 0")


def resolve_data(path: str) -> Path:
    """``path`` as given when absolute or present, else relative to the data root."""
    from mfr.paths import data_root

    candidate = Path(path).expanduser()
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return data_root() / candidate


# --------------------------------------------------------------------------- losses and metrics


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss ``1 - (2|P∩T| + eps) / (|P| + |T| + eps)`` per image, averaged."""
    prob = torch.sigmoid(logits).flatten(1)
    target = target.flatten(1)
    inter = (prob * target).sum(1)
    return (1 - (2 * inter + eps) / (prob.sum(1) + target.sum(1) + eps)).mean()


def seg_loss(logits: torch.Tensor, target: torch.Tensor, dice_weight: float) -> torch.Tensor:
    """BCE with logits (+ ``dice_weight`` x soft Dice)."""
    loss = F.binary_cross_entropy_with_logits(logits, target)
    return loss + dice_weight * dice_loss(logits, target) if dice_weight else loss


def mask_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """IoU of the mask class over all pixels of the split, mean per-image IoU, pixel accuracy.

    ``pred`` and ``target`` are N x H x W arrays of 0/1. An image with an empty union counts
    as IoU 1 in the per-image mean.
    """
    pred, target = pred.astype(bool), target.astype(bool)
    inter = (pred & target).reshape(len(pred), -1).sum(1)
    union = (pred | target).reshape(len(pred), -1).sum(1)
    per_image = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    return {
        "iou": float(inter.sum() / max(union.sum(), 1)),
        "mean_image_iou": float(per_image.mean()) if len(pred) else 0.0,
        "pixel_accuracy": float((pred == target).mean()) if pred.size else 0.0,
        "images": int(len(pred)),
    }


def recolor_mask(image: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Repaint the mask pixels in ``colour`` (RGB 0-255), keeping their relative shading."""
    out = image.copy()
    region = mask.astype(bool)
    if not region.any():
        return out
    lum = image[region].astype(np.float32).mean(1)
    shade = lum / max(float(lum.mean()), 1.0)
    out[region] = np.clip(shade[:, None] * colour[None, :], 0, 255).astype(np.uint8)
    return out


def augment_pairs(
    images: np.ndarray, masks: np.ndarray, rng: np.random.Generator, recolor: float, zoom: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mask-seg shows light-blue surgical masks on loosely cropped faces; real masked faces
    (the IAMGAN's M) wear masks of every colour in tight crops. Random recolouring of the mask
    region and random zoomed crops close part of that gap."""
    import cv2

    images, masks = images.copy(), masks.copy()
    size = images.shape[1]
    for i in range(len(images)):
        if rng.random() < recolor:
            images[i] = recolor_mask(
                images[i], masks[i], rng.integers(0, 256, 3).astype(np.float32)
            )
        if zoom < 1:
            side = int(round(size * rng.uniform(zoom, 1.0)))
            top, left = rng.integers(0, size - side + 1, 2)
            crop = (slice(top, top + side), slice(left, left + side))
            images[i] = cv2.resize(images[i][crop], (size, size), interpolation=cv2.INTER_LINEAR)
            masks[i] = cv2.resize(masks[i][crop], (size, size), interpolation=cv2.INTER_NEAREST)
    return images, masks


@torch.no_grad()
def predict_masks(model: MaskSegmenter, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """uint8 N x H x W x 3 images -> uint8 N x H x W masks (1 = mask) at the images' size."""
    from mfr.nets.preprocess import images_to_tensor

    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = images_to_tensor(images[start : start + batch_size])
        out.append(model.predict_mask(x)[:, 0].to(torch.uint8).numpy())
    return np.concatenate(out) if out else np.zeros(images.shape[:3], np.uint8)


# --------------------------------------------------------------------------- checkpoints


def save_segmenter(
    model: MaskSegmenter, path: Path, *, options: dict | None = None, extra: dict | None = None
) -> None:
    from mfr.io import atomic_save_torch

    payload = {
        "format": SEG_FORMAT,
        "version": SEG_VERSION,
        "size": model.size,
        "base_channels": model.base,
        "depth": model.unet_depth,
        "state_dict": model.state_dict(),
        "options": options or {},
    }
    payload.update(extra or {})
    atomic_save_torch(payload, path)


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def read_checkpoint(path: Path, expected_format: str, what: str) -> dict:
    """``torch.load(weights_only=True)`` and check the format tag; CheckpointError otherwise."""
    path = Path(path)
    payload = load_torch(path, f"{_article(what)} {what} checkpoint (.pt)")
    found = payload.get("format") if isinstance(payload, dict) else None
    if found != expected_format:
        raise CheckpointError(
            f"{path}: not {_article(what)} {what} checkpoint "
            f"(format {found!r}, expected {expected_format!r})"
        )
    return payload


def load_segmenter(path: Path) -> MaskSegmenter:
    """Load a segmenter checkpoint (eval mode)."""
    payload = read_checkpoint(path, SEG_FORMAT, "segmenter")
    model = MaskSegmenter(payload["size"], payload["base_channels"], payload["depth"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not fit the segmenter ({error})") from None
    return model.eval()


# --------------------------------------------------------------------------- training


def load_training_pairs(opts: SegOptions) -> tuple[np.ndarray, np.ndarray]:
    from mfr.data.gan_data import load_mask_layout_pairs, load_seg_split

    images, masks = load_seg_split(resolve_data(opts.data), "train", opts.size)
    for root in opts.extra_label_roots:
        extra_images, extra_masks = load_mask_layout_pairs(Path(root), opts.size)
        log.info("%s: %d extra labelled images", root, len(extra_images))
        images = np.concatenate([images, extra_images])
        masks = np.concatenate([masks, extra_masks])
    return images, masks


def evaluate_split(model: MaskSegmenter, data: Path, split: str = "test") -> dict[str, float]:
    """Mask IoU and pixel accuracy of ``model`` on ``data/split`` at the model's size."""
    from mfr.data.gan_data import load_seg_split

    images, masks = load_seg_split(Path(data), split, model.size)
    return mask_metrics(predict_masks(model, images), masks)


def train_segmenter(opts: SegOptions, resume: bool = False, progress: bool = True) -> dict:
    """Train S; writes ``last.pt`` (with optimizer state, resumable) and ``best.pt`` to ``out``.

    Returns ``{"best_iou", "history", "out"}`` (one history record per epoch: mean loss, the
    test split's mask metrics, seconds). Raises ``ConfigError`` when there are no training
    images, ``MfrError`` for a missing data folder or an unusable checkpoint."""
    from mfr.data.gan_data import load_seg_split

    if opts.threads:
        torch.set_num_threads(opts.threads)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(opts.seed)
    images, masks = load_training_pairs(opts)
    if len(images) == 0:
        raise ConfigError(f"{resolve_data(opts.data)}: no training images found")
    test_images, test_masks = load_seg_split(resolve_data(opts.data), "test", opts.size)
    model = MaskSegmenter(opts.size, opts.base_channels, opts.depth)
    optimizer = torch.optim.Adam(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=opts.epochs)
    rng = np.random.default_rng(opts.seed)
    start_epoch, best_iou, history = 0, -1.0, []
    last_path = out / "last.pt"
    if resume and last_path.is_file():
        state = read_checkpoint(last_path, SEG_FORMAT, "segmenter")
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        start_epoch, best_iou, history = state["epoch"], state["best_iou"], state["history"]
        log.info("resumed from %s at epoch %d", last_path, start_epoch)

    for epoch in range(start_epoch, opts.epochs):
        began = time.time()
        loss = _train_epoch(model, optimizer, images, masks, rng, opts)
        scheduler.step()
        metrics = mask_metrics(predict_masks(model, test_images), test_masks)
        record = {"epoch": epoch + 1, "loss": loss, **metrics, "secs": time.time() - began}
        history.append(record)
        if progress:
            print(
                f"epoch {epoch + 1}/{opts.epochs} loss {record['loss']:.4f} "
                f"test IoU {metrics['iou']:.4f} acc {metrics['pixel_accuracy']:.4f} "
                f"({record['secs']:.0f}s)",
                flush=True,
            )
        extra = {"epoch": epoch + 1, "test_iou": metrics["iou"]}
        if metrics["iou"] > best_iou:
            best_iou = metrics["iou"]
            save_segmenter(model, out / "best.pt", options=options_dict(opts), extra=extra)
        resume_state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
        _save_last(out, model, opts, {**extra, **resume_state}, rng, best_iou, history)
    return {"best_iou": best_iou, "history": history, "out": str(out)}


def _train_epoch(model, optimizer, images, masks, rng: np.random.Generator, opts) -> float:
    """One pass over the training pairs in a random order (flips and augmentation drawn from
    ``rng``); returns the mean loss per image."""
    from mfr.nets.preprocess import images_to_tensor

    model.train()
    total, count = 0.0, 0
    order = rng.permutation(len(images))
    for start in range(0, len(order), opts.batch_size):
        idx = order[start : start + opts.batch_size]
        batch, target = images[idx].copy(), masks[idx].copy()
        if opts.flip:
            flip = rng.random(len(idx)) < 0.5
            batch[flip], target[flip] = batch[flip, :, ::-1], target[flip, :, ::-1]
        if opts.recolor > 0 or opts.zoom < 1:
            batch, target = augment_pairs(batch, target, rng, opts.recolor, opts.zoom)
        x = images_to_tensor(batch)
        y = torch.from_numpy(np.ascontiguousarray(target)).float()[:, None]
        loss = seg_loss(model(x), y, opts.dice_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total, count = total + loss.item() * len(idx), count + len(idx)
    return total / count


def _save_last(out: Path, model, opts, extra: dict, rng, best_iou: float, history) -> None:
    """``OUT/last.pt`` with what a resumed run needs (``extra``: epoch, test IoU, optimizer and
    scheduler state; the RNG states are taken here) and ``OUT/history.json``."""
    import json

    from mfr.io import atomic_write

    save_segmenter(
        model,
        out / "last.pt",
        options=options_dict(opts),
        extra={
            **extra,
            "rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "best_iou": best_iou,
            "history": history,
        },
    )
    with atomic_write(out / "history.json", "w") as handle:
        json.dump(history, handle, indent=1)
