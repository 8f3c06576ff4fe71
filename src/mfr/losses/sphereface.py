"""SphereFace / A-Softmax (Liu et al., CVPR 2017), multiplicative angular margin m = 4.

Class centres are L2-normalised, features are not: logit_j = ``|f| cos(theta_j)``, and the
target logit is ``|f| (lambda cos(theta_y) + psi(theta_y)) / (1 + lambda)`` with
``psi(theta) = (-1)^k cos(m theta) - 2k`` for ``theta`` in ``[k pi/m, (k+1) pi/m]``.

``lambda`` anneals as in the authors' Caffe layer (margin_inner_product):
``lambda = max(lambda_min, base * (1 + gamma * it)^-power)`` with base 1000, gamma 0.12,
power 1, lambda_min 5, where ``it`` counts training forward calls (incremented before use, so
the first call has it = 1). The counter is a buffer, so a resumed run continues the schedule
exactly. ``lambda_min = base = 0`` gives the pure A-Softmax target ``|f| psi(theta)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mfr.losses._base import NONNEGATIVE, ClassCenterFC, RecognitionLoss, check_inputs


def cos_multiple_angle(cos_t: torch.Tensor, m: int) -> torch.Tensor:
    """``cos(m theta)`` from ``cos(theta)`` by the multiple-angle formula (finite gradients)."""
    sin2 = 1.0 - cos_t * cos_t
    out = torch.zeros_like(cos_t)
    for n in range(m // 2 + 1):  # m is a small constant (4), not a batch dimension
        out = out + (-1) ** n * math.comb(m, 2 * n) * cos_t ** (m - 2 * n) * sin2**n
    return out


def sphereface_margin(
    logits: torch.Tensor,
    labels: torch.Tensor,
    norms: torch.Tensor,
    margin: int,
    lam: float | torch.Tensor,
) -> torch.Tensor:
    """Turn ``|f| cos`` (B, C) and the feature norms (B,) into A-Softmax logits."""
    rows = torch.arange(len(labels), device=labels.device)
    norm_t = norms.clamp_min(1e-12)
    cos_t = logits[rows, labels] / norm_t
    with torch.no_grad():
        theta = torch.acos(cos_t.clamp(-1.0, 1.0))
        k = torch.floor(theta * margin / math.pi).clamp(0, margin - 1)
    psi = (1.0 - 2.0 * (k % 2)) * cos_multiple_angle(cos_t, margin) - 2.0 * k
    lam = torch.as_tensor(lam, dtype=logits.dtype, device=logits.device)
    target = (lam * cos_t + psi) / (1.0 + lam)
    return logits.index_put((rows, labels), norm_t * target)


class SphereFaceLoss(RecognitionLoss):
    """Cross-entropy of A-Softmax logits with the usual lambda annealing."""

    label = "SphereFace"
    option_ranges = {name: NONNEGATIVE for name in ("base", "gamma", "power", "lambda_min")}

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        margin: int = 4,
        base: float = 1000.0,
        gamma: float = 0.12,
        power: float = 1.0,
        lambda_min: float = 5.0,
    ):
        super().__init__(num_classes, embedding_dim)
        self.margin = int(margin)
        self.base = float(base)
        self.gamma = float(gamma)
        self.power = float(power)
        self.lambda_min = float(lambda_min)
        self.fc = ClassCenterFC(num_classes, embedding_dim, normalized=True)
        self.register_buffer("iteration", torch.zeros((), dtype=torch.int64))

    def current_lambda(self) -> torch.Tensor:
        """``lambda`` for the current value of the iteration counter (a 0-d tensor, no sync)."""
        it = self.iteration.to(torch.float64)
        lam = self.base * (1.0 + self.gamma * it) ** (-self.power)
        return lam.clamp_min(self.lambda_min)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc.scaled_products(features)

    def forward(self, features, labels, domains=None):
        check_inputs(features, labels)
        if self.training:
            self.iteration += 1
        logits = sphereface_margin(
            self.fc.scaled_products(features),
            labels,
            torch.linalg.vector_norm(features, dim=1),
            self.margin,
            self.current_lambda(),
        )
        return F.cross_entropy(logits, labels)
