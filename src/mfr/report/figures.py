"""Image grids for reports: top-k retrievals of masked probes (the paper's Fig. 8)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mfr.eval.embeddings import l2_normalise

GREEN, RED, WHITE = (40, 170, 60), (210, 40, 40), (255, 255, 255)


def top_k_matches(
    embeddings: np.ndarray, domains: np.ndarray, probes: list[int], k: int = 5
) -> list[list[tuple[int, float]]]:
    """For each probe row, the ``k`` most cosine-similar full-face rows as (row, similarity)."""
    normed = l2_normalise(embeddings)
    gallery = np.flatnonzero(domains == 0)
    scores = normed[probes] @ normed[gallery].T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [[(int(gallery[j]), float(scores[i, j])) for j in order[i]] for i in range(len(probes))]


def _tile(image: np.ndarray, size: int, border: tuple[int, int, int] | None) -> Image.Image:
    tile = Image.fromarray(image).convert("RGB").resize((size, size), Image.BILINEAR)
    if border is not None:
        ImageDraw.Draw(tile).rectangle([0, 0, size - 1, size - 1], outline=border, width=4)
    return tile


def retrieval_grid(
    images: list[np.ndarray],
    identities: list[str],
    rows: list[tuple[int, list[tuple[int, float]]]],
    tile: int = 96,
) -> Image.Image:
    """One row per probe: the probe, then its matches boxed green (same identity) or red."""
    columns = 1 + max((len(matches) for _, matches in rows), default=0)
    label = 14
    canvas = Image.new("RGB", (columns * (tile + 4), len(rows) * (tile + label + 4)), WHITE)
    draw = ImageDraw.Draw(canvas)
    for r, (probe, matches) in enumerate(rows):
        y = r * (tile + label + 4)
        canvas.paste(_tile(images[probe], tile, None), (0, y))
        draw.text((2, y + tile), f"probe {identities[probe]}"[:18], fill=(0, 0, 0))
        for c, (row, score) in enumerate(matches, start=1):
            same = identities[row] == identities[probe]
            canvas.paste(_tile(images[row], tile, GREEN if same else RED), (c * (tile + 4), y))
            draw.text((c * (tile + 4) + 2, y + tile), f"{score:.2f}", fill=(0, 0, 0))
    return canvas


def save_png(image: Image.Image, path: str | Path) -> Path:
    """Write a PIL image as PNG atomically."""
    from mfr.io import atomic_write

    with atomic_write(path, "wb") as handle:
        image.save(handle, format="PNG", optimize=True)
    return Path(path)
