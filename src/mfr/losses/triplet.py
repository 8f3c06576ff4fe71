"""Softmax + batch-hard triplet loss (Hermans, Beyer & Leibe, "In Defense of the Triplet Loss").

For each anchor ``a`` of the batch: the hardest positive ``p`` (same identity, largest
distance) and the hardest negative ``n`` (other identity, smallest distance) give
``max(d(a, p) - d(a, n) + margin, 0)``; the triplet term is the mean over anchors that have
both a positive and a negative (0 when none has). Distances are Euclidean, on L2-normalised
features by default (``normalize=False`` uses the raw features, as Hermans et al. do).
Total: ``CE(softmax) + weight * triplet``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mfr.losses._base import NONNEGATIVE, RecognitionLoss, check_inputs, pairwise_distance
from mfr.losses.softmax import SoftmaxLoss


def batch_hard_triplet(
    features: torch.Tensor, labels: torch.Tensor, margin: float, normalize: bool = True
) -> torch.Tensor:
    """The batch-hard triplet term (mean over anchors with a positive and a negative)."""
    if normalize:
        features = F.normalize(features, dim=1)
    dist = pairwise_distance(features, features)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos_mask = same & ~eye
    neg_mask = ~same
    hardest_pos = torch.where(pos_mask, dist, dist.new_tensor(float("-inf"))).amax(dim=1)
    hardest_neg = torch.where(neg_mask, dist, dist.new_tensor(float("inf"))).amin(dim=1)
    valid = pos_mask.any(dim=1) & neg_mask.any(dim=1)
    per_anchor = F.relu(hardest_pos - hardest_neg + margin)
    per_anchor = torch.where(valid, per_anchor, torch.zeros_like(per_anchor))
    return per_anchor.sum() / valid.sum().clamp_min(1)


class TripletLoss(RecognitionLoss):
    """``CE + weight * batch_hard_triplet`` (margin 0.3 by default)."""

    label = "Softmax+Triplet"
    option_ranges = {"margin": NONNEGATIVE, "weight": NONNEGATIVE}

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        margin: float = 0.3,
        weight: float = 1.0,
        normalize: bool = True,
    ):
        super().__init__(num_classes, embedding_dim)
        self.margin = float(margin)
        self.weight = float(weight)
        self.normalize = bool(normalize)
        self.softmax = SoftmaxLoss(num_classes, embedding_dim)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.softmax.logits(features)

    def forward(self, features, labels, domains=None):
        check_inputs(features, labels)
        triplet = batch_hard_triplet(features, labels, self.margin, self.normalize)
        return self.softmax(features, labels) + self.weight * triplet
