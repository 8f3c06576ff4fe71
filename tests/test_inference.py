"""``mfr.nets.inference.inference_copy``: folded, channels-last copies embed like the model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mfr.nets.backbones import build_backbone
from mfr.nets.dlib_resnet import Affine
from mfr.nets.inference import inference_copy


def _randomise_scales(model: nn.Module, seed: int = 0) -> None:
    """Affine and BatchNorm layers far from identity, so folding them is really tested."""
    generator = torch.Generator().manual_seed(seed)

    def uniform(tensor, low, high):
        tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, Affine | nn.BatchNorm1d | nn.BatchNorm2d):
                uniform(module.weight, 0.5, 1.5)
                uniform(module.bias, -0.2, 0.2)
            if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
                uniform(module.running_mean, -0.2, 0.2)
                uniform(module.running_var, 0.5, 2.0)
            if isinstance(module, nn.Conv2d) and module.bias is not None:
                uniform(module.bias, -0.1, 0.1)


@pytest.mark.parametrize(
    ("name", "size", "dim", "folded_kind"),
    [("dlib-resnet", 32, 128, Affine), ("resnet_tiny", 32, 24, nn.BatchNorm2d)],
)
def test_inference_copy_folds_the_scale_layer_after_every_conv_and_embeds_like_the_model(
    name, size, dim, folded_kind
):
    model = build_backbone(name, embedding_dim=dim, input_size=size)
    _randomise_scales(model)
    model.eval()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    images = torch.rand(5, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1

    fast = inference_copy(model)

    def count(net, kind):
        return sum(isinstance(m, kind) for m in net.modules())

    # every conv of these nets is followed by a scale layer, and each of those is folded
    assert count(fast, folded_kind) == count(model, folded_kind) - count(model, nn.Conv2d)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with torch.no_grad():
        expected = model(images)
        got = fast(images.contiguous(memory_format=torch.channels_last))
        got_nchw = fast(images)
    assert got.shape == (5, dim)
    scale = expected.abs().max()
    assert (got - expected).abs().max() <= 1e-5 * scale
    assert (got_nchw - expected).abs().max() <= 1e-5 * scale


def test_inference_copy_leaves_a_training_model_training_and_needs_no_gradients():
    model = build_backbone("resnet_tiny", embedding_dim=8, input_size=16).train()
    fast = inference_copy(model)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert not fast.training and not any(p.requires_grad for p in fast.parameters())


def test_checkpoint_embedder_runs_the_folded_copy_and_embeds_like_the_unfolded_model():
    import numpy as np

    from mfr.embedders.checkpoint import dlib_resnet_model
    from mfr.embedders.network import CheckpointEmbedder, embed_images

    embedder = CheckpointEmbedder("dlib-resnet")
    assert not any(isinstance(m, Affine) for m in embedder.model.modules())
    convs = [m for m in embedder.model.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    again = inference_copy(embedder.model)  # a copy of the copy: nothing left to fold
    rng = np.random.default_rng(0)
    faces = list(rng.integers(0, 256, (4, 112, 112, 3), dtype=np.uint8))
    unfolded, _ = dlib_resnet_model()
    expected = embed_images(unfolded, faces, 112)
    assert np.abs(embedder.embed(faces) - expected).max() < 1e-5
    assert np.abs(embed_images(again, faces, 112) - expected).max() < 1e-5
