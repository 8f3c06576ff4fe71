"""Shared pieces of the recognition losses: the loss base class and the class-centre FC.

Every loss is an ``nn.Module`` with ``forward(features, labels, domains) -> scalar`` (the total
training loss, classification cross-entropy included where the loss has one) and
``logits(features) -> (B, num_classes)`` for training accuracy. All state lives in parameters
and buffers, so ``state_dict`` round-trips resume bit-identically.

In the spirit of insightface ``arcface_torch``, the class-centre weight (:class:`ClassCenterFC`)
is kept apart from the small margin functions that turn cosines into logits (one per loss file).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Range:
    """The allowed values of a numeric loss option: ``low`` (inclusive, or exclusive when
    ``open_low``) up to ``high`` (inclusive; None: unbounded)."""

    low: float
    high: float | None = None
    open_low: bool = False

    def violation(self, value: float) -> str | None:
        """``"must be ..."`` when ``value`` is outside the range, else None."""
        if self.high is not None:
            inside = self.low <= value <= self.high
            return None if inside else f"must be in [{self.low:g}, {self.high:g}]"
        if self.open_low:
            return None if value > self.low else f"must be > {self.low:g}"
        return None if value >= self.low else f"must be >= {self.low:g}"


NONNEGATIVE = Range(0.0)
POSITIVE = Range(0.0, open_low=True)
UNIT = Range(0.0, 1.0)


class RecognitionLoss(nn.Module):
    """Base class: a training loss over ``(features, labels, domains)``.

    A subclass names itself in tables with ``label`` and declares the allowed values of its
    float options in ``option_ranges`` (option name -> :class:`Range`); its options are the
    keyword arguments of ``__init__`` after ``num_classes`` and ``embedding_dim``, with
    defaults. Integer options must be >= 1 and booleans true or false (checked from the
    defaults by :func:`mfr.losses.registry.build_loss`).
    """

    #: The loss's name in result tables (the paper's row label).
    label: ClassVar[str] = ""
    #: Allowed values of the float options; an option not listed takes any finite number.
    option_ranges: ClassVar[dict[str, Range]] = {}
    #: The trainer refuses a dataset without masked images when this is True.
    requires_both_domains: bool = False

    def __init__(self, num_classes: int, embedding_dim: int):
        super().__init__()
        self.num_classes = int(num_classes)
        self.embedding_dim = int(embedding_dim)

    def logits(self, features: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(
        self, features: torch.Tensor, labels: torch.Tensor, domains: torch.Tensor | None = None
    ) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class ClassCenterFC(nn.Module):
    """The class-centre weight ``W`` (num_classes x embedding_dim) of a classifier.

    ``normalized=True`` returns cosines ``<f/|f|, w/|w|>`` (margin losses);
    ``normalized=False`` returns the plain affine logits ``f W^T + b`` (softmax).
    """

    def __init__(self, num_classes: int, embedding_dim: int, normalized: bool, bias: bool = False):
        super().__init__()
        self.normalized = normalized
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        self.bias = nn.Parameter(torch.zeros(num_classes)) if bias else None
        if normalized:
            nn.init.normal_(self.weight, std=0.01)
        else:
            # nn.Linear's default initialisation.
            nn.init.kaiming_uniform_(self.weight, a=5**0.5)
            if self.bias is not None:
                bound = 1.0 / embedding_dim**0.5
                nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, features: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        if not self.normalized:
            return F.linear(features, self.weight, self.bias)
        return self.scaled_products(F.normalize(features, dim=1) * scale)

    def scaled_products(self, features: torch.Tensor) -> torch.Tensor:
        """``<f, w_j/|w_j|>`` for raw ``f`` (B, C).

        Dividing the (B, C) product by the class norms, instead of normalising the (C, D)
        weight, keeps the large elementwise work (and its backward) off the weight matrix.
        """
        inv_norm = torch.linalg.vector_norm(self.weight, dim=1).clamp_min(1e-12).reciprocal()
        return F.linear(features, self.weight) * inv_norm


def check_inputs(features: torch.Tensor, labels: torch.Tensor) -> None:
    """Shape checks shared by every loss (cheap; no device sync)."""
    if features.dim() != 2:
        raise ValueError(f"features must be (B, D), got shape {tuple(features.shape)}")
    if labels.shape != (features.shape[0],):
        raise ValueError(f"labels must be ({features.shape[0]},), got shape {tuple(labels.shape)}")


def pairwise_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean (not squared) distances ``|a_i - b_j|`` (B_a, B_b), with finite gradients.

    Uses ``|a|^2 + |b|^2 - 2 a.b`` (matrix products: ~10x faster than ``torch.cdist``'s exact
    mode on CPU, backward included); the absolute error is ~1e-7 in the squared distance, so
    only near-zero distances lose digits (there the gradient is clamped to zero).
    """
    d2 = a.pow(2).sum(1)[:, None] + b.pow(2).sum(1)[None, :] - 2.0 * (a @ b.t())
    return d2.clamp_min(1e-12).sqrt()


def group_means(
    keys: torch.Tensor, features: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distinct ``keys`` of the batch, their sample counts and the mean feature of each.

    Sums are one (U, B) x (B, D) product, so the result is deterministic on every device
    (no atomics) and the work scales with the batch, never with the number of classes.
    """
    unique, inverse = torch.unique(keys, return_inverse=True)
    members = F.one_hot(inverse, len(unique)).t().to(features.dtype)
    counts = members.sum(1)
    return unique, counts, (members @ features) / counts[:, None]


def gather_across_ranks(
    keys: torch.Tensor, features: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Under ``torch.distributed`` (world size > 1), the keys and detached features of every
    rank's batch concatenated in rank order; otherwise the inputs unchanged.

    Centre updates computed from the gathered batch are identical on every rank, so buffers
    such as the DCR and center-loss centres stay in sync under DDP. Every rank must call it
    (it is used only in training mode).
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return keys, features
    world = dist.get_world_size()
    size = torch.tensor([keys.shape[0]], device=keys.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    longest = int(max(int(s) for s in sizes))
    pad = longest - keys.shape[0]
    padded_keys = F.pad(keys, (0, pad))
    padded_feats = F.pad(features, (0, 0, 0, pad))
    all_keys = [torch.empty_like(padded_keys) for _ in range(world)]
    all_feats = [torch.empty_like(padded_feats) for _ in range(world)]
    dist.all_gather(all_keys, padded_keys)
    dist.all_gather(all_feats, padded_feats)
    keep = [slice(0, int(s)) for s in sizes]
    return (
        torch.cat([k[sl] for k, sl in zip(all_keys, keep, strict=True)]),
        torch.cat([f[sl] for f, sl in zip(all_feats, keep, strict=True)]),
    )
