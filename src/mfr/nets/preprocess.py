"""Image <-> network tensor conversion shared by every model: float32 NCHW in [-1, 1]."""

from __future__ import annotations

import numpy as np
import torch


def images_to_tensor(images: np.ndarray | list[np.ndarray]) -> torch.Tensor:
    """RGB uint8 images (N x H x W x 3 array or list of equal-size arrays) -> N x 3 x H x W."""
    batch = np.ascontiguousarray(np.stack(images) if isinstance(images, list) else images)
    if batch.ndim != 4 or batch.shape[-1] != 3 or batch.dtype != np.uint8:
        raise ValueError(f"expected uint8 N x H x W x 3 images, got {batch.dtype} {batch.shape}")
    tensor = torch.from_numpy(batch).permute(0, 3, 1, 2).float()
    return tensor.div_(127.5).sub_(1.0)


def tensor_to_images(tensor: torch.Tensor) -> np.ndarray:
    """N x 3 x H x W tensor in [-1, 1] -> RGB uint8 N x H x W x 3 (clipped, rounded)."""
    scaled = (tensor.detach().float().clamp(-1, 1) + 1.0) * 127.5
    return scaled.round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
