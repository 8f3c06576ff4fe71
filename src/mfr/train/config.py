"""The recognizer training config (``mfr train``) and its distillation options.

Read through the one options loader (:mod:`mfr.train.options`: YAML plus ``--set``; unknown
keys and wrong types are a :class:`~mfr.errors.ConfigError` naming the file and the key).
Keys of the mapping options are set with a dot (``--set loss_options.alpha_s=0.6``,
``--set distill.teacher=dlib``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mfr.errors import ConfigError
from mfr.train.options import build_options, load_options, override_options


@dataclass
class DistillOptions:
    """Teacher-guided training (docs/distillation.md): a recognizer config's ``distill``.

    ``teacher`` (required): ``dlib``/``dlib-resnet``, an mfr checkpoint or an ONNX file;
    ``cache``: the folder of the teacher's cached embeddings; the rest are the arguments of
    :class:`mfr.distill.DistillationLoss` (``metric`` cosine | l2, the three term weights,
    ``warmup_steps`` of the linear ramp).
    """

    teacher: str = ""
    cache: str = "runs/teacher-cache"
    metric: str = "cosine"
    weight_full: float = 1.0
    weight_masked: float = 1.0
    weight_relational: float = 1.0
    warmup_steps: int = 0

    def validate(self, source: str = "config") -> None:
        if not self.teacher:
            raise ConfigError(
                f"{source}: distill needs 'teacher' (dlib, a checkpoint or an ONNX file)"
            )
        if self.metric not in ("cosine", "l2"):
            raise ConfigError(
                f"{source}: option 'distill.metric' must be 'cosine' or 'l2', got {self.metric!r}"
            )
        for name in ("weight_full", "weight_masked", "weight_relational", "warmup_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(
                    f"{source}: option 'distill.{name}' must be >= 0, got {getattr(self, name)}"
                )

    def loss_arguments(self) -> dict[str, Any]:
        """The keyword arguments of :class:`mfr.distill.DistillationLoss`."""
        values = dataclasses.asdict(self)
        del values["teacher"], values["cache"]
        return values


@dataclass
class TrainConfig:
    """Every option of ``mfr train`` (see docs/training.md for what each does)."""

    # model
    backbone: str = "resnet18"
    input_size: int = 112
    embedding_dim: int = 512
    head: str | None = None  # None: the backbone's default ("flatten" / "gap" for resnet50)
    dropout: float = 0.0
    # starting weights: None (random), "dlib" (dlib's descriptor, backbone dlib-resnet) or an
    # mfr checkpoint of the same backbone (fine-tuning); ignored when resuming
    init: str | None = None
    loss: str = "softmax"
    loss_options: dict[str, Any] = field(default_factory=dict)
    # data
    data: list[str] = field(default_factory=list)  # dataset roots or manifest CSVs
    exclude: list[str] = field(default_factory=list)  # files listing identities to leave out
    domains: str = "both"  # "both" or "full" (drop the masked twins)
    min_images: int = 1  # leave out identities with fewer full-face images
    max_images: int = 0  # > 0: keep only the first N full faces of an identity (+ twins)
    flip: float = 0.5  # probability of a horizontal flip
    workers: int = 2
    # sampling and schedule (paper: 32 x 6, Adam 1e-4, x0.1 at 50 % and 75 %)
    p: int = 32
    k: int = 6
    steps: int = 60000
    lr: float = 1e-4
    lr_milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])
    lr_gamma: float = 0.1
    weight_decay: float = 0.0
    # fine-tuning a pretrained backbone (docs/training.md): the loss's own parameters (the
    # classifier head) get head_lr (None: lr), and for the first head_warmup_steps steps the
    # backbone is frozen (no gradient, eval mode) while the new head learns
    head_lr: float | None = None
    head_warmup_steps: int = 0
    # "imprint": each classifier row starts at its identity's mean embedding the first time the
    # identity is in a batch (mfr.losses.imprint); "random": the loss's own initialisation
    head_init: str = "random"
    imprint_scale: float = 30.0
    # > 0: clip the gradient of all trained parameters to this global L2 norm each step
    # (keeps the first backbone steps after the warm-up from wrecking pretrained weights)
    grad_clip: float = 0.0
    seed: int = 0
    # speed
    device: str = "auto"  # auto | cpu | cuda
    bf16: bool = False
    channels_last: bool = False
    # bookkeeping
    log_every: int = 50
    checkpoint_every: int = 1000
    val_data: str | None = None  # a dataset evaluated by mfr.eval every val_every steps
    val_every: int = 0
    # teacher-guided training (docs/distillation.md): {} = off; else DistillOptions' keys,
    # checked by them (teacher required) and kept as the plain mapping given
    distill: dict[str, Any] = field(default_factory=dict, metadata={"schema": DistillOptions})

    def validate(self, source: str = "config") -> None:
        """Range checks that types alone cannot express."""
        checks = [
            (self.domains in ("both", "full"), "domains", "must be 'both' or 'full'"),
            (self.input_size >= 16, "input_size", "must be >= 16"),
            (self.embedding_dim >= 1, "embedding_dim", "must be positive"),
            (self.p >= 2, "p", "must be >= 2 (a batch needs two identities)"),
            (self.k >= 1, "k", "must be positive"),
            (self.min_images >= 1, "min_images", "must be positive"),
            (self.max_images >= 0, "max_images", "must be >= 0 (0 keeps all)"),
            (self.steps >= 1, "steps", "must be positive"),
            (self.lr > 0, "lr", "must be positive"),
            (self.head_lr is None or self.head_lr > 0, "head_lr", "must be positive"),
            (
                0 <= self.head_warmup_steps < self.steps,
                "head_warmup_steps",
                "must be >= 0 and below steps",
            ),
            (self.head_init in ("random", "imprint"), "head_init", "must be random or imprint"),
            (self.imprint_scale > 0, "imprint_scale", "must be positive"),
            (self.grad_clip >= 0, "grad_clip", "must be >= 0 (0: no clipping)"),
            (0.0 <= self.flip <= 1.0, "flip", "must be a probability"),
            (self.workers >= 0, "workers", "must be >= 0"),
            (self.device in ("auto", "cpu", "cuda"), "device", "must be auto, cpu or cuda"),
            (self.log_every >= 1, "log_every", "must be positive"),
            (self.checkpoint_every >= 0, "checkpoint_every", "must be >= 0"),
            (self.val_every >= 0, "val_every", "must be >= 0"),
            (all(0 < m <= 1 for m in self.lr_milestones), "lr_milestones", "must be in (0, 1]"),
        ]
        for ok, key, problem in checks:
            if not ok:
                raise ConfigError(f"{source}: option '{key}' {problem}, got {getattr(self, key)!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(
    path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()
) -> TrainConfig:
    """Read ``path`` (YAML mapping; None = defaults) and apply ``key=value`` overrides."""
    return load_options(TrainConfig, path, overrides)


def config_from_dict(values: dict[str, Any], source: str = "config") -> TrainConfig:
    """Build a checked :class:`TrainConfig` from a plain dict."""
    return build_options(TrainConfig, values, source)


def apply_overrides(config: TrainConfig, overrides) -> TrainConfig:
    """Apply ``key=value`` strings (values parsed as YAML) to a copy of ``config``."""
    return override_options(config, overrides)


def distill_options(values: dict[str, Any], source: str = "config") -> DistillOptions:
    """The checked :class:`DistillOptions` of a recognizer config's ``distill`` mapping."""
    return build_options(DistillOptions, values, source, prefix="distill.")
