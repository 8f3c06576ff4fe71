"""Backbones: output shapes for every name and input size, head choice, errors."""

from __future__ import annotations

import pytest
import torch

from mfr.errors import ConfigError
from mfr.nets.backbones import BACKBONES, build_backbone


@pytest.mark.parametrize("size", [16, 32])
def test_tiny_backbone_maps_small_inputs_to_embedding_dim(size):
    net = build_backbone("resnet_tiny", embedding_dim=24, input_size=size).eval()
    out = net(torch.rand(3, 3, size, size) * 2 - 1)
    assert out.shape == (3, 24)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", [n for n in BACKBONES if n not in ("resnet_tiny", "dlib-resnet")])
@pytest.mark.parametrize("size", [64, 96, 112])
def test_paper_backbones_give_512_d_embeddings_at_each_size(name, size):
    with torch.device("meta"):  # shapes only: no weight init, no arithmetic
        net = build_backbone(name, input_size=size).eval()
        out = net(torch.zeros(2, 3, size, size))
    assert out.shape == (2, 512)
    assert net.feature_size == {64: 4, 96: 6, 112: 7}[size]


def test_backbone_trains_in_batch_mode_and_channels_last():
    net = build_backbone("resnet_tiny", embedding_dim=8, input_size=32)
    net = net.to(memory_format=torch.channels_last)
    images = (torch.rand(4, 3, 32, 32) * 2 - 1).contiguous(memory_format=torch.channels_last)
    net(images).square().mean().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_resnet50_uses_global_pool_head_and_basic_nets_flatten():
    with torch.device("meta"):
        gap = build_backbone("resnet50", input_size=64)
        flat = build_backbone("resnet18", input_size=64, embedding_dim=32)
    assert isinstance(gap.head[1], torch.nn.AdaptiveAvgPool2d)
    linear = [m for m in flat.head if isinstance(m, torch.nn.Linear)][0]
    assert linear.in_features == 512 * 4 * 4


def test_unknown_backbone_or_head_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown backbone 'resnet101'"):
        build_backbone("resnet101")
    with pytest.raises(ConfigError, match="head"):
        build_backbone("resnet18", head="gdc")


@pytest.mark.parametrize("name", BACKBONES)
def test_every_backbone_provides_the_documented_interface(name):
    from mfr.nets.backbones import Backbone

    dim = 128 if name == "dlib-resnet" else 24
    with torch.device("meta"):  # shapes only
        net = build_backbone(name, embedding_dim=dim, input_size=64)
        again = build_backbone(name, embedding_dim=dim, input_size=64, head=net.head_name)
        out = net.eval()(torch.zeros(2, 3, 64, 64))
    assert isinstance(net, Backbone) and isinstance(net, torch.nn.Module)
    assert (net.embedding_dim, net.input_size, out.shape) == (dim, 64, (2, dim))
    assert again.head_name == net.head_name and isinstance(net.head_name, str)
