"""A recognizer prepared for inference only: :func:`inference_copy`.

Embedding is most of an evaluation's time on a CPU (a fine-tuning cell of ``mfr experiment``
embeds ~7,700 faces). Two changes that leave every embedding the same up to float rounding
make dlib's ResNet embed 1.49x faster on 2 CPU cores (100 -> 150 img/s,
``benchmarks/bench_embed.py``):

- **folding**: a per-channel scale and shift that follows a convolution (dlib's ``affine``
  layers, eval-mode BatchNorm) is multiplied into that convolution's weights and bias, so it
  costs nothing (dlib's ResNet: :meth:`~mfr.nets.dlib_resnet.DlibFaceResNet.fold_affines`;
  mfr's ResNets: ``torch.nn.utils.fusion``, conv/linear + BatchNorm);
- **channels-last** memory: oneDNN's convolutions run faster on NHWC tensors on x86 CPUs.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def inference_copy(model: nn.Module) -> nn.Module:
    """An eval-mode, gradient-free copy of ``model`` with its per-channel scale layers folded
    into the convolutions before them and its weights in channels-last memory.

    Folded: dlib's ``affine`` layers (:meth:`~mfr.nets.dlib_resnet.DlibFaceResNet.fold_affines`)
    and a BatchNorm that directly follows a conv (2-d) or linear layer (1-d) in an
    ``nn.Sequential`` (``torch.nn.utils.fusion``), the layout of mfr's ResNets; anything else
    is kept as it is. ``model`` itself is not changed. The copy maps the same (B, 3, S, S)
    float32 input to the same (B, D) output up to float32 rounding (relative <= 1e-5), in
    either memory format; channels-last inputs run fastest on CPU (on a GPU the layout is
    untested here). A copy of a copy is the same copy.
    """
    from mfr.nets.dlib_resnet import DlibFaceResNet

    copied = copy.deepcopy(model).eval().requires_grad_(False)
    for module in list(copied.modules()):
        if isinstance(module, DlibFaceResNet):
            module.fold_affines()
        elif isinstance(module, nn.Sequential):
            _fold_batchnorms(module)
    return copied.to(memory_format=torch.channels_last)


def _fold_batchnorms(sequence: nn.Sequential) -> None:
    from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

    pairs = {(nn.Conv2d, nn.BatchNorm2d): fuse_conv_bn_eval,
             (nn.Linear, nn.BatchNorm1d): fuse_linear_bn_eval}  # fmt: skip
    names = list(sequence._modules)
    for first, second in zip(names, names[1:]):
        layer, norm = sequence._modules[first], sequence._modules[second]
        for (layer_kind, norm_kind), fuse in pairs.items():
            if type(layer) is layer_kind and type(norm) is norm_kind:
                sequence._modules[first] = fuse(layer, norm)
                sequence._modules[second] = nn.Identity()
