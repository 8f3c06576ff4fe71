"""The distillation wiring of the recognizer trainer: a config's ``distill`` mapping ->
teacher targets for every training image and the :class:`~mfr.distill.DistillationLoss`.

The teacher embeds each image's full-face twin once (cached on disk,
:class:`~mfr.distill.TeacherCache`; under DDP rank 0 fills the cache and the others read it).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from mfr.train.config import TrainConfig, distill_options
from mfr.train.selection import TrainingData


def distillation(
    config: TrainConfig, data: TrainingData, log: Callable[[str], None], info=None
) -> tuple[np.ndarray | None, nn.Module | None]:
    """Teacher targets, float32 (N, teacher dim) row-aligned with ``data``, and the
    distillation module; ``(None, None)`` when ``config.distill`` is empty.

    Images whose twin cannot be read are left out of ``data`` (which is changed in place;
    logged with a count). Raises :class:`~mfr.errors.ConfigError` for bad distill options
    (naming the key) and the teacher loader's errors for a teacher that cannot be loaded.
    """
    if not config.distill:
        return None, None
    from mfr.distill import DistillationLoss, TeacherCache
    from mfr.train import distributed

    options = distill_options(config.distill)
    cache = TeacherCache(options.cache, options.teacher)
    log(f"teacher {options.teacher}: embedding full-face twins (cached in {cache.folder})")
    if info is not None and info.distributed and not info.is_main:
        distributed.barrier(info)  # rank 0 fills the cache first
    with torch.random.fork_rng(devices=[]):  # a cold or warm cache: the same run
        targets, valid = cache.targets(data.paths)
    if info is not None and info.distributed and info.is_main:
        distributed.barrier(info)
    distill = DistillationLoss(config.embedding_dim, targets.shape[1], **options.loss_arguments())
    log(f"teacher: {cache.stats['cached']} cached, {cache.stats['computed']} computed, "
        f"{cache.stats['no_twin']} without a full-face twin")  # fmt: skip
    if not valid.all():
        log(f"teacher: leaving out {int((~valid).sum())} images whose twin is unreadable")
        keep = np.flatnonzero(valid)
        data.paths = [data.paths[i] for i in keep]
        data.labels, data.domains = data.labels[keep], data.domains[keep]
        targets = targets[keep]
    return targets, distill
