"""Softmax + center loss (Wen, Zhang, Li & Qiao, "A Discriminative Feature Learning Approach
for Deep Face Recognition", ECCV 2016).

``L_C = 1/(2B) * sum_i |f_i - c_{y_i}|^2`` on the raw features (as in the authors' Caffe layer,
which divides by the batch size). Total: ``CE(softmax) + weight * L_C`` with ``weight``
(the paper's lambda) 0.01 by default; Wen et al. use 0.003-0.01 for faces.

Centres are buffers updated by the paper's rule (its eq. 4), not by the optimiser: after the loss
is computed, for every class ``j`` in the batch,
``c_j <- c_j - alpha * sum_{i: y_i = j} (c_j - f_i) / (1 + n_j)`` (``alpha`` = 0.5), detached.
Centres start at zero.
"""

from __future__ import annotations

import torch

from mfr.losses._base import (
    NONNEGATIVE,
    UNIT,
    RecognitionLoss,
    check_inputs,
    gather_across_ranks,
    group_means,
)
from mfr.losses.softmax import SoftmaxLoss


class CenterLoss(RecognitionLoss):
    """``CE + weight * L_C`` with centres updated by Wen et al.'s rule (rate ``alpha``)."""

    label = "Center Loss"
    option_ranges = {"weight": NONNEGATIVE, "alpha": UNIT}

    def __init__(
        self, num_classes: int, embedding_dim: int, weight: float = 0.01, alpha: float = 0.5
    ):
        super().__init__(num_classes, embedding_dim)
        self.weight = float(weight)
        self.alpha = float(alpha)
        self.softmax = SoftmaxLoss(num_classes, embedding_dim)
        self.register_buffer("centers", torch.zeros(num_classes, embedding_dim))

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.softmax.logits(features)

    def center_term(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``L_C`` with the centres as they stand (no gradient into the centres)."""
        diff = features - self.centers[labels]
        return diff.pow(2).sum() / (2 * features.shape[0])

    @torch.no_grad()
    def update_centers(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Wen et al.'s eq. 4 for the classes of the batch."""
        keys, feats = gather_across_ranks(labels, features.detach().to(self.centers.dtype))
        classes, counts, means = group_means(keys, feats)
        centers = self.centers[classes]
        # sum_{i: y_i=j} (c_j - f_i) = n_j (c_j - mean_j)
        delta = counts[:, None] * (centers - means) / (1 + counts[:, None])
        self.centers.index_copy_(0, classes, centers - self.alpha * delta)

    def forward(self, features, labels, domains=None):
        check_inputs(features, labels)
        loss = self.softmax(features, labels) + self.weight * self.center_term(features, labels)
        if self.training:
            self.update_centers(features, labels)
        return loss
