"""Recognizer training state: checkpoints saved atomically, and the RNG states to resume.

Keys: those of ``mfr.embedders.checkpoint`` (``format``, ``version``, ``backbone``,
``embedding_dim``, ``input_size``, ``head``, ``model``, ``loss``, ``threshold``) plus
``loss_state``, ``optimizer``, ``scheduler``, ``step`` (steps done; the sampler position),
``config`` (plain dict) and ``rng`` (torch / CUDA / NumPy / Python states).
Read with ``mfr.embedders.checkpoint.read_checkpoint``, the one reader (that module also
loads a model for inference: ``load_embedding_model``).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mfr.embedders.checkpoint import FORMAT, VERSION
from mfr.io import atomic_save_torch


def rng_state() -> dict[str, Any]:
    """Every RNG state that training touches, as tensors and plain values."""
    state = {
        "torch": torch.get_rng_state(),
        "numpy": _numpy_state_to_plain(np.random.get_state()),
        "python": _python_state_to_plain(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(_numpy_state_from_plain(state["numpy"]))
    random.setstate(_python_state_from_plain(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state_to_plain(state) -> dict[str, Any]:
    name, keys, pos, has_gauss, gauss = state
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "gauss": float(gauss)}  # fmt: skip


def _numpy_state_from_plain(state: dict[str, Any]):
    keys = state["keys"].numpy().astype(np.uint32)
    return (state["name"], keys, state["pos"], state["has_gauss"], state["gauss"])


def _python_state_to_plain(state) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _python_state_from_plain(state: list):
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def save_checkpoint(path: str | Path, **fields: Any) -> None:
    """Write a recognizer checkpoint atomically (``fields`` as in the module docstring)."""
    atomic_save_torch({"format": FORMAT, "version": VERSION, **fields}, path)
