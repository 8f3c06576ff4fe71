"""CosFace / large-margin cosine loss (Wang et al., CVPR 2018): ``s * (cos(theta_y) - m)``.

Features and class centres are L2-normalised; the margin ``m`` (0.35) is subtracted from the
target cosine and every logit is scaled by ``s`` (64). ``logits()`` gives ``s * cos`` without the
margin.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mfr.losses._base import NONNEGATIVE, POSITIVE, ClassCenterFC, RecognitionLoss, check_inputs


def cosface_margin(scaled_cosine: torch.Tensor, labels: torch.Tensor, scale: float, margin: float):
    """Turn ``s * cos`` (B, C) into CosFace logits ``s * (cos - m onehot(labels))``."""
    rows = torch.arange(len(labels), device=labels.device)
    target = scaled_cosine[rows, labels] - scale * margin
    return scaled_cosine.index_put((rows, labels), target)


class CosFaceLoss(RecognitionLoss):
    """Cross-entropy of CosFace logits (s=64, m=0.35)."""

    label = "CosFace"
    option_ranges = {"scale": POSITIVE, "margin": NONNEGATIVE}

    def __init__(
        self, num_classes: int, embedding_dim: int, scale: float = 64.0, margin: float = 0.35
    ):
        super().__init__(num_classes, embedding_dim)
        self.scale = float(scale)
        self.margin = float(margin)
        self.fc = ClassCenterFC(num_classes, embedding_dim, normalized=True)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features, self.scale)

    def forward(self, features, labels, domains=None):
        check_inputs(features, labels)
        logits = cosface_margin(self.fc(features, self.scale), labels, self.scale, self.margin)
        return F.cross_entropy(logits, labels)
