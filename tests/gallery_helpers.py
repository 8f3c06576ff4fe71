"""Tiny models and images shared by the gallery, API and export tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn


class TinyEmbedder(nn.Module):
    """A 2-conv net: NCHW [-1, 1] -> (B, dim); BatchNorm in eval mode to test its export."""

    def __init__(self, dim: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1),
            nn.BatchNorm2d(8),
            nn.PReLU(8),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
        )
        self.head = nn.Linear(64, dim)

    def forward(self, x):
        return self.head(self.features(x))


def tiny_model(seed: int = 0, dim: int = 16) -> TinyEmbedder:
    torch.manual_seed(seed)
    model = TinyEmbedder(dim).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        model.features[1].running_mean.uniform_(-0.2, 0.2)
        model.features[1].running_var.uniform_(0.5, 2.0)
    return model


def tiny_onnx(path: Path, seed: int = 0, dim: int = 16, size: int = 32, threshold=None) -> Path:
    """Export a seeded tiny model to ``path`` with mfr metadata."""
    from mfr.export import export_onnx

    meta = {"input_size": size, "embedding_dim": dim, "backbone": "tiny", "threshold": threshold}
    return export_onnx(tiny_model(seed, dim), meta, path)


_ALIGNED_FACE: list[np.ndarray] = []


def aligned_face() -> np.ndarray:
    """A real aligned 112 x 112 face (matplotlib's Grace Hopper through ``align_face``)."""
    if not _ALIGNED_FACE:
        from test_align import grace_hopper

        from mfr.align.align import align_face

        _ALIGNED_FACE.append(align_face(grace_hopper(200)).image)
    return _ALIGNED_FACE[0]


def face_like(rng: np.random.Generator, identity: int, size: int = 112) -> np.ndarray:
    """A synthetic aligned crop of 'identity': a real aligned face (aligned crops must hold an
    upright face) blended with an identity-specific smooth colour pattern, plus noise."""
    base = np.random.default_rng(1000 + identity).integers(0, 256, (4, 4, 3)).astype(np.float32)
    import cv2

    pattern = cv2.resize(base, (size, size), interpolation=cv2.INTER_CUBIC)
    face = cv2.resize(aligned_face(), (size, size), interpolation=cv2.INTER_AREA)
    image = 0.6 * face.astype(np.float32) + 0.4 * pattern
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_png(path: Path, image: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def run_mfr(capsys, *args) -> tuple[int, str, str]:
    """Run ``mfr ARGS`` in-process: (exit status, stdout, stderr)."""
    from mfr.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err
