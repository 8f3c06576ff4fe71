"""Tiny self-made identity-folder datasets for the training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_dataset(root: Path, identities: int = 6, per_identity: int = 4, masked: int = 2,
                 size: int = 24, seed: int = 0) -> Path:  # fmt: skip
    """``root/<id>/<n>.png`` faces with an identity-specific pattern; ``masked`` twins each
    under ``root/<id>/masked/`` (lower half grey, as a crude mask)."""
    rng = np.random.default_rng(seed)
    for identity in range(identities):
        base = rng.integers(0, 256, (size, size, 3))
        folder = root / f"person_{identity:02d}"
        (folder / "masked").mkdir(parents=True, exist_ok=True)
        for n in range(per_identity):
            noise = rng.integers(-20, 21, (size, size, 3))
            image = np.clip(base + noise, 0, 255).astype(np.uint8)
            Image.fromarray(image).save(folder / f"{n}.png")
            if n < masked:
                image = image.copy()
                image[size // 2 :] = 128
                Image.fromarray(image).save(folder / "masked" / f"{n}.png")
    return root


def tiny_overrides(data: Path, **extra) -> list[str]:
    """--set options for a seconds-long run of the tiny net."""
    values = {
        "data": str(data), "backbone": "resnet_tiny", "input_size": 16, "embedding_dim": 16,
        "p": 3, "k": 4, "steps": 6, "lr": 1e-3, "workers": 0, "log_every": 2,
        "checkpoint_every": 3, "device": "cpu",
    }  # fmt: skip
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]
