"""The recognizer training loop behind ``mfr train`` (paper §5.2).

Backbone + loss (by name) trained with Adam on P x K batches; the learning rate is multiplied by
``lr_gamma`` at the ``lr_milestones`` fractions of ``steps`` (paper: x0.1 at 50 % and 75 %).
Fine-tuning a pretrained backbone: ``head_lr`` gives the loss's parameters (the new classifier
head) a learning rate of their own, and for the first ``head_warmup_steps`` steps the backbone
is frozen — run without gradient in eval mode, so neither its weights nor its buffers change —
while the head learns from the pretrained features; ``grad_clip`` > 0 rescales each step's
gradient to at most that global L2 norm (``torch.nn.utils.clip_grad_norm_``).
Outputs in the run folder: ``metrics.jsonl`` (one JSON object per log / validation event),
``last.pt`` (every ``checkpoint_every`` steps and at the end) and ``final.pt``, all written
atomically by rank 0. ``resume=True`` continues from ``last.pt`` bit-identically on CPU: the
batches are a pure function of (seed, step) and every RNG state is in the checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass
class TrainingData:
    """The training set after merging sources, exclusion and the domain filter."""

    paths: list[Path]
    labels: np.ndarray  # int64, index into classes
    domains: np.ndarray  # uint8
    classes: list[str]


def load_training_data(config: TrainConfig, log: Callable[[str], None] = print) -> TrainingData:
    """Merge ``config.data`` sources by identity name, apply ``exclude`` and ``domains``."""
    from mfr.data.dataset import load_index, read_identity_list

    if not config.data:
        raise ConfigError("config: option 'data' is empty; give one or more dataset folders")
    excluded: set[str] = set()
    for name in config.exclude:
        excluded |= read_identity_list(name)
    paths: list[Path] = []
    identities: list[str] = []
    domains: list[np.ndarray] = []
    for source in config.data:
        index = load_index(source)
        if index.skipped or index.missing:
            log(
                f"{source}: {len(index.skipped)} non-image files skipped, "
                f"{len(index.missing)} listed images missing"
            )
        paths += list(index.paths)
        identities += list(index.identities)
        domains.append(np.asarray(index.domains, dtype=np.uint8))
    domain_array = np.concatenate(domains) if domains else np.zeros(0, np.uint8)
    keep = np.array([name not in excluded for name in identities], dtype=bool)
    if config.domains == "full":
        keep &= domain_array == 0
    dropped_ids = len(excluded & set(identities))
    if config.min_images > 1:
        full_counts: dict[str, int] = {}
        for name, domain in zip(identities, domain_array):
            full_counts[name] = full_counts.get(name, 0) + int(domain == 0)
        keep &= np.array([full_counts[name] >= config.min_images for name in identities])
    if config.max_images > 0:
        keep &= _first_images(paths, identities, domain_array, config.max_images)
    paths = [p for p, k in zip(paths, keep) if k]
    identities = [i for i, k in zip(identities, keep) if k]
    domain_array = domain_array[keep]
    classes = sorted(set(identities))
    lookup = {name: i for i, name in enumerate(classes)}
    labels = np.array([lookup[name] for name in identities], dtype=np.int64)
    sources = ", ".join(config.data)
    if len(classes) < 2:
        raise MfrError(
            f"{sources}: training needs at least 2 identities, found {len(classes)}"
            + (" after the exclude list" if dropped_ids else "")
        )
    log(
        f"training data: {len(paths)} images ({int((domain_array == 1).sum())} masked) of "
        f"{len(classes)} identities from {sources}; {dropped_ids} identities excluded"
    )
    return TrainingData(paths, labels, domain_array, classes)


def _first_images(
    paths: list[Path], identities: list[str], domains: np.ndarray, limit: int
) -> np.ndarray:
    """Mask keeping, per identity, the first ``limit`` full faces (by file name) and their
    masked twins (the same file name in the masked domain)."""
    chosen: dict[str, set[str]] = defaultdict(set)
    full = ((Path(p).name, i) for p, i, d in zip(paths, identities, domains) if d == 0)
    for name, identity in sorted(full):
        if len(chosen[identity]) < limit:
            chosen[identity].add(name)
    return np.array([Path(p).name in chosen[i] for p, i in zip(paths, identities)], dtype=bool)


def _lr_milestones(config: TrainConfig) -> list[int]:
    return [int(round(m * config.steps)) for m in config.lr_milestones]


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
    end (tests use both).
    """
    from mfr.train import distributed

    info = distributed.setup(config.device)
    try:
        quiet_log = log if info.is_main else _quiet
        return _train(config, Path(out_dir), resume, quiet_log, stop_at, on_finish, info)
    finally:
        distributed.cleanup(info)


