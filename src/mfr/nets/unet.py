"""UNet mask segmenter and the frozen ``S`` map the IAMGAN multiplies faces with.

Convention: :class:`UNet` outputs one logit per pixel for "this pixel is mask".
:meth:`MaskSegmenter.keep_map` turns that into the paper's ``S(x)``: a binary map that is
**0 on the mask and 1 elsewhere**, so ``x * S(x)`` keeps only the out-of-mask face.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Ronneberger-style UNet: ``depth`` poolings, widths ``base * 2**level``, bilinear upsampling.

    Input N x in_channels x H x W (H, W divisible by ``2**depth``), output N x out_channels x H x W
    logits.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 1, base: int = 16, depth: int = 4):
        super().__init__()
        widths = [base * 2**level for level in range(depth + 1)]
        self.depth = depth
        self.down = nn.ModuleList([_double_conv(in_channels, widths[0])])
        self.down.extend(_double_conv(widths[i], widths[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(
            _double_conv(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, block in enumerate(self.down):
            if level > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


class MaskSegmenter(nn.Module):
    """A UNet plus the input size it was trained at; works on any image size by resizing."""

    def __init__(self, size: int = 128, base: int = 16, depth: int = 4):
        super().__init__()
        self.size = size
        self.base = base
        self.unet_depth = depth
        self.unet = UNet(3, 1, base=base, depth=depth)

    def mask_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Images N x 3 x H x W in [-1, 1] -> mask logits N x 1 x H x W (at the input size)."""
        height, width = images.shape[-2:]
        x = images
        if (height, width) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        logits = self.unet(x)
        if (height, width) != (self.size, self.size):
            logits = F.interpolate(
                logits, size=(height, width), mode="bilinear", align_corners=False
            )
        return logits

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.mask_logits(images)

    @torch.no_grad()
    def predict_mask(self, images: torch.Tensor) -> torch.Tensor:
        """Binary mask-region map (1 = mask), float N x 1 x H x W, no gradient."""
        return (self.mask_logits(images) > 0).float()

    @torch.no_grad()
    def keep_map(self, images: torch.Tensor) -> torch.Tensor:
        """The paper's ``S(x)``: 0 on the mask, 1 elsewhere (float N x 1 x H x W, no gradient)."""
        return 1.0 - self.predict_mask(images)
