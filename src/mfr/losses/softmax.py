"""Plain softmax cross-entropy over an affine classifier (the paper's ``Softmax`` baseline)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mfr.losses._base import ClassCenterFC, RecognitionLoss, check_inputs


class SoftmaxLoss(RecognitionLoss):
    """Cross-entropy of ``f W^T + b``; the domains are ignored."""

    label = "Softmax"

    def __init__(self, num_classes: int, embedding_dim: int):
        super().__init__(num_classes, embedding_dim)
        self.fc = ClassCenterFC(num_classes, embedding_dim, normalized=False, bias=True)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features)

    def forward(self, features, labels, domains=None):
        check_inputs(features, labels)
        return F.cross_entropy(self.fc(features), labels)