def _quiet(_: str) -> None:
    pass


def _train(config, out_dir, resume, log, stop_at, on_finish, info) -> dict[str, Any]:
    from torch.nn.parallel import DistributedDataParallel

    from mfr.data.loader import FaceImageDataset, check_batch, make_train_loader
    from mfr.data.sampler import PKSampler
    from mfr.losses import build_loss
    from mfr.losses.imprint import enable_imprinting
    from mfr.nets.backbones import build_backbone
    from mfr.train import checkpoint as ckpt
    from mfr.train import distributed

    last_path = out_dir / "last.pt"
    if info.is_main:  # a read-only or full OUT fails now, not after the first hour
        check_writable(last_path)
        remove_stale_temps(out_dir)  # of a killed run's checkpoint writes
    state = None
    if resume:
        if not last_path.is_file():
            raise CheckpointError(f"{last_path}: nothing to resume (no checkpoint in {out_dir})")
        state = ckpt.read_checkpoint(last_path)
        _check_resume_matches(state, config, last_path)

    torch.manual_seed(config.seed)
    np.random.seed(config.seed % 2**32)
    data = load_training_data(config, log)
    loss_fn = build_loss(
        config.loss, len(data.classes), config.embedding_dim, **config.loss_options
    )
    if config.head_init == "imprint":
        heads = enable_imprinting(loss_fn, config.imprint_scale)
        log(f"head: imprinted from each identity's first batch ({heads} classifier)")
    if getattr(loss_fn, "requires_both_domains", False) and not (data.domains == 1).any():
        raise MfrError(
            f"{', '.join(config.data)}: loss {config.loss!r} needs masked images "
            "(<identity>/masked/<image>), but the training data has none"
            + (" (domains: full drops them)" if config.domains == "full" else "")
        )
    teacher_targets, distill = _distillation(config, data, log, info)
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
        loss_fn.load_state_dict(state["loss_state"])
        if distill is not None:
            distill.load_state_dict(state["distill_state"])
    bf16 = use_bf16(config.bf16, info.device.type, log)
    model = _Model(backbone, loss_fn, bf16, info.device.type, distill).to(info.device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if config.head_warmup_steps and info.distributed:
        raise ConfigError("head_warmup_steps: a frozen-backbone warm-up runs in one process only")
    if config.head_lr is None:
        groups = [{"params": list(model.parameters())}]
    else:  # the backbone at lr, the loss's head (and a distillation projection) at head_lr
        head = [p for name, p in model.named_parameters() if not name.startswith("backbone.")]
        groups = [{"params": list(backbone.parameters())}, {"params": head, "lr": config.head_lr}]
    optimizer = torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=_lr_milestones(config), gamma=config.lr_gamma
    )
    start_step = 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        ckpt.set_rng_state(state["rng"])
        start_step = int(state["step"])
        log(f"resuming from {last_path} at step {start_step}")
    trained = model
    if info.distributed:
        distributed.broadcast_module_state(model, info)
        trained = DistributedDataParallel(
            model, device_ids=[info.device.index] if info.device.type == "cuda" else None
        )

    sampler = PKSampler(
        data.labels, data.domains, config.p, config.k, seed=config.seed, rank=info.rank,
        world_size=info.world_size, flip_probability=config.flip, start_step=start_step,
        num_steps=config.steps,
    )  # fmt: skip
    dataset = FaceImageDataset(
        data.paths, data.labels, data.domains, config.input_size, teacher_targets
    )
    loader = make_train_loader(dataset, sampler, config.workers, config.seed)
    metrics_path = out_dir / "metrics.jsonl"
    if info.is_main:
        ensure_folder(out_dir)
        if not resume:
            write_text(metrics_path, "")
        else:
            _truncate_metrics(metrics_path, start_step)
    meta = {"num_classes": len(data.classes), "classes": data.classes}

    def save(path: Path, step: int) -> None:
        if not info.is_main:
            return
        ckpt.save_checkpoint(
            path,
            backbone=config.backbone,
            embedding_dim=config.embedding_dim,
            input_size=config.input_size,
            head=backbone.head_name,
            model=backbone.state_dict(),
            loss=config.loss,
            loss_state=loss_fn.state_dict(),
            **({"distill_state": distill.state_dict()} if distill is not None else {}),
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            step=step,
            config=config.to_dict(),
            rng=ckpt.rng_state(),
            **meta,
        )

    last: dict[str, Any] = {}
    step = start_step
    end = config.steps if stop_at is None else min(stop_at, config.steps)
    window_loss = torch.zeros((), device=info.device)
    window_start, window_steps, data_wait = time.perf_counter(), 0, 0.0
    window_cpu = time.process_time()
    model.train()
    if start_step < config.head_warmup_steps:
        log(f"head warm-up: backbone frozen for steps {start_step + 1}-{config.head_warmup_steps}")
    tick = time.perf_counter()
    replaced: list[str] = []
    for batch in loader:
        if step >= end:
            break
        replaced += check_batch(batch).replaced
        images, labels, domains = batch[:3]
        teacher = batch[3].to(info.device, non_blocking=True) if len(batch) > 3 else None
        data_wait += time.perf_counter() - tick
        images = images.to(info.device, non_blocking=True)
        if config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        labels = labels.to(info.device, non_blocking=True)
        domains = domains.to(info.device, non_blocking=True)
        frozen = step < config.head_warmup_steps
        if frozen == backbone.training:
            backbone.train(not frozen)
        loss, features = trained(images, labels, domains, teacher, step, frozen)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        step_lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        step += 1
        window_loss += loss.detach()
        window_steps += 1
        if step % config.log_every == 0 or step == end:
            if not math.isfinite(float(loss.detach())):
                raise MfrError(f"training diverged at step {step} (loss {float(loss.detach())})")
            elapsed = time.perf_counter() - window_start
            with torch.no_grad():
                accuracy = (loss_fn.logits(features.detach()).argmax(1) == labels).float().mean()
            last = {
                "step": step,
                "loss": float(window_loss) / window_steps,
                "train_accuracy": float(accuracy),
                "lr": step_lr,
                "images_per_s": window_steps * len(labels) * info.world_size / elapsed,
                "data_wait_fraction": data_wait / elapsed,
                # CPU seconds of this process per step (data workers not included)
                "cpu_s_per_step": (time.process_time() - window_cpu) / window_steps,
            }
            if replaced:
                last["replaced_images"] = len(replaced)
            if info.is_main:
                _append_jsonl(metrics_path, last)
            log(
                f"step {step}/{config.steps} loss {last['loss']:.4f} "
                f"acc {last['train_accuracy']:.3f} lr {last['lr']:.2e} "
                f"{last['images_per_s']:.1f} img/s"
            )
            window_loss.zero_()
            window_start, window_steps, data_wait = time.perf_counter(), 0, 0.0
            window_cpu = time.process_time()
        if config.val_data and config.val_every and step % config.val_every == 0:
            try:
                result = validate(backbone, config, info, out_dir, step)
            except MfrError as error:
                result = {}
                log(f"validation at step {step} skipped: {error}")
            if info.is_main and result:
                _append_jsonl(metrics_path, {"step": step, "val": result})
                log(f"validation at step {step}: {_format_val(result)}")
            model.train()
        if config.checkpoint_every and step % config.checkpoint_every == 0 and step < end:
            save(last_path, step)
        tick = time.perf_counter()
    save(last_path, step)
    if replaced:
        log(
            f"replaced {len(replaced)} reads of {len(set(replaced))} unreadable images by other "
            f"images of their identity (e.g. {replaced[0]})"
        )
    if step >= config.steps:
        save(out_dir / "final.pt", step)
        log(f"done: {step} steps; checkpoints {last_path} and {out_dir / 'final.pt'}")
    if on_finish is not None:
        on_finish(backbone, loss_fn)
    distributed.barrier(info)
    return last


