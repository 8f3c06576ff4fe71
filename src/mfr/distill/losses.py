"""Distillation terms: embedding matching and relational (pairwise-similarity) matching.

The student sees full faces and their masked twins; every sample's target is the teacher's
embedding of the *full-face* twin, so a masked face is pulled towards what the teacher sees
on the unmasked face. Teacher targets are constants (cached numpy arrays): no gradient
reaches the teacher.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mfr.errors import ConfigError


def embedding_matching(student: torch.Tensor, teacher: torch.Tensor, metric: str) -> torch.Tensor:
    """Per-sample distance between L2-normalised student and teacher embeddings (same dim).

    ``cosine``: 1 - cos(s, t); ``l2``: ||s/|s| - t/|t|||^2.
    """
    s = F.normalize(student, dim=1)
    t = F.normalize(teacher, dim=1)
    if metric == "cosine":
        return 1.0 - (s * t).sum(dim=1)
    if metric == "l2":
        return (s - t).pow(2).sum(dim=1)
    raise ConfigError(f"distill metric must be 'cosine' or 'l2', got {metric!r}")


def relational_matching(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the off-diagonal cosine-similarity matrices of the batch."""
    n = student.shape[0]
    if n < 2:
        return student.sum() * 0.0
    s = F.normalize(student, dim=1)
    t = F.normalize(teacher, dim=1)
    diff = s @ s.T - t @ t.T
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=student.device)
    return diff[off_diagonal].pow(2).mean()


class DistillationLoss(nn.Module):
    """Weighted sum of embedding matching (full and masked twins) and relational matching.

    A learned linear projection maps the student's embedding to the teacher's dimension when
    they differ. Weights ramp linearly from 0 to their value over ``warmup_steps``.
    """

    def __init__(
        self,
        student_dim: int,
        teacher_dim: int,
        metric: str = "cosine",
        weight_full: float = 1.0,
        weight_masked: float = 1.0,
        weight_relational: float = 1.0,
        warmup_steps: int = 0,
    ) -> None:
        super().__init__()
        if metric not in {"cosine", "l2"}:
            raise ConfigError(f"distill metric must be 'cosine' or 'l2', got {metric!r}")
        for name, value in (
            ("weight_full", weight_full),
            ("weight_masked", weight_masked),
            ("weight_relational", weight_relational),
            ("warmup_steps", warmup_steps),
        ):
            if value < 0:
                raise ConfigError(f"distill {name} must be >= 0, got {value}")
        self.metric = metric
        self.weight_full = weight_full
        self.weight_masked = weight_masked
        self.weight_relational = weight_relational
        self.warmup_steps = warmup_steps
        self.projection = (
            nn.Identity() if student_dim == teacher_dim else nn.Linear(student_dim, teacher_dim)
        )

    def ramp(self, step: int) -> float:
        """Warm-up factor in [0, 1] at ``step`` (0-based)."""
        if self.warmup_steps <= 0:
            return 1.0
        return min(1.0, step / self.warmup_steps)

    def forward(
        self,
        features: torch.Tensor,
        teacher: torch.Tensor,
        domains: torch.Tensor,
        step: int = 0,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Return the weighted distillation loss and its parts (for logging)."""
        projected = self.projection(features)
        teacher = teacher.to(projected.dtype).detach()
        per_sample = embedding_matching(projected, teacher, self.metric)
        masked = domains.bool()
        zero = projected.sum() * 0.0
        full_term = per_sample[~masked].mean() if (~masked).any() else zero
        masked_term = per_sample[masked].mean() if masked.any() else zero
        relational = relational_matching(projected, teacher)
        total = (
            self.weight_full * full_term
            + self.weight_masked * masked_term
            + self.weight_relational * relational
        ) * self.ramp(step)
        parts = {
            "distill_full": float(full_term.detach()),
            "distill_masked": float(masked_term.detach()),
            "distill_relational": float(relational.detach()),
        }
        return total, parts
