"""Weight imprinting: a new classifier row starts at its identity's mean embedding.

Fine-tuning a pretrained face network with a fresh softmax head over thousands of identities
fails in short runs: each identity is seen a handful of times, a randomly initialised row
never becomes a class centre, the cross-entropy stays near ``ln(num_classes)`` and its
gradient only pushes the backbone around (mfr's first dlib-resnet fine-tunes logged a train
accuracy of 0.000 at every step). Imprinting (H. Qi, M. Brown, D. Lowe, "Low-Shot Learning
with Imprinted Weights", CVPR 2018) sets the row of an identity, the first time the identity
appears in a training batch, to the normalised mean of its batch embeddings, so the head is a
nearest-centre classifier of the pretrained embedding from its first step and the loss's
gradient is meaningful at once. Imprinting is lazy (no pass over the data beforehand) and
works with or without a teacher.

For a cosine head (SphereFace, CosFace, ArcFace: ``ClassCenterFC(normalized=True)``) the row
is the unit mean; the loss keeps its own scale. For the plain softmax head the row is
``scale * mean / (|mean| * mean_i |f_i|)`` and its bias 0, so its logits start as
``scale * cos(f, mean)`` for an embedding of typical length.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mfr.losses._base import ClassCenterFC, gather_across_ranks, group_means

#: Logit scale of an imprinted plain-softmax row (CosFace's s).
DEFAULT_SCALE = 30.0


def enable_imprinting(loss: nn.Module, scale: float = DEFAULT_SCALE) -> int:
    """Make every :class:`ClassCenterFC` of ``loss`` imprint its unseen rows in training.

    Registers, on each such head, a persistent bool buffer ``imprinted`` (num_classes,) (so
    checkpoints resume without imprinting a row twice) and, on ``loss``, a forward pre-hook
    that runs before each training-mode call ``loss(features, labels, ...)``: for every label
    of the batch whose row is not yet imprinted, the row is set from the batch (under DDP the
    batches of all ranks, so every rank sets the same rows). Call it before loading a
    checkpoint's loss state.

    Args:
        loss: a recognition loss module (features (B, D) float, labels (B,) int64).
        scale: logit scale of imprinted plain (non-normalised) softmax rows; > 0.

    Returns:
        The number of heads imprinting was enabled on (0 for losses without a classifier,
        such as triplet or DCR alone).

    Raises:
        ValueError: ``scale`` is not positive.
    """
    if not scale > 0:
        raise ValueError(f"imprint scale must be > 0, got {scale}")
    heads = [m for m in loss.modules() if isinstance(m, ClassCenterFC)]
    for head in heads:
        head.register_buffer(
            "imprinted",
            torch.zeros(head.weight.shape[0], dtype=torch.bool, device=head.weight.device),
        )
    if heads:

        def hook(module: nn.Module, args: tuple) -> None:
            if module.training:
                for head in heads:
                    imprint(head, args[0], args[1], scale)

        loss.register_forward_pre_hook(hook)
    return len(heads)


@torch.no_grad()
def imprint(
    head: ClassCenterFC, features: torch.Tensor, labels: torch.Tensor, scale: float
) -> None:
    """Set the not-yet-imprinted rows of ``head`` present in the batch (see the module doc).

    Args:
        head: a classifier with an ``imprinted`` buffer (:func:`enable_imprinting`).
        features: (B, D) float embeddings (detached here).
        labels: (B,) int64 identity indices in ``[0, num_classes)``.
        scale: logit scale for plain (non-normalised) heads.
    """
    labels, features = gather_across_ranks(labels.long(), features.detach().float())
    seen, _, means = group_means(labels, features)
    fresh = ~head.imprinted[seen]
    if not bool(fresh.any()):
        return
    rows = seen[fresh]
    direction = F.normalize(means[fresh], dim=1)
    if not head.normalized:
        length = features.norm(dim=1).mean().clamp_min(1e-6)
        direction = direction * (scale / length)
        if head.bias is not None:
            head.bias.index_fill_(0, rows, 0.0)
    head.weight.index_copy_(0, rows, direction.to(head.weight.dtype))
    head.imprinted.index_fill_(0, rows, True)
