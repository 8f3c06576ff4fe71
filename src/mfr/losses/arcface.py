"""ArcFace / additive angular margin (Deng et al., CVPR 2019): ``s * cos(theta_y + m)``.

Features and class centres are L2-normalised; the target cosine becomes ``cos(theta + m)``
(m = 0.5 rad) and every logit is scaled by ``s`` (64). As in insightface, the target logit
stays monotonic in theta: where ``theta + m`` would pass pi (``cos theta <= cos(pi - m)``), it
is ``cos theta - m sin m`` instead; with ``easy_margin=True`` the margin applies only where
``cos theta > 0`` (elsewhere the plain cosine). ``logits()`` gives ``s * cos``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mfr.losses._base import NONNEGATIVE, POSITIVE, ClassCenterFC, RecognitionLoss, check_inputs


def arcface_margin(
    scaled_cosine: torch.Tensor,
    labels: torch.Tensor,
    scale: float,
    margin: float,
    easy_margin: bool = False,
) -> torch.Tensor:
    """Turn ``s * cos`` (B, C) into ArcFace logits (the target column gets the angular margin)."""
    rows = torch.arange(len(labels), device=labels.device)
    cos_t = scaled_cosine[rows, labels] / scale
    # clamp keeps the gradient finite (zero) at |cos| = 1.
    sin_t = (1.0 - cos_t * cos_t).clamp_min(1e-12).sqrt()
    cos_t_m = cos_t * math.cos(margin) - sin_t * math.sin(margin)
    if easy_margin:
        target = torch.where(cos_t > 0, cos_t_m, cos_t)
    else:
        threshold = math.cos(math.pi - margin)
        target = torch.where(cos_t > threshold, cos_t_m, cos_t - margin * math.sin(margin))
    return scaled_cosine.index_put((rows, labels), scale * target)


class ArcFaceLoss(RecognitionLoss):
    """Cross-entropy of ArcFace logits (s=64, m=0.5 rad)."""

    label = "ArcFace"
    option_ranges = {"scale": POSITIVE, "margin": NONNEGATIVE}

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        scale: float = 64.0,
        margin: float = 0.5,
        easy_margin: bool = False,
    ):
        super().__init__(num_classes, embedding_dim)
        self.scale = float(scale)
        self.margin = float(margin)
        self.easy_margin = bool(easy_margin)
        self.fc = ClassCenterFC(num_classes, embedding_dim, normalized=True)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features, self.scale)

    def forward(self, features, labels, domains=None):
        check_inputs(features, labels)
        logits = arcface_margin(
            self.fc(features, self.scale), labels, self.scale, self.margin, self.easy_margin
        )
        return F.cross_entropy(logits, labels)
