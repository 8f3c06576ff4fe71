"""``mfr gan train``: data, the IAMGAN step loop, sample grids and resumable checkpoints."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from mfr.errors import ConfigError
from mfr.nets.unet import MaskSegmenter
from mfr.train.iamgan import GAN_FORMAT, GAN_VERSION, GanOptions, IAMGANModel

log = logging.getLogger(__name__)

# options that may differ between an interrupted run and its resumption
_RESUME_FREE = {"out", "threads", "log_every", "sample_every", "checkpoint_every", "num_samples"}


def _data_path(path: str) -> Path:
    from mfr.train.segmenter import resolve_data

    return resolve_data(path)


def resolve_full_root(opts: GanOptions) -> tuple[Path, float]:
    """Domain F folder and centre-crop: ``f_root`` if set, else the aligned LFW set in
    ``runs/data/lfw-112`` when present, else raw LFW with a 0.55 centre crop."""
    if opts.f_root:
        return _data_path(opts.f_root), opts.f_crop
    aligned = Path("runs/data/lfw-112")
    if aligned.is_dir():
        return aligned, opts.f_crop
    return _data_path("lfw/images"), 0.55


def load_segmenter_for(opts: GanOptions) -> MaskSegmenter | None:
    from mfr.train.segmenter import load_segmenter

    path = Path(opts.segmenter) if opts.segmenter else None
    if path is None or not path.is_file():
        if opts.uses_ip:
            raise ConfigError(f"{path}: segmenter checkpoint not found (option 'segmenter')")
        return None  # plain CycleGAN: S only draws the sample grids when it is there
    return load_segmenter(path)


def segmenter_payload(segmenter: MaskSegmenter | None) -> dict | None:
    if segmenter is None:
        return None
    return {
        "size": segmenter.size,
        "base_channels": segmenter.base,
        "depth": segmenter.unet_depth,
        "state_dict": segmenter.state_dict(),
    }


def sample_grid(model: IAMGANModel, full: torch.Tensor, segmenter: MaskSegmenter | None):
    """Paper Fig. 5 form: row 1 the inputs f, row 2 the generated f_m = G_F→M(f), row 3 the
    segmenter map S(f_m) (white = kept, black = mask). Returns an RGB uint8 image."""
    from mfr.nets.preprocess import tensor_to_images

    model.G_FM.eval()
    with torch.no_grad():
        fake = model.G_FM(full)
    model.G_FM.train()
    rows = [tensor_to_images(full), tensor_to_images(fake)]
    if segmenter is not None:
        keep = segmenter.keep_map(fake).expand(-1, 3, -1, -1) * 2 - 1
        rows.append(tensor_to_images(keep))
    grid = np.concatenate([np.concatenate(list(row), axis=1) for row in rows], axis=0)
    scale = max(1, 128 // full.shape[-1])
    return grid.repeat(scale, 0).repeat(scale, 1)


def save_png(image: np.ndarray, path: Path) -> None:
    from PIL import Image

    from mfr.io import atomic_write

    with atomic_write(path, "wb") as handle:
        Image.fromarray(image).save(handle, format="PNG", optimize=True)


def _check_resumable(saved: dict, opts: GanOptions, path: Path) -> None:
    from mfr.train.options import options_dict

    current = options_dict(opts)
    differ = sorted(
        k for k in current if k not in _RESUME_FREE and saved.get(k, current[k]) != current[k]
    )
    if differ:
        raise ConfigError(
            f"{path}: cannot resume, options differ from the run: {', '.join(differ)}"
        )


def train_gan(
    opts: GanOptions, resume: bool = False, progress: bool = True, stop_at: int | None = None
) -> dict:
    """Train for ``opts.steps`` steps (or until ``stop_at``), checkpointing to ``out/last.pt``.

    Returns ``{"step", "out", "history", "model"}``; ``history`` holds a record of the losses
    every ``log_every`` steps. Raises ``MfrError`` (``ConfigError``, ``CheckpointError``) for
    missing data, a bad segmenter or a checkpoint of other options."""
    from mfr.data.gan_data import UnpairedSampler
    from mfr.nets.preprocess import images_to_tensor

    if opts.threads:
        torch.set_num_threads(opts.threads)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    segmenter = load_segmenter_for(opts)
    full, masked = _load_gan_data(opts)
    sampler = UnpairedSampler(full, masked, opts.seed, opts.flip)
    torch.manual_seed(opts.seed)
    model = IAMGANModel(opts, len(full.classes), segmenter)
    sample_idx = np.random.default_rng(opts.seed + 100).choice(
        len(full.images), min(opts.num_samples, len(full.images)), replace=False
    )
    sample_input = images_to_tensor(full.images[sample_idx])

    last_path = out / "last.pt"
    start, history = 0, []
    if resume and last_path.is_file():
        start, history = _resume(last_path, opts, model, sampler)

    def checkpoint(step: int) -> None:
        _save_checkpoint(out, opts, step, full.classes, model, segmenter, sampler, history)

    end = opts.steps if stop_at is None else min(stop_at, opts.steps)
    began = time.time()
    for step in range(start, end):
        f, labels, m = sampler.next(opts.batch_size)
        model.set_input(images_to_tensor(f), torch.from_numpy(labels), images_to_tensor(m))
        losses = model.optimize_parameters(step)
        done = step + 1
        if done % opts.log_every == 0 or done == end:
            history.append({"step": done, **{k: round(v, 5) for k, v in losses.items()}})
            if progress:
                _print_step(
                    done, opts.steps, losses, (done - start) / max(time.time() - began, 1e-9)
                )
        if done % opts.sample_every == 0 or done == opts.steps:
            grid = sample_grid(model, sample_input, segmenter)
            save_png(grid, out / "samples" / f"step_{done:07d}.png")
            save_png(grid, out / "samples" / "latest.png")
        if done % opts.checkpoint_every == 0 or done == end:
            checkpoint(done)
    if end == start:
        checkpoint(start)
    return {"step": end, "out": str(out), "history": history, "model": model}


def _load_gan_data(opts: GanOptions):
    """Domain F (``FullFaceSet``: identities with enough images, minus the exclude list) and
    domain M (uint8 N x size x size x 3) at the model size."""
    from mfr.data.gan_data import load_full_faces, load_masked_faces, read_exclude_list

    f_root, crop = resolve_full_root(opts)
    exclude = read_exclude_list(_data_path(opts.f_exclude) if opts.f_exclude else None)
    full = load_full_faces(
        f_root,
        opts.size,
        crop=crop,
        min_images=opts.f_min_images,
        max_identities=opts.f_max_identities,
        exclude=exclude,
    )
    masked = load_masked_faces(_data_path(opts.m_root), opts.size, opts.m_max_images)
    log.info(
        "F: %d images of %d identities from %s; M: %d images",
        len(full.images),
        len(full.classes),
        f_root,
        len(masked),
    )
    return full, masked


def _resume(path: Path, opts: GanOptions, model: IAMGANModel, sampler) -> tuple[int, list]:
    """Load model, sampler and torch RNG state from ``path``; returns ``(step, history)``."""
    from mfr.train.segmenter import read_checkpoint

    state = read_checkpoint(path, GAN_FORMAT, "IAMGAN")
    _check_resumable(state["options"], opts, path)
    model.load_state_dict(state["model"])
    sampler.set_state(state["sampler"])
    torch.set_rng_state(state["torch_rng"])
    log.info("resumed %s at step %d", path, state["step"])
    return state["step"], state["history"]


def _save_checkpoint(out: Path, opts, step, classes, model, segmenter, sampler, history) -> None:
    """``OUT/last.pt`` (everything a resumed run needs) and ``OUT/history.json``, atomically."""
    from mfr.io import atomic_save_torch, atomic_write
    from mfr.train.options import options_dict

    atomic_save_torch(
        {
            "format": GAN_FORMAT,
            "version": GAN_VERSION,
            "options": options_dict(opts),
            "step": step,
            "classes": classes,
            "model": model.state_dict(),
            "segmenter": segmenter_payload(segmenter),
            "sampler": sampler.state(),
            "torch_rng": torch.get_rng_state(),
            "history": history,
        },
        out / "last.pt",
    )
    with atomic_write(out / "history.json", "w") as handle:
        json.dump(history, handle)


def _print_step(done: int, steps: int, losses: dict, rate: float) -> None:
    terms = " ".join(f"{k} {v:.3f}" for k, v in losses.items() if k != "lr")
    print(f"step {done}/{steps} {terms} ({rate:.2f} it/s)", flush=True)
