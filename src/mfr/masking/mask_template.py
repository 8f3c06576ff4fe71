"""A mask template: a premultiplied RGBA image and its six anchors (built-in or from a folder)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class MaskTemplate:
    """A mask image: ``premultiplied`` RGBA (H x W x 4 uint8, colour already multiplied by
    alpha) and its six ``anchors`` a..f (6 x 2, template pixels)."""

    name: str
    premultiplied: np.ndarray
    anchors: np.ndarray

    @classmethod
    def from_rgba(cls, name: str, rgba: np.ndarray, anchors) -> MaskTemplate:
        """Build from a straight (not premultiplied) RGBA uint8 image."""
        rgba = np.asarray(rgba)
        alpha = rgba[..., 3:4].astype(np.float32) / 255.0
        colour = np.round(rgba[..., :3].astype(np.float32) * alpha).astype(np.uint8)
        premultiplied = np.ascontiguousarray(np.dstack([colour, rgba[..., 3]]))
        return cls(name, premultiplied, np.asarray(anchors, dtype=np.float64).reshape(6, 2))
