import torch

from mfr.nets.unet import MaskSegmenter, UNet


def test_unet_maps_images_to_same_size_logits():
    net = UNet(3, 1, base=4, depth=2)
    assert net(torch.zeros(2, 3, 16, 16)).shape == (2, 1, 16, 16)


def test_keep_map_is_zero_on_mask_and_one_elsewhere():
    seg = MaskSegmenter(size=16, base=4, depth=2).eval()
    # logit +5 on the left half ("mask"), -5 on the right half
    logits = torch.full((1, 1, 16, 16), -5.0)
    logits[..., :8] = 5.0
    seg.mask_logits = lambda images: logits.expand(len(images), -1, -1, -1)  # type: ignore
    keep = seg.keep_map(torch.zeros(2, 3, 16, 16))
    assert keep.shape == (2, 1, 16, 16)
    assert torch.equal(keep[..., :8], torch.zeros(2, 1, 16, 8))
    assert torch.equal(keep[..., 8:], torch.ones(2, 1, 16, 8))
    assert not keep.requires_grad


def test_segmenter_resizes_any_input_to_its_size_and_back():
    seg = MaskSegmenter(size=16, base=4, depth=2).eval()
    assert seg.mask_logits(torch.zeros(1, 3, 24, 24)).shape == (1, 1, 24, 24)
    assert seg.keep_map(torch.zeros(3, 3, 8, 8)).shape == (3, 1, 8, 8)
