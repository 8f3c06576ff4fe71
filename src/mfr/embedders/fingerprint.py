"""A model's fingerprint: a SHA-256 of its weights, the one identity of a model in mfr.

Recorded in every gallery it enrols, in ONNX exports and in ``mfr embed``'s resume file.

Only the weights count, so re-saving a checkpoint with a calibrated threshold, or exporting it
to ONNX (the export records the checkpoint's fingerprint), keeps its galleries usable.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from mfr.errors import CheckpointError


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def state_dict_fingerprint(state: dict) -> str:
    """Hash of a state dict's names, dtypes, shapes and bytes (in name order)."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name]
        digest.update(name.encode())
        if isinstance(tensor, torch.Tensor):
            tensor = tensor.detach().cpu().contiguous()
            digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            digest.update(repr(tensor).encode())
    return "sha256:" + digest.hexdigest()


def checkpoint_fingerprint(path: str | Path) -> str:
    """Fingerprint of an mfr checkpoint's ``model`` state dict (read by
    ``mfr.embedders.checkpoint.read_checkpoint``: ``CheckpointError`` for any other file)."""
    from mfr.embedders.checkpoint import read_checkpoint

    path = Path(path)
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint.get("model"), dict):
        raise CheckpointError(f"{path}: not an mfr checkpoint (no 'model' state dict)")
    return state_dict_fingerprint(checkpoint["model"])


def onnx_fingerprint(path: str | Path) -> str:
    """The fingerprint recorded at export, else a hash of the graph's initializers."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    props = {p.key: p.value for p in proto.metadata_props}
    if props.get("mfr.fingerprint"):
        return props["mfr.fingerprint"]
    digest = hashlib.sha256()
    for init in sorted(proto.graph.initializer, key=lambda t: t.name):
        digest.update(init.name.encode())
        digest.update(numpy_helper.to_array(init).tobytes())
    return "sha256:" + digest.hexdigest()


@cache
def dlib_fingerprint() -> str:
    """Hash of dlib's face descriptor model file."""
    from mfr.align.dlib_models import model_path

    return _file_hash(model_path("descriptor"))


def model_fingerprint(spec: str) -> str:
    """Fingerprint of the model named by an embedder spec (``dlib``, ``.pt``, ``.onnx``)."""
    if spec == "dlib":
        return dlib_fingerprint()
    if spec == "dlib-resnet":  # dlib's weights behind mfr's fixed chip: other embeddings
        return "dlib-resnet:" + dlib_fingerprint()
    if Path(spec).suffix == ".onnx":
        return onnx_fingerprint(spec)
    return checkpoint_fingerprint(spec)
