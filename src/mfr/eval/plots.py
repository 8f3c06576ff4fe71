"""CMC and ROC curves as PNG files (matplotlib, Agg backend), written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mfr.io import atomic_write


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, plt.subplots(figsize=(5, 4), dpi=100)


def _save(plt, fig, path: Path) -> None:
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)


def plot_cmc(cmc: np.ndarray, path: str | Path, max_rank: int = 50, title: str = "") -> None:
    """CMC curve (identification rate in % against rank 1..max_rank)."""
    plt, (fig, ax) = _figure()
    ranks = np.arange(1, min(max_rank, len(cmc)) + 1)
    ax.plot(ranks, 100 * cmc[: len(ranks)], marker="o", markersize=3)
    ax.set_xlabel("rank")
    ax.set_ylabel("identification rate (%)")
    ax.set_ylim(0, 100)
    ax.set_xlim(1, max(ranks[-1], 2))
    ax.grid(alpha=0.3)
    ax.set_title(title or "CMC: masked probes vs full-face gallery")
    _save(plt, fig, Path(path))


def plot_roc(far: np.ndarray, tar: np.ndarray, path: str | Path, title: str = "") -> None:
    """ROC curve (TAR against FAR, FAR on a log axis where it is positive)."""
    plt, (fig, ax) = _figure()
    positive = far > 0
    if positive.any():
        ax.step(far[positive], 100 * tar[positive], where="post")
        ax.set_xscale("log")
        ax.set_xlim(max(far[positive].min(), 1e-5), 1)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3, which="both")
    ax.set_title(title or "ROC: pair verification")
    _save(plt, fig, Path(path))
