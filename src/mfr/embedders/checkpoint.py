"""mfr recognizer checkpoints, read for inference: the one reader of the ``.pt`` format.

A checkpoint is one dict of tensors and plain values (``torch.load(..., weights_only=True)``):
``format`` ("mfr-recognizer"), ``version``, ``backbone``, ``embedding_dim``, ``input_size``,
``head``, ``model`` (backbone state dict), ``loss`` (name) and optionally ``threshold`` (a
verification threshold, cosine similarity) and ``operating_point``; training adds
``loss_state``, ``optimizer``, ``scheduler``, ``step``, ``config`` and ``rng``
(``mfr.train.checkpoint`` writes them and resumes from them through :func:`read_checkpoint`).

Errors: a file that is not such a checkpoint, or whose fields or weights do not fit, is a
``CheckpointError`` naming the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mfr.errors import CheckpointError
from mfr.io import load_torch

FORMAT = "mfr-recognizer"
VERSION = 1
METADATA_KEYS = (
    "backbone", "embedding_dim", "input_size", "head", "loss", "step", "threshold",
    "operating_point",
)  # fmt: skip


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and check a recognizer checkpoint; anything else is a ``CheckpointError``."""
    path = Path(path)
    checkpoint = load_torch(path, "an mfr checkpoint (.pt)")
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else None
        kind = f"format {found!r}" if found else "no mfr format tag"
        raise CheckpointError(f"{path}: not an mfr recognizer checkpoint ({kind})")
    check_metadata(checkpoint, path)
    if checkpoint.get("version", 0) > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {checkpoint['version']} is newer than this mfr "
            f"understands ({VERSION})"
        )
    return checkpoint


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_metadata(
    checkpoint: dict[str, Any], path: str | Path, required: tuple[str, ...] = ()
) -> None:
    """Every metadata field present (and each of ``required``), checked for type and range:
    a hand-edited checkpoint fails here naming the field, not deep inside model building."""
    import math

    def bad(key: str, want: str) -> CheckpointError:
        return CheckpointError(
            f"{path}: field {key!r} must be {want}, got {checkpoint.get(key)!r}"
            + ("" if key in checkpoint else " (missing)")
        )

    present = set(checkpoint) | set(required)
    if "version" in present and (
        not _is_int(checkpoint.get("version")) or checkpoint["version"] < 1
    ):
        raise bad("version", "a positive integer")
    if "model" in present:
        model = checkpoint.get("model")
        if not isinstance(model, dict) or not model:
            raise bad("model", "a state dict of tensors")
        if not all(isinstance(v, torch.Tensor) for v in model.values()):
            raise CheckpointError(f"{path}: field 'model' must hold only tensors")
    if "backbone" in present and (
        not isinstance(checkpoint.get("backbone"), str) or not checkpoint["backbone"]
    ):
        raise bad("backbone", "a backbone name")
    for key in ("embedding_dim", "input_size"):
        if key in present and (not _is_int(checkpoint.get(key)) or checkpoint[key] < 1):
            raise bad(key, "a positive integer")
    for key in ("head", "loss"):
        if checkpoint.get(key) is not None and not isinstance(checkpoint[key], str):
            raise bad(key, "a name (text) or absent")
    if "step" in checkpoint and (not _is_int(checkpoint["step"]) or checkpoint["step"] < 0):
        raise bad("step", "a non-negative integer")
    threshold = checkpoint.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not math.isfinite(threshold)
        or not -1.0 <= threshold <= 1.0
    ):
        raise bad("threshold", "a cosine similarity in [-1, 1] or absent")
    if "config" in checkpoint and not isinstance(checkpoint["config"], dict):
        raise bad("config", "a mapping of options")


def build_model_from_checkpoint(
    checkpoint: dict[str, Any], path: str | Path, expect_backbone: str | None = None
) -> torch.nn.Module:
    """The backbone named in ``checkpoint`` with its weights loaded (clear error on mismatch)."""
    from mfr.errors import ConfigError
    from mfr.nets.backbones import build_backbone

    check_metadata(checkpoint, path, required=("model", "backbone", "embedding_dim", "input_size"))
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


def dlib_resnet_model():
    """dlib's descriptor weights in the ``dlib-resnet`` backbone, with checkpoint metadata."""
    from mfr.align.dlib_models import model_path
    from mfr.nets.backbones import DLIB_RESNET, build_backbone

    model = build_backbone(DLIB_RESNET, embedding_dim=128, input_size=112)
    model.load_dlib_weights(model_path("descriptor"))
    metadata = {"backbone": DLIB_RESNET, "embedding_dim": 128, "input_size": 112,
                "head": model.head_name, "loss": "none", "step": 0, "threshold": None,
                "operating_point": None}  # fmt: skip
    return model.eval(), metadata
