"""The recognition backbones by name, and what every backbone provides.

``build_backbone(name, embedding_dim=512, input_size=112, head=None, dropout=0.0)`` returns a
:class:`Backbone`: an ``nn.Module`` mapping float32 images (B, 3, input_size, input_size) in
[-1, 1] (:func:`mfr.nets.preprocess.images_to_tensor`) to embeddings (B, embedding_dim),
not normalised (losses and embedders normalise).

Each backbone is listed once, in ``_FACTORIES`` (name -> ``"module:function"`` under
``mfr.nets``); a factory takes ``(embedding_dim, input_size, head, dropout)`` and raises
:class:`mfr.errors.ConfigError` for options it cannot honour. ResNets: :mod:`mfr.nets.resnet`;
``dlib-resnet`` (dlib's face ResNet on a fixed chip, 128-d): :mod:`mfr.nets.dlib_resnet`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Protocol, runtime_checkable

import torch

from mfr.errors import ConfigError

DLIB_RESNET = "dlib-resnet"

_FACTORIES = {
    "resnet_tiny": "resnet:resnet_tiny",
    "resnet18": "resnet:resnet18",
    "resnet34": "resnet:resnet34",
    "resnet50": "resnet:resnet50",
    DLIB_RESNET: "dlib_resnet:dlib_backbone",
}
BACKBONES = tuple(_FACTORIES)


@runtime_checkable
class Backbone(Protocol):
    """What the trainer, checkpoints, embedders and ONNX export rely on in a backbone.

    - ``head_name``: the name of the embedding head actually built (``flatten``, ``gap``,
      ``dlib-chip``, ...); checkpoints store it as ``head`` and pass it back to the factory,
      so a factory must accept its own ``head_name`` as ``head``;
    - ``embedding_dim``: D, the length of one embedding;
    - ``input_size``: S, the side in pixels of the square input;
    - ``forward(images)``: (B, 3, S, S) float in [-1, 1] -> (B, D) float, not normalised;
      it must also run in train mode with batches of 2 or more (BatchNorm) and export to ONNX.
    """

    head_name: str
    embedding_dim: int
    input_size: int

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


def build_backbone(
    name: str,
    embedding_dim: int = 512,
    input_size: int = 112,
    head: str | None = None,
    dropout: float = 0.0,
) -> torch.nn.Module:
    """The backbone ``name`` (one of ``BACKBONES``) as a :class:`Backbone` ``nn.Module``.

    Unknown names and options the backbone cannot honour raise :class:`ConfigError`.
    """
    if name not in _FACTORIES:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    module, _, factory = _FACTORIES[name].partition(":")
    return getattr(import_module(f"mfr.nets.{module}"), factory)(
        embedding_dim, input_size, head, dropout
    )
