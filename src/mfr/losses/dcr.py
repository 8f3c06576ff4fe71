"""Domain Constrained Ranking (Geng et al., ACM MM 2020, section 4.2, eqs. 8-12).

Two centres per identity, one per domain (0 = full face, 1 = masked), kept as buffers and
moved by momentum (eq. 12), never by the optimiser. Features are L2-normalised inside the loss
and every distance is Euclidean (not squared). One call, on a batch of features ``f_i`` with
identity ``l_i`` and domain ``x_i``:

1. every centre ``C_x^l`` never observed before and present in the batch is set to the mean
   of the batch features of identity ``l`` and domain ``x``;
2. the loss is computed with the centres as they now stand (constants, no gradient):

   * single-domain (eq. 8): ``max(|C_x^l - f_i| + alpha_s - min_j |C_x^l - f_j|, 0)`` with j
     over the batch samples of domain x and another identity; 0 when there is none;
   * cross-domain (eqs. 9-10): ``max(max_j |f_i - f_j| + alpha_c - min_m |f_i - C_x^m|, 0)``
     with j over the batch samples of identity l in the other domain, and m over the other
     identities present in the batch (either domain) that already have a domain-x centre;
     0 when either set is empty;
   * result (eq. 11): mean over the batch of ``single + gamma * cross``;

3. every centre seen in the batch moves by eq. 12:
   ``C <- beta C + (1 - beta) mean(batch features of that identity and domain)`` (detached).

Steps 1 and 3 run in training mode only (like BatchNorm statistics), so ``model.eval()``
never moves the centres. Everything is vectorised over the batch: pairwise distance matrices
and masks, per-centre batch means by one matrix product, centre gathers and ``index_copy_``
writes; nothing scales with the number of classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mfr.losses._base import (
    NONNEGATIVE,
    UNIT,
    RecognitionLoss,
    check_inputs,
    gather_across_ranks,
    group_means,
    pairwise_distance,
)
from mfr.losses.softmax import SoftmaxLoss

FULL, MASKED = 0, 1


def _masked_min(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise min of ``values`` over ``mask`` and whether the row had any entry."""
    inf = values.new_tensor(float("inf"))
    return torch.where(mask, values, inf).amin(dim=1), mask.any(dim=1)


