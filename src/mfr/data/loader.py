"""Torch datasets and loaders over image files: decode, resize to the network size, flip.

Training batches come from :class:`~mfr.data.sampler.PKSampler`, whose items are
``(index, flip)``; the flip is decided there so augmentation is the same whatever the number
of workers. Each sample is ``(image float32 3 x S x S in [-1, 1], label, domain)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mfr.data.images import resize_square
from mfr.errors import BadImageError


def to_network_tensor(image: np.ndarray) -> torch.Tensor:
    """RGB uint8 H x W x 3 -> float32 3 x H x W in [-1, 1] (as ``images_to_tensor``)."""
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
    return tensor.div_(127.5).sub_(1.0)


class _Samples(list):
    """The samples of one batch (``FaceImageDataset.__getitems__``) with the files replaced
    and the error of a sample that could not be loaded; read by :func:`collate`."""

    replaced: list[str]
    error: str | None = None


class Batch(tuple):
    """A collated batch ``(images, labels, domains[, teacher targets])``; ``replaced`` lists
    the unreadable files that were replaced by another image of their identity, ``error`` is
    the message of a sample that could not be replaced (None when every sample loaded)."""

    replaced: tuple[str, ...] = ()
    error: str | None = None

    def __new__(cls, items, replaced=(), error=None):
        batch = super().__new__(cls, items)
        batch.replaced, batch.error = tuple(replaced), error
        return batch

    def __reduce__(self):  # keep the attributes through the workers' queues
        return (Batch, (tuple(self), self.replaced, self.error))


class FaceImageDataset(Dataset):
    """Image files with labels and domains; ``dataset[i]`` or ``dataset[(i, flip)]``."""

    def __init__(
        self,
        paths: Sequence[str | Path],
        labels: np.ndarray,
        domains: np.ndarray,
        size: int,
        targets: np.ndarray | None = None,
    ):
        self.paths = [str(p) for p in paths]
        self.targets = None if targets is None else torch.from_numpy(np.asarray(targets))
        self.labels = np.asarray(labels, dtype=np.int64)
        self.domains = np.asarray(domains, dtype=np.uint8)
        self.size = size
        self._warned: set[str] = set()

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int, flip: bool = False) -> np.ndarray:
        """The resized RGB uint8 image of ``index`` (mirrored when ``flip``)."""
        from mfr.data.images import read_image

        image = resize_square(read_image(self.paths[index]), self.size)
        return image[:, ::-1] if flip else image

    def __getitem__(self, item):
        index, flip = item if isinstance(item, tuple) else (item, False)
        image, _ = self._load_or_substitute(index, flip)
        return self._sample(index, image)

    def __getitems__(self, items) -> _Samples:
        """A batch for the DataLoader: replacements are recorded, and a sample that cannot be
        loaded is not raised in the worker (where its message would arrive wrapped in a
        traceback) but passed on for :func:`check_batch` to raise in the main process."""
        samples = _Samples()
        samples.replaced = []
        for item in items:
            index, flip = item if isinstance(item, tuple) else (item, False)
            try:
                image, replaced = self._load_or_substitute(index, flip)
            except BadImageError as error:
                samples.error = str(error)
                return samples
            if replaced is not None:
                samples.replaced.append(replaced)
            samples.append(self._sample(index, image))
        return samples

    def _sample(self, index: int, image: np.ndarray):
        sample = (to_network_tensor(image), int(self.labels[index]), int(self.domains[index]))
        return sample if self.targets is None else (*sample, self.targets[index])

    def _load_or_substitute(self, index: int, flip: bool) -> tuple[np.ndarray, str | None]:
        """``(image, replaced file or None)``: an unreadable file is replaced by another image
        of the same identity and domain (with a warning naming it, and counted) so one bad
        file does not stop a long run."""
        try:
            return self.load(index, flip), None
        except BadImageError as error:
            self._warn(error)
        same = np.flatnonzero(
            (self.labels == self.labels[index]) & (self.domains == self.domains[index])
        )
        for other in same[same != index]:
            try:
                return self.load(int(other), flip), self.paths[index]
            except BadImageError as error:
                self._warn(error)
        raise BadImageError(
            f"{self.paths[index]}: unreadable, and no readable image of its identity "
            f"(label {self.labels[index]}) in domain {self.domains[index]} to use instead"
        )

    def _warn(self, error: Exception) -> None:
        key = str(error)
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(f"skipping unreadable training image: {error}", stacklevel=2)


def collate(samples) -> Batch:
    """Stack ``(image, label, domain[, teacher target])`` samples into a :class:`Batch`
    (with the replacements and error of :meth:`FaceImageDataset.__getitems__`)."""
    replaced = getattr(samples, "replaced", ())
    if getattr(samples, "error", None):
        return Batch((), replaced, samples.error)
    images = torch.stack([s[0] for s in samples])
    labels = torch.tensor([s[1] for s in samples], dtype=torch.int64)
    domains = torch.tensor([s[2] for s in samples], dtype=torch.uint8)
    if len(samples[0]) > 3:
        return Batch((images, labels, domains, torch.stack([s[3] for s in samples])), replaced)
    return Batch((images, labels, domains), replaced)


def check_batch(batch: Batch) -> Batch:
    """Raise the :class:`BadImageError` of a batch whose sample could not be loaded (in the
    main process: one plain line, whatever the number of workers)."""
    if getattr(batch, "error", None):
        raise BadImageError(batch.error)
    return batch


def make_train_loader(dataset: FaceImageDataset, batch_sampler, workers: int, seed: int):
    """A DataLoader over ``batch_sampler``; never touches the global torch RNG (for resume)."""
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
        generator=torch.Generator().manual_seed(seed),
    )


def make_eval_loader(dataset: FaceImageDataset, batch_size: int, workers: int):
    """An in-order, unflipped DataLoader for embedding a dataset."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(0),
    )
