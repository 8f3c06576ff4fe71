"""The CycleGAN image pool (Shrivastava et al. 2017): D sees a history of generated images."""

from __future__ import annotations

import numpy as np
import torch


class ImagePool:
    """Holds up to ``size`` generated images; each query returns, per image, either the image
    itself or (with probability 1/2 once the pool is full) a stored one that it replaces.

    The random choices come from a seeded generator whose state is part of :meth:`state_dict`,
    so a resumed run makes the same choices.
    """

    def __init__(self, size: int = 50, seed: int = 0):
        self.size = size
        self.images: list[torch.Tensor] = []
        self.rng = np.random.default_rng(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif self.rng.random() > 0.5:
                index = int(self.rng.integers(0, self.size))
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        stored = torch.cat(self.images, 0) if self.images else torch.zeros(0)
        return {"images": stored, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        stored = state["images"]
        self.images = [stored[i : i + 1].clone() for i in range(len(stored))] if stored.ndim else []
        self.rng.bit_generator.state = state["rng"]