def initialise_backbone(backbone: nn.Module, init: str, name: str) -> None:
    """Load starting weights: ``dlib`` (dlib's model file, ``dlib-resnet`` only) or the
    backbone of an mfr checkpoint ``init`` (which must hold a ``name`` backbone)."""
    from mfr.train import checkpoint as ckpt

    if init == "dlib":
        if not hasattr(backbone, "load_dlib_weights"):
            raise ConfigError(f"config: init 'dlib' needs backbone dlib-resnet, not {name!r}")
        from mfr.align.dlib_models import model_path

        backbone.load_dlib_weights(model_path("descriptor"))
        return
    source = ckpt.build_model_from_checkpoint(
        ckpt.read_checkpoint(init), init, expect_backbone=name
    )
    try:
        backbone.load_state_dict(source.state_dict())
    except RuntimeError:
        raise CheckpointError(
            f"{init}: its {name} backbone has another embedding size, input size or head than "
            "the config asks for"
        ) from None


def _distillation(config: TrainConfig, data: TrainingData, log, info=None):
    """Teacher targets for every training image and the distillation module, or (None, None).

    The teacher embeds each image's full-face twin once (cached on disk; under DDP rank 0
    fills the cache and the others read it); images whose twin cannot be read are left out of
    ``data`` (logged with a count).
    """
    if not config.distill:
        return None, None
    import inspect

    from mfr.distill import DistillationLoss, TeacherCache
    from mfr.train import distributed

    options = dict(config.distill)
    teacher = options.pop("teacher", None)
    if not isinstance(teacher, str):
        raise ConfigError("config: distill needs 'teacher' (dlib, a checkpoint or an ONNX file)")
    cache_dir = options.pop("cache", "runs/teacher-cache")
    known = set(inspect.signature(DistillationLoss).parameters) - {"student_dim", "teacher_dim"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"config: unknown distill option(s) {', '.join(unknown)} "
            f"(known: teacher, cache, {', '.join(sorted(known))})"
        )
    try:
        cache = TeacherCache(cache_dir, teacher)
        log(f"teacher {teacher}: embedding full-face twins (cached in {cache.folder})")
        if info is not None and info.distributed and not info.is_main:
            distributed.barrier(info)  # rank 0 fills the cache first
        with torch.random.fork_rng(devices=[]):  # a cold or warm cache: the same run
            targets, valid = cache.targets(data.paths)
        if info is not None and info.distributed and info.is_main:
            distributed.barrier(info)
        distill = DistillationLoss(config.embedding_dim, targets.shape[1], **options)
    except TypeError as error:
        raise ConfigError(f"config: distill: {error}") from None
    log(f"teacher: {cache.stats['cached']} cached, {cache.stats['computed']} computed, "
        f"{cache.stats['no_twin']} without a full-face twin")  # fmt: skip
    if not valid.all():
        log(f"teacher: leaving out {int((~valid).sum())} images whose twin is unreadable")
        keep = np.flatnonzero(valid)
        data.paths = [data.paths[i] for i in keep]
        data.labels, data.domains = data.labels[keep], data.domains[keep]
        targets = targets[keep]
    return targets, distill


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


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    append_text(path, json.dumps(record) + "\n")