def _masked_max(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise max of ``values`` over ``mask`` and whether the row had any entry."""
    ninf = values.new_tensor(float("-inf"))
    return torch.where(mask, values, ninf).amax(dim=1), mask.any(dim=1)


def _hinge(value: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``max(value, 0)`` where valid, 0 elsewhere (and no NaN gradient from the infinities)."""
    return torch.where(valid, F.relu(torch.where(valid, value, 0.0)), 0.0)


class DCRLoss(RecognitionLoss):
    """The DCR term alone (the trainer adds the softmax cross-entropy; see ``SoftmaxDCRLoss``).

    Buffers: ``centers`` (num_classes, 2, D), ``[:, 0]`` full-face and ``[:, 1]`` masked
    centres; ``initialized`` (num_classes, 2) bool, whether each centre has been observed.
    ``use_single`` / ``use_cross`` switch the two terms off for the paper's ablation (Table 4).
    """

    label = "DCR"
    option_ranges = {"alpha_s": NONNEGATIVE, "alpha_c": NONNEGATIVE, "gamma": NONNEGATIVE,
                     "beta": UNIT}  # fmt: skip
    requires_both_domains = True

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        alpha_s: float = 0.7,
        alpha_c: float = 0.5,
        gamma: float = 0.75,
        beta: float = 0.5,
        use_single: bool = True,
        use_cross: bool = True,
    ):
        super().__init__(num_classes, embedding_dim)
        self.alpha_s = float(alpha_s)
        self.alpha_c = float(alpha_c)
        self.gamma = float(gamma)
        self.beta = float(beta)
        self.use_single = bool(use_single)
        self.use_cross = bool(use_cross)
        self.register_buffer("centers", torch.zeros(num_classes, 2, embedding_dim))
        self.register_buffer("initialized", torch.zeros(num_classes, 2, dtype=torch.bool))

    @property
    def full_centers(self) -> torch.Tensor:
        """(num_classes, D) full-face centres ``C_f``."""
        return self.centers[:, FULL]

    @property
    def masked_centers(self) -> torch.Tensor:
        """(num_classes, D) masked-face centres ``C_m``."""
        return self.centers[:, MASKED]

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Negative distance to each identity's full-face centre (a nearest-centre classifier)."""
        f = F.normalize(features.float(), dim=1)
        return -pairwise_distance(f, self.centers[:, FULL])

    def forward(self, features, labels, domains):
        check_inputs(features, labels)
        if domains is None or domains.shape != labels.shape:
            raise ValueError("DCR needs a domain (0 full, 1 masked) for every sample")
        with torch.autocast(features.device.type, enabled=False):
            return self._forward(features.float(), labels.long(), domains.long())

    def _forward(self, features, labels, domains):
        f = F.normalize(features, dim=1)
        num, dim = self.centers.shape[0] * 2, self.centers.shape[2]
        centers = self.centers.view(num, dim)
        initialized = self.initialized.view(num)
        key = labels * 2 + domains  # row of each sample's own centre C_{x_i}^{l_i}

        if self.training:
            with torch.no_grad():
                # (1) centres never observed before start at the batch mean of their
                # identity and domain.
                # Under DDP the means are over the batches of all ranks (same centres everywhere).
                seen, _, batch_mean = group_means(*gather_across_ranks(key, f.detach()))
                fresh = ~initialized[seen]
                start = torch.where(fresh[:, None], batch_mean, centers[seen])
                centers.index_copy_(0, seen, start)
                initialized.index_fill_(0, seen, True)

        # (2) the loss with the centres as they now stand (gathers copy: no aliasing with (3)).
        loss = f.new_zeros(f.shape[0])
        same_label = labels[:, None] == labels[None, :]
        same_domain = domains[:, None] == domains[None, :]
        if self.use_single:
            own = centers[key]
            d_pos = torch.linalg.vector_norm(own - f, dim=1)
            d_neg, has_neg = _masked_min(pairwise_distance(own, f), same_domain & ~same_label)
            loss = loss + _hinge(d_pos + self.alpha_s - d_neg, has_neg)
        if self.use_cross:
            d_pos, has_pos = _masked_max(pairwise_distance(f, f), same_label & ~same_domain)
            # Centres of every batch sample's identity, both domains: columns [full | masked].
            both = torch.cat([centers[labels * 2 + FULL], centers[labels * 2 + MASKED]])
            d_all = pairwise_distance(f, both)
            batch = f.shape[0]
            d_centre = torch.where(domains[:, None] == FULL, d_all[:, :batch], d_all[:, batch:])
            has_centre = initialized[labels * 2 + domains[:, None]]  # [i, j]: C_{x_i}^{l_j} set
            d_neg, has_neg = _masked_min(d_centre, ~same_label & has_centre)
            loss = loss + self.gamma * _hinge(d_pos + self.alpha_c - d_neg, has_pos & has_neg)

        if self.training:
            with torch.no_grad():
                # (3) eq. 12 for every centre seen in the batch.
                moved = self.beta * centers[seen] + (1.0 - self.beta) * batch_mean
                centers.index_copy_(0, seen, moved)
        return loss.mean()


class SoftmaxDCRLoss(RecognitionLoss):
    """Joint supervision (paper section 4.2): ``CE(softmax) + weight * DCR``."""

    label = DCRLoss.label
    option_ranges = {"weight": NONNEGATIVE, **DCRLoss.option_ranges}
    requires_both_domains = True

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        weight: float = 1.0,
        alpha_s: float = 0.7,
        alpha_c: float = 0.5,
        gamma: float = 0.75,
        beta: float = 0.5,
        use_single: bool = True,
        use_cross: bool = True,
    ):
        super().__init__(num_classes, embedding_dim)
        self.weight = float(weight)
        self.softmax = SoftmaxLoss(num_classes, embedding_dim)
        self.dcr = DCRLoss(
            num_classes, embedding_dim, alpha_s, alpha_c, gamma, beta, use_single, use_cross
        )

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.softmax.logits(features)

    def forward(self, features, labels, domains):
        return self.softmax(features, labels) + self.weight * self.dcr(features, labels, domains)
