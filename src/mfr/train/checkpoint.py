"""Recognizer checkpoints: one dict of tensors and plain values, saved atomically.

Keys: ``format`` ("mfr-recognizer"), ``version``, ``backbone``, ``embedding_dim``,
``input_size``, ``head``, ``model`` (backbone state dict), ``loss`` (name), ``loss_state``,
``optimizer``, ``scheduler``, ``step`` (steps done; the sampler position), ``config`` (plain
dict), ``rng`` (torch / CUDA / NumPy / Python states) and optionally ``threshold`` (a
verification threshold calibrated by ``mfr eval``, cosine similarity).
Load with :func:`read_checkpoint` (``weights_only=True``) or, for inference,
:func:`load_embedding_model`.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mfr.errors import CheckpointError
from mfr.io import atomic_save_torch

FORMAT = "mfr-recognizer"
VERSION = 1
METADATA_KEYS = (
    "backbone", "embedding_dim", "input_size", "head", "loss", "step", "threshold",
    "operating_point",
)  # fmt: skip


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


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and check a recognizer checkpoint; anything else is a ``CheckpointError``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a non-checkpoint file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({reason})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else None
        kind = f"format {found!r}" if found else "no mfr format tag"
        raise CheckpointError(f"{path}: not an mfr recognizer checkpoint ({kind})")
    if checkpoint.get("version", 0) > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {checkpoint['version']} is newer than this mfr "
            f"understands ({VERSION})"
        )
    return checkpoint


def build_model_from_checkpoint(
    checkpoint: dict[str, Any], path: str | Path, expect_backbone: str | None = None
) -> torch.nn.Module:
    """The backbone named in ``checkpoint`` with its weights loaded (clear error on mismatch)."""
    from mfr.errors import ConfigError
    from mfr.nets.backbones import build_backbone

    name = checkpoint.get("backbone")
    if expect_backbone is not None and name != expect_backbone:
        raise CheckpointError(
            f"{path}: checkpoint holds a {name} backbone, but {expect_backbone} was asked for"
        )
    try:
        model = build_backbone(
            name,
            embedding_dim=checkpoint["embedding_dim"],
            input_size=checkpoint["input_size"],
            head=checkpoint.get("head"),
        )
    except (ConfigError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: cannot rebuild its backbone ({error})") from None
    try:
        model.load_state_dict(checkpoint["model"])
    except (RuntimeError, KeyError) as error:
        first = str(error).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else (first[0] if first else "")
        raise CheckpointError(
            f"{path}: weights do not fit a {name} backbone "
            f"(embedding {checkpoint['embedding_dim']}, input {checkpoint['input_size']}): "
            f"{detail}"
        ) from None
    return model


def load_embedding_model(path: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """``(model in eval mode, metadata)``: the model maps [-1, 1] NCHW at ``input_size`` to
    ``(B, embedding_dim)`` embeddings (not normalised). Metadata holds ``backbone``,
    ``embedding_dim``, ``input_size``, ``head``, ``loss``, ``step``, ``threshold`` and
    ``operating_point`` (or None) and ``config``."""
    checkpoint = read_checkpoint(path)
    model = build_model_from_checkpoint(checkpoint, path).eval()
    metadata = {key: checkpoint.get(key) for key in METADATA_KEYS}
    metadata["config"] = checkpoint.get("config", {})
    return model, metadata
