"""Face-recognition ResNets (``torch.nn`` only) with an embedding head: the backbones
``resnet_tiny``, ``resnet18``, ``resnet34`` and ``resnet50`` (:mod:`mfr.nets.backbones`).

Each maps float NCHW images in [-1, 1] (:func:`mfr.nets.preprocess.images_to_tensor`) of
``input_size`` x ``input_size`` to ``(B, embedding_dim)`` embeddings (not normalised; losses
and embedders normalise).

Layout (the "face ResNet" of ArcFace's IResNet, with He et al.'s blocks):

* stem: 3x3 conv, stride 1 (stride 2 above 128 px), BN, PReLU; no max-pool, so small faces
  keep their resolution;
* four stages, each starting with a stride-2 block: 112 px -> 7x7, 96 -> 6x6, 64 -> 4x4;
* ``resnet18`` / ``resnet34``: basic blocks [2,2,2,2] / [3,4,6,3] (64-512 channels);
  ``resnet50``: bottleneck blocks [3,4,6,3] (256-2048 channels), as in He et al. (the paper's);
  ``resnet_tiny``: basic blocks [1,1,1,1] with 8-64 channels, for tests only;
* head ``"flatten"`` (ArcFace's output layer): BN2d -> Dropout -> Flatten -> FC -> BN1d;
  head ``"gap"``: BN2d -> global average pool -> Dropout -> FC -> BN1d. The default is
  ``"flatten"`` for the basic-block nets and ``"gap"`` for ``resnet50`` (a flatten FC over
  2048 x 7 x 7 would add 51 M parameters).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mfr.errors import ConfigError


class BasicBlock(nn.Module):
    """Two 3x3 convs (pre-activation BN as in IResNet's IBasicBlock) plus a shortcut."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        out_channels = channels * self.expansion
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.PReLU(channels),
            nn.Conv2d(channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = _shortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand (x4), as in He et al.'s ResNet-50."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        out_channels = channels * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = _shortcut(in_channels, out_channels, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


@dataclass(frozen=True)
class _Spec:
    block: type[nn.Module]
    layers: tuple[int, int, int, int]
    widths: tuple[int, int, int, int]
    stem: int
    head: str


SPECS: dict[str, _Spec] = {
    "resnet_tiny": _Spec(BasicBlock, (1, 1, 1, 1), (8, 16, 32, 64), 8, "flatten"),
    "resnet18": _Spec(BasicBlock, (2, 2, 2, 2), (64, 128, 256, 512), 64, "flatten"),
    "resnet34": _Spec(BasicBlock, (3, 4, 6, 3), (64, 128, 256, 512), 64, "flatten"),
    "resnet50": _Spec(Bottleneck, (3, 4, 6, 3), (64, 128, 256, 512), 64, "gap"),
}
HEADS = ("flatten", "gap")


class FaceResNet(nn.Module):
    """A face ResNet: stem, four stride-2 stages, embedding head (see the module docstring)."""

    def __init__(
        self,
        spec: _Spec,
        embedding_dim: int = 512,
        input_size: int = 112,
        head: str | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        head = head or spec.head
        stem_stride = 2 if input_size > 128 else 1
        self.stem = nn.Sequential(
            nn.Conv2d(3, spec.stem, 3, stem_stride, 1, bias=False),
            nn.BatchNorm2d(spec.stem),
            nn.PReLU(spec.stem),
        )
        stages, in_channels = [], spec.stem
        for blocks, width in zip(spec.layers, spec.widths):
            layer = []
            for index in range(blocks):
                layer.append(spec.block(in_channels, width, 2 if index == 0 else 1))
                in_channels = width * spec.block.expansion
            stages.append(nn.Sequential(*layer))
        self.stages = nn.Sequential(*stages)
        side = -(-input_size // stem_stride)
        for _ in range(4):
            side = (side - 1) // 2 + 1  # a 3x3 (or 1x1) conv with stride 2, padding 1 (0)
        self.feature_size = side
        if head == "flatten":
            self.head = nn.Sequential(
                nn.BatchNorm2d(in_channels),
                nn.Dropout(dropout),
                nn.Flatten(),
                nn.Linear(in_channels * side * side, embedding_dim),
                nn.BatchNorm1d(embedding_dim),
            )
        else:
            self.head = nn.Sequential(
                nn.BatchNorm2d(in_channels),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
                nn.Dropout(dropout),
                nn.Linear(in_channels, embedding_dim),
                nn.BatchNorm1d(embedding_dim),
            )
        self.head_name = head
        self.embedding_dim = embedding_dim
        self.input_size = input_size
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(images)))


def _build(
    name: str, embedding_dim: int, input_size: int, head: str | None, dropout: float
) -> FaceResNet:
    if head is not None and head not in HEADS:
        raise ConfigError(f"unknown backbone head {head!r}; choose one of {', '.join(HEADS)}")
    if input_size < 16:
        raise ConfigError(f"input size {input_size} is too small for {name} (need >= 16)")
    if embedding_dim < 1:
        raise ConfigError(f"embedding dim must be positive, got {embedding_dim}")
    return FaceResNet(SPECS[name], embedding_dim, input_size, head, dropout)


def resnet_tiny(embedding_dim=512, input_size=112, head=None, dropout=0.0) -> FaceResNet:
    """Basic blocks [1,1,1,1], 8-64 channels: for tests only."""
    return _build("resnet_tiny", embedding_dim, input_size, head, dropout)


def resnet18(embedding_dim=512, input_size=112, head=None, dropout=0.0) -> FaceResNet:
    """Basic blocks [2,2,2,2], 64-512 channels, ``flatten`` head."""
    return _build("resnet18", embedding_dim, input_size, head, dropout)


def resnet34(embedding_dim=512, input_size=112, head=None, dropout=0.0) -> FaceResNet:
    """Basic blocks [3,4,6,3], 64-512 channels, ``flatten`` head."""
    return _build("resnet34", embedding_dim, input_size, head, dropout)


def resnet50(embedding_dim=512, input_size=112, head=None, dropout=0.0) -> FaceResNet:
    """Bottleneck blocks [3,4,6,3], 256-2048 channels, ``gap`` head (the paper's)."""
    return _build("resnet50", embedding_dim, input_size, head, dropout)
