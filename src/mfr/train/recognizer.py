"""The recognizer trainer behind ``mfr train`` (paper §5.2), in parts.

Backbone + loss (by name) trained with Adam on P x K batches; the learning rate is multiplied by
``lr_gamma`` at the ``lr_milestones`` fractions of ``steps`` (paper: x0.1 at 50 % and 75 %).
Fine-tuning a pretrained backbone: ``head_lr`` gives the loss's parameters (the new classifier
head) a learning rate of their own, and for the first ``head_warmup_steps`` steps the backbone
is frozen — run without gradient in eval mode, so neither its weights nor its buffers change —
while the head learns from the pretrained features; ``grad_clip`` > 0 rescales each step's
gradient to at most that global L2 norm (``torch.nn.utils.clip_grad_norm_``).

The parts: data selection (:mod:`mfr.train.selection`), distillation wiring
(:mod:`mfr.train.distillation`), :func:`build_parts` (model and optimiser, from a checkpoint
when resuming), :func:`train_step` (one optimiser step) and the hooks called after every step
— :class:`MetricsLog`, :class:`Validation` (in memory, :mod:`mfr.train.validation`) and
:class:`Checkpoints`. Outputs in the run folder: ``metrics.jsonl`` (one JSON object per log /
validation event), ``val/step-N.json`` (validation reports), ``last.pt`` (every
``checkpoint_every`` steps and at the end) and ``final.pt``, all written atomically by rank 0.
``resume=True`` continues from ``last.pt`` bit-identically on CPU: the batches are a pure
function of (seed, step) and every RNG state is in the checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mfr.errors import CheckpointError, ConfigError, MfrError
from mfr.io import (
    append_text,
    check_writable,
    ensure_folder,
    read_text,
    remove_stale_temps,
    write_text,
)
from mfr.train.config import TrainConfig
from mfr.train.precision import use_bf16
from mfr.train.selection import TrainingData, load_training_data


class _Model(nn.Module):
    """Backbone + loss as one module, so DDP averages the gradients of both."""

    def __init__(
        self,
        backbone: nn.Module,
        loss: nn.Module,
        bf16: bool,
        device_type: str,
        distill: nn.Module | None = None,
    ):
        super().__init__()
        self.backbone = backbone
        self.loss = loss
        self.distill = distill
        self.bf16 = bf16
        self.device_type = device_type

    def forward(self, images, labels, domains, teacher=None, step: int = 0, frozen=False):
        with (
            torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16),
            torch.no_grad() if frozen else contextlib.nullcontext(),
        ):
            features = self.backbone(images)
        features = features.float()
        loss = self.loss(features, labels, domains)
        if self.distill is not None and teacher is not None:
            loss = loss + self.distill(features, teacher, domains, step)[0]
        return loss, features


@dataclass
class Parts:
    """What one run trains: built by :func:`build_parts`, stepped by :func:`train_step`."""

    data: TrainingData
    backbone: nn.Module
    loss: nn.Module  # the loss by name (its parameters are the classifier head)
    distill: nn.Module | None  # the distillation module, or None
    teacher_targets: np.ndarray | None  # float32 (N, teacher dim), row-aligned with data
    model: _Model  # backbone + loss (+ distill) on the device
    trained: nn.Module  # model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    start_step: int = 0


@dataclass
class StepResult:
    """One optimiser step as the hooks see it."""

    loss: torch.Tensor  # scalar, detached, on the device
    features: torch.Tensor  # float32 (B, D), detached
    labels: torch.Tensor  # int64 (B,)
    lr: float  # the backbone group's learning rate used in the step
    data_wait: float  # seconds spent waiting for the batch
    replaced: list[str] = field(default_factory=list)  # unreadable images replaced in it


def train(
    config: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    log: Callable[[str], None] = print,
    stop_at: int | None = None,
    on_finish: Callable[[nn.Module, nn.Module], None] | None = None,
) -> dict[str, Any]:
    """Train a recognizer as ``config`` says, writing into ``out_dir``; returns the last metrics.

    ``stop_at`` ends the run early after that many steps (as an interruption would), leaving
    ``last.pt`` to resume from; ``on_finish(backbone, loss)`` is called on every rank at the
    end (tests use both). Raises :class:`~mfr.errors.ConfigError` for settings the data or
    the set-up cannot meet, :class:`~mfr.errors.CheckpointError` for a checkpoint that cannot
    be resumed and :class:`~mfr.errors.MfrError` for unusable data or a diverged loss.
    """
    from mfr.train import distributed

    info = distributed.setup(config.device)
    try:
        quiet_log = log if info.is_main else _quiet
        return _run(config, Path(out_dir), resume, quiet_log, stop_at, on_finish, info)
    finally:
        distributed.cleanup(info)


def _quiet(_: str) -> None:
    pass


def _run(config, out_dir, resume, log, stop_at, on_finish, info) -> dict[str, Any]:
    """Build the parts, loop over the batches with the hooks, save the last checkpoints."""
    from mfr.data.loader import check_batch
    from mfr.train import distributed

    state = _start(config, out_dir, resume, info)
    parts = build_parts(config, state, info, log, out_dir / "last.pt")
    loader = _batches(config, parts, info)
    end = config.steps if stop_at is None else min(stop_at, config.steps)
    metrics = MetricsLog(out_dir / "metrics.jsonl", config, info, log, end, parts, resume)
    checkpoints = Checkpoints(out_dir, config, info, parts, end)
    hooks: list = [metrics]
    if config.val_data and config.val_every:
        hooks.append(Validation(config, info, out_dir, metrics, log, parts.model))
    hooks.append(checkpoints)
    step = parts.start_step
    parts.model.train()
    if step < config.head_warmup_steps:
        log(f"head warm-up: backbone frozen for steps {step + 1}-{config.head_warmup_steps}")
    tick = time.perf_counter()
    for batch in loader:
        if step >= end:
            break
        replaced = check_batch(batch).replaced
        done = train_step(parts, batch, step, config, info.device, time.perf_counter() - tick)
        done.replaced = replaced
        step += 1
        for hook in hooks:
            hook.after_step(step, done)
        tick = time.perf_counter()
    checkpoints.save(out_dir / "last.pt", step)
    if metrics.replaced:
        log(
            f"replaced {len(metrics.replaced)} reads of {len(set(metrics.replaced))} unreadable "
            f"images by other images of their identity (e.g. {metrics.replaced[0]})"
        )
    if step >= config.steps:
        checkpoints.save(out_dir / "final.pt", step)
        log(f"done: {step} steps; checkpoints {out_dir / 'last.pt'} and {out_dir / 'final.pt'}")
    if on_finish is not None:
        on_finish(parts.backbone, parts.loss)
    distributed.barrier(info)
    return metrics.last


def _start(config: TrainConfig, out_dir: Path, resume: bool, info) -> dict[str, Any] | None:
    """Check the run folder (writable; stale temporary files removed) and read the checkpoint
    to resume from (None for a fresh run)."""
    from mfr.embedders.checkpoint import read_checkpoint

    last_path = out_dir / "last.pt"
    if info.is_main:  # a read-only or full OUT fails now, not after the first hour
        check_writable(last_path)
        remove_stale_temps(out_dir)  # of a killed run's checkpoint writes
    if not resume:
        return None
    if not last_path.is_file():
        raise CheckpointError(f"{last_path}: nothing to resume (no checkpoint in {out_dir})")
    state = read_checkpoint(last_path)
    _check_resume_matches(state, config, last_path)
    return state


def build_parts(
    config: TrainConfig, state: dict[str, Any] | None, info, log, last_path: Path
) -> Parts:
    """Seed the RNGs, select the data and build the loss, the distillation, the backbone
    (from ``config.init``, or from ``state`` when resuming) and the optimiser; the order of
    RNG draws is part of the result, so a run is reproducible from its seed."""
    from mfr.losses import build_loss
    from mfr.train.distillation import distillation

    torch.manual_seed(config.seed)
    np.random.seed(config.seed % 2**32)
    data = load_training_data(config, log)
    loss_fn = build_loss(
        config.loss, len(data.classes), config.embedding_dim, **config.loss_options
    )
    if config.head_init == "imprint":
        from mfr.losses.imprint import enable_imprinting

        heads = enable_imprinting(loss_fn, config.imprint_scale)
        log(f"head: imprinted from each identity's first batch ({heads} classifier)")
    if getattr(loss_fn, "requires_both_domains", False) and not (data.domains == 1).any():
        raise MfrError(
            f"{', '.join(config.data)}: loss {config.loss!r} needs masked images "
            "(<identity>/masked/<image>), but the training data has none"
            + (" (domains: full drops them)" if config.domains == "full" else "")
        )
    teacher_targets, distill = distillation(config, data, log, info)
    backbone = _build_backbone(config, data, state, log, last_path)
    if state is not None:
        loss_fn.load_state_dict(state["loss_state"])
        if distill is not None:
            distill.load_state_dict(state["distill_state"])
    bf16 = use_bf16(config.bf16, info.device.type, log)
    model = _Model(backbone, loss_fn, bf16, info.device.type, distill).to(info.device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer, scheduler, start_step = _build_optimiser(config, model, state, info, log, last_path)
    trained = model
    if info.distributed:
        from torch.nn.parallel import DistributedDataParallel

        from mfr.train import distributed

        distributed.broadcast_module_state(model, info)
        trained = DistributedDataParallel(
            model, device_ids=[info.device.index] if info.device.type == "cuda" else None
        )
    return Parts(data, backbone, loss_fn, distill, teacher_targets, model, trained, optimizer,
                 scheduler, start_step)  # fmt: skip


def _build_backbone(config, data, state, log, last_path: Path) -> nn.Module:
    from mfr.nets.backbones import build_backbone

    backbone = build_backbone(
        config.backbone, config.embedding_dim, config.input_size, config.head, config.dropout
    )
    if state is None and config.init:
        initialise_backbone(backbone, config.init, config.backbone)
        log(f"backbone initialised from {config.init}")
    if state is not None:
        if state.get("classes") != data.classes:
            raise CheckpointError(
                f"{last_path}: trained on {state.get('num_classes')} identities, but the data "
                f"now gives {len(data.classes)} (or other names); resume needs the same data"
            )
        backbone.load_state_dict(state["model"])
    return backbone


def _build_optimiser(config, model: _Model, state, info, log, last_path: Path):
    """Adam (the loss's head at ``head_lr`` when set) with the step-decay schedule; restored
    from ``state`` (with every RNG state) when resuming. Returns (optimizer, scheduler,
    start step)."""
    from mfr.train import checkpoint as ckpt

    if config.head_warmup_steps and info.distributed:
        raise ConfigError("head_warmup_steps: a frozen-backbone warm-up runs in one process only")
    if config.head_lr is None:
        groups = [{"params": list(model.parameters())}]
    else:  # the backbone at lr, the loss's head (and a distillation projection) at head_lr
        head = [p for name, p in model.named_parameters() if not name.startswith("backbone.")]
        groups = [
            {"params": list(model.backbone.parameters())},
            {"params": head, "lr": config.head_lr},
        ]
    optimizer = torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)
    milestones = [int(round(m * config.steps)) for m in config.lr_milestones]
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=milestones, gamma=config.lr_gamma
    )
    if state is None:
        return optimizer, scheduler, 0
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    ckpt.set_rng_state(state["rng"])
    log(f"resuming from {last_path} at step {int(state['step'])}")
    return optimizer, scheduler, int(state["step"])


def _batches(config: TrainConfig, parts: Parts, info):
    """The P x K batch loader from ``parts.start_step`` on (a pure function of seed and step)."""
    from mfr.data.loader import FaceImageDataset, make_train_loader
    from mfr.data.sampler import PKSampler

    data = parts.data
    sampler = PKSampler(
        data.labels, data.domains, config.p, config.k, seed=config.seed, rank=info.rank,
        world_size=info.world_size, flip_probability=config.flip, start_step=parts.start_step,
        num_steps=config.steps,
    )  # fmt: skip
    dataset = FaceImageDataset(
        data.paths, data.labels, data.domains, config.input_size, parts.teacher_targets
    )
    return make_train_loader(dataset, sampler, config.workers, config.seed)


def train_step(
    parts: Parts, batch, step: int, config: TrainConfig, device, data_wait: float = 0.0
) -> StepResult:
    """One optimiser step on ``batch`` (images, labels, domains[, teacher targets]) at the
    0-based ``step``: the backbone frozen (eval mode, no gradient) during the head warm-up,
    gradients clipped when ``grad_clip`` > 0, then the schedule advanced."""
    images, labels, domains = batch[:3]
    teacher = batch[3].to(device, non_blocking=True) if len(batch) > 3 else None
    images = images.to(device, non_blocking=True)
    if config.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    labels = labels.to(device, non_blocking=True)
    domains = domains.to(device, non_blocking=True)
    frozen = step < config.head_warmup_steps
    if frozen == parts.backbone.training:
        parts.backbone.train(not frozen)
    loss, features = parts.trained(images, labels, domains, teacher, step, frozen)
    parts.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(parts.model.parameters(), config.grad_clip)
    parts.optimizer.step()
    lr = parts.optimizer.param_groups[0]["lr"]
    parts.scheduler.step()
    return StepResult(loss.detach(), features.detach(), labels, lr, data_wait)


class MetricsLog:
    """Hook: every ``log_every`` steps (and at the end) one record in ``metrics.jsonl`` — the
    window's mean loss, the last batch's train accuracy, lr, images/s, the data-wait fraction
    and CPU seconds per step — and one log line; a non-finite loss stops the run."""

    def __init__(self, path: Path, config: TrainConfig, info, log, end: int, parts: Parts,
                 resume: bool):  # fmt: skip
        self.path, self.config, self.info, self.log, self.end = path, config, info, log, end
        self.loss_fn = parts.loss
        self.last: dict[str, Any] = {}
        self.replaced: list[str] = []
        if info.is_main:
            ensure_folder(path.parent)
            if resume:
                _truncate_metrics(path, parts.start_step)
            else:
                write_text(path, "")
        self.window_loss = torch.zeros((), device=info.device)
        self._reset()

    def _reset(self) -> None:
        self.window_loss.zero_()
        self.window_start, self.window_steps, self.data_wait = time.perf_counter(), 0, 0.0
        self.window_cpu = time.process_time()

    def append(self, record: dict[str, Any]) -> None:
        if self.info.is_main:
            append_text(self.path, json.dumps(record) + "\n")

    def after_step(self, step: int, done: StepResult) -> None:
        self.replaced += done.replaced
        self.window_loss += done.loss
        self.window_steps += 1
        self.data_wait += done.data_wait
        if step % self.config.log_every and step != self.end:
            return
        if not math.isfinite(float(done.loss)):
            raise MfrError(f"training diverged at step {step} (loss {float(done.loss)})")
        elapsed = time.perf_counter() - self.window_start
        with torch.no_grad():
            accuracy = (self.loss_fn.logits(done.features).argmax(1) == done.labels).float().mean()
        self.last = {
            "step": step,
            "loss": float(self.window_loss) / self.window_steps,
            "train_accuracy": float(accuracy),
            "lr": done.lr,
            "images_per_s": self.window_steps * len(done.labels) * self.info.world_size / elapsed,
            "data_wait_fraction": self.data_wait / elapsed,
            # CPU seconds of this process per step (data workers not included)
            "cpu_s_per_step": (time.process_time() - self.window_cpu) / self.window_steps,
        }
        if self.replaced:
            self.last["replaced_images"] = len(self.replaced)
        self.append(self.last)
        last = self.last
        self.log(
            f"step {step}/{self.config.steps} loss {last['loss']:.4f} "
            f"acc {last['train_accuracy']:.3f} lr {last['lr']:.2e} "
            f"{last['images_per_s']:.1f} img/s"
        )
        self._reset()


class Validation:
    """Hook: every ``val_every`` steps, the in-memory validation of ``val_data``
    (:func:`mfr.train.validation.validate`, rank 0 only) logged to ``metrics.jsonl`` as
    ``{"step": N, "val": {...}}``; a dataset that cannot be evaluated is a logged skip."""

    def __init__(self, config: TrainConfig, info, out_dir: Path, metrics: MetricsLog, log,
                 model: nn.Module):  # fmt: skip
        self.config, self.info, self.folder = config, info, out_dir / "val"
        self.metrics, self.log, self.model = metrics, log, model

    def after_step(self, step: int, done: StepResult) -> None:
        from mfr.train.validation import validate

        if step % self.config.val_every:
            return
        result: dict[str, Any] = {}
        if self.info.is_main:
            try:
                config = self.config
                result = validate(self.model.backbone, config.val_data, config.input_size,
                                  self.info.device, self.folder, step)  # fmt: skip
            except MfrError as error:
                self.log(f"validation at step {step} skipped: {error}")
        if result:
            self.metrics.append({"step": step, "val": result})
            self.log(f"validation at step {step}: {_format_val(result)}")
        self.model.train()


class Checkpoints:
    """Hook: ``last.pt`` every ``checkpoint_every`` steps before the end (rank 0 writes);
    :meth:`save` writes any checkpoint of the run (:func:`mfr.train.checkpoint.save_checkpoint`
    with the model, loss, optimiser, schedule and RNG states, the config and the classes)."""

    def __init__(self, out_dir: Path, config: TrainConfig, info, parts: Parts, end: int):
        self.last_path, self.config, self.info, self.parts, self.end = (
            out_dir / "last.pt", config, info, parts, end
        )  # fmt: skip

    def after_step(self, step: int, done: StepResult) -> None:
        every = self.config.checkpoint_every
        if every and step % every == 0 and step < self.end:
            self.save(self.last_path, step)

    def save(self, path: Path, step: int) -> None:
        from mfr.train import checkpoint as ckpt

        if not self.info.is_main:
            return
        config, parts = self.config, self.parts
        distill = parts.distill
        ckpt.save_checkpoint(
            path,
            backbone=config.backbone,
            embedding_dim=config.embedding_dim,
            input_size=config.input_size,
            head=parts.backbone.head_name,
            model=parts.backbone.state_dict(),
            loss=config.loss,
            loss_state=parts.loss.state_dict(),
            **({"distill_state": distill.state_dict()} if distill is not None else {}),
            optimizer=parts.optimizer.state_dict(),
            scheduler=parts.scheduler.state_dict(),
            step=step,
            config=config.to_dict(),
            rng=ckpt.rng_state(),
            num_classes=len(parts.data.classes),
            classes=parts.data.classes,
        )


def initialise_backbone(backbone: nn.Module, init: str, name: str) -> None:
    """Load starting weights: ``dlib`` (dlib's model file, ``dlib-resnet`` only) or the
    backbone of an mfr checkpoint ``init`` (which must hold a ``name`` backbone)."""
    from mfr.embedders.checkpoint import build_model_from_checkpoint, read_checkpoint

    if init == "dlib":
        if not hasattr(backbone, "load_dlib_weights"):
            raise ConfigError(f"config: init 'dlib' needs backbone dlib-resnet, not {name!r}")
        from mfr.align.dlib_models import model_path

        backbone.load_dlib_weights(model_path("descriptor"))
        return
    source = build_model_from_checkpoint(read_checkpoint(init), init, expect_backbone=name)
    try:
        backbone.load_state_dict(source.state_dict())
    except RuntimeError:
        raise CheckpointError(
            f"{init}: its {name} backbone has another embedding size, input size or head than "
            "the config asks for"
        ) from None


def _check_resume_matches(state: dict[str, Any], config: TrainConfig, path: Path) -> None:
    """A resumed run must use the model it was started with."""
    for key in ("backbone", "embedding_dim", "input_size", "loss"):
        theirs, ours = state.get(key), getattr(config, key)
        if theirs != ours:
            raise CheckpointError(
                f"{path}: checkpoint has {key} {theirs!r}, but the config asks for {ours!r}; "
                "use another --out folder or the original config"
            )


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop records logged after ``step`` by an interrupted run (they will be logged again)."""
    if not path.is_file():
        return
    kept = []
    for line in read_text(path, "metrics log").splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue  # a line torn by the interruption
    write_text(path, "".join(line + "\n" for line in kept))


def _format_val(result: dict[str, Any]) -> str:
    return " ".join(f"{k} {v:.2f}" for k, v in result.items() if isinstance(v, float))
