"""Embedding models behind one interface, chosen by a spec string.

An embedder has ``name``, ``dim`` and ``embed(images) -> np.ndarray`` (float32, N x dim),
where ``images`` is a list of RGB uint8 arrays (H x W x 3). ``aligned`` tells whether the
images are already aligned crops (skip detection). Every embedder takes ``normalize``: True
gives L2-normalised rows (the default of trained models, ``.pt`` and ``.onnx``, and what
``mfr embed`` writes whatever the format); dlib's descriptors are raw by default (its distance
rule needs their ~1.43 length).

Modules: ``checkpoint`` (the one reader of mfr checkpoints for inference), ``network``
(:func:`~mfr.embedders.network.embed_images` and the checkpoint embedder), ``onnx``, ``dlib``,
``faces`` (a photo or crop made ready for an embedder), ``fingerprint`` (the one model
fingerprint), ``registry`` (model names, the default model), ``dataset`` (``mfr embed``:
:func:`embed_dataset`).

Specs: ``dlib`` (dlib's ResNet descriptor); ``dlib-resnet`` (dlib's weights in mfr's
``dlib-resnet`` backbone: aligned crops through a fixed chip box, no landmarks); a path to an
mfr checkpoint (``.pt``); a path to an ONNX export (``.onnx``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from mfr.embedders.dataset import dataset_faces, embed_dataset
from mfr.errors import MfrError

__all__ = [
    "BUILTIN_MODELS", "Embedder", "check_finite", "dataset_faces", "embed_dataset",
    "load_embedder",
]  # fmt: skip


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, images: list[np.ndarray], aligned: bool = True) -> np.ndarray: ...


BUILTIN_MODELS = ("dlib", "dlib-resnet")  # specs that name no file


def check_finite(features: np.ndarray, model: str, names=None) -> np.ndarray:
    """``features`` (N, D) unchanged when every value is finite; else one ``MfrError``
    naming the model (a diverged or corrupt one gives NaN for every face) and, when
    ``names`` (N,) is given, the first image concerned."""
    features = np.asarray(features)
    bad = ~np.isfinite(features).all(axis=1) if features.size else np.zeros(0, bool)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        where = f", first: {names[first]}" if names is not None else ""
        raise MfrError(
            f"{model}: the model gives NaN or infinite embeddings ({int(bad.sum())} of "
            f"{len(features)} images{where}); it is corrupt or its training diverged"
        )
    return features


def load_embedder(spec: str, **options) -> Embedder:
    """Build the embedder named by ``spec`` (see the module docstring); ``options`` go to its
    constructor (e.g. ``normalize``). Raises ``MfrError`` for an unknown spec, and the
    embedder's own ``CheckpointError`` for a file it cannot load."""
    if spec == "dlib":
        from mfr.embedders.dlib import DlibEmbedder

        return DlibEmbedder(**options)
    if spec == "dlib-resnet":
        from mfr.embedders.network import CheckpointEmbedder

        return CheckpointEmbedder(spec, **options)
    path = Path(spec)
    if path.suffix == ".onnx":
        from mfr.embedders.onnx import OnnxEmbedder

        return OnnxEmbedder(path, **options)
    if path.suffix in {".pt", ".pth", ".ckpt"}:
        from mfr.embedders.network import CheckpointEmbedder

        return CheckpointEmbedder(path, **options)
    raise MfrError(
        f"unknown model {spec!r}: use 'dlib', 'dlib-resnet', a checkpoint (.pt) or an ONNX file"
    )