def _format_val(result: dict[str, Any]) -> str:
    return " ".join(f"{k} {v:.2f}" for k, v in result.items() if isinstance(v, float))


VAL_KEYS = ("rank1", "rank5", "mAP", "accuracy", "accuracy_std", "num_probes", "num_pairs")


def validate(
    backbone: nn.Module, config: TrainConfig, info, out_dir: Path, step: int
) -> dict[str, Any]:
    """Embed ``config.val_data`` with the current backbone and score it with ``mfr eval``.

    Rank 0 only (other ranks return ``{}``). Writes ``OUT/val/step-N.npz`` (the embeddings
    contract) and ``OUT/val/step-N.json`` (the full eval report); returns its main figures
    (percentages).
    """
    if not info.is_main:
        return {}
    from mfr.commands.eval import run_eval
    from mfr.data.dataset import load_index
    from mfr.eval.embeddings import save_embeddings

    index = load_index(config.val_data)
    was_training = backbone.training
    backbone.eval()
    try:
        features = embed_files(backbone, index.paths, config.input_size, info.device)
    finally:
        backbone.train(was_training)
    folder = ensure_folder(out_dir / "val")
    npz = folder / f"step-{step}.npz"
    save_embeddings(
        npz,
        features,
        np.asarray(index.identities, dtype=str),
        np.asarray(index.domains, dtype=np.uint8),
        np.asarray([str(p) for p in index.paths], dtype=str),
    )
    report = run_eval(npz, json_out=folder / f"step-{step}.json", log=_quiet)
    return {key: report.get(key) for key in VAL_KEYS}


@torch.no_grad()
def embed_files(
    model: nn.Module, paths, input_size: int, device, batch_size: int = 128, workers: int = 0
) -> np.ndarray:
    """L2-normalised float32 (N, D) embeddings of image files with an eval-mode model."""
    from mfr.data.loader import FaceImageDataset, check_batch, make_eval_loader

    n = len(paths)
    dataset = FaceImageDataset(paths, np.zeros(n, np.int64), np.zeros(n, np.uint8), input_size)
    chunks = [
        torch.nn.functional.normalize(model(images.to(device)).float(), dim=1).cpu()
        for images, _, _ in map(check_batch, make_eval_loader(dataset, batch_size, workers))
    ]
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, 0), np.float32)
