"""P x K identity sampling with both domains per identity, deterministic and DDP-aware.

Each step draws ``P`` identities per rank and ``K`` images of each (the paper: 32 x 6). For an
identity that has both full (domain 0) and masked (domain 1) images, its ``K`` images are
``ceil(K/2)`` full and ``floor(K/2)`` masked; images are drawn without replacement when the
identity has enough, with replacement when it is short.

Identities are visited epoch by epoch in a permutation drawn from ``(seed, epoch)``; each step
takes the next ``P * world_size`` identities of the permutation and rank ``r`` gets the slice
``[r*P, (r+1)*P)``, so ranks never share an identity within a step. Everything the batch of step
``s`` contains is a pure function of ``(seed, s, rank)``: resuming only needs the step.

Each item is ``(index, flip)``: the horizontal-flip decision is made here, not in the
data-loader workers, so augmentation is reproducible whatever the worker count.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from mfr.errors import ConfigError


class PKSampler:
    """Batch sampler of ``P`` identities x ``K`` images; yields lists of ``(index, flip)``."""

    def __init__(
        self,
        labels: np.ndarray,
        domains: np.ndarray,
        p: int,
        k: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        flip_probability: float = 0.0,
        start_step: int = 0,
        num_steps: int | None = None,
    ):
        labels = np.asarray(labels, dtype=np.int64)
        domains = np.asarray(domains, dtype=np.uint8)
        if labels.shape != domains.shape:
            raise ValueError("labels and domains must have the same length")
        if p < 1 or k < 1:
            raise ConfigError(f"P and K must be positive, got P={p}, K={k}")
        self.identities = np.unique(labels)
        if len(self.identities) < p * world_size:
            raise ConfigError(
                f"a batch needs P x ranks = {p} x {world_size} identities, "
                f"but the training data has only {len(self.identities)}"
            )
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], self.identities, side="left")
        ends = np.append(bounds[1:], len(order))
        self.members = []  # per identity: (full indices, masked indices)
        for start, end in zip(bounds, ends):
            rows = order[start:end]
            self.members.append((rows[domains[rows] == 0], rows[domains[rows] == 1]))
        self.p, self.k = p, k
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.flip_probability = flip_probability
        self.start_step = start_step
        self.num_steps = num_steps
        self.steps_per_epoch = len(self.identities) // (p * world_size)
        self._epoch_cache: tuple[int, np.ndarray] | None = None

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.identities))
            self._epoch_cache = (epoch, order)
        return self._epoch_cache[1]

    def step_identities(self, step: int) -> np.ndarray:
        """Identity positions (into ``self.identities``) of every rank at ``step``, rank-major."""
        epoch, offset = divmod(step, self.steps_per_epoch)
        width = self.p * self.world_size
        return self._permutation(epoch)[offset * width : (offset + 1) * width]

    def batch(self, step: int) -> list[tuple[int, bool]]:
        """This rank's batch of ``step``: ``P*K`` ``(index, flip)`` items, identity by identity."""
        chosen = self.step_identities(step)
        rng = np.random.default_rng([self.seed, 1 << 20, step])
        picks = [self._pick(rng, self.members[i]) for i in chosen]  # every rank draws all
        flips = rng.random((len(chosen), self.k)) < self.flip_probability
        ours = slice(self.rank * self.p, (self.rank + 1) * self.p)
        return [
            (int(index), bool(flip))
            for rows, row_flips in zip(picks[ours], flips[ours])
            for index, flip in zip(rows, row_flips)
        ]

    def _pick(self, rng: np.random.Generator, members: tuple[np.ndarray, np.ndarray]):
        full, masked = members
        if len(full) and len(masked):
            n_full = (self.k + 1) // 2
            return np.concatenate([_draw(rng, full, n_full), _draw(rng, masked, self.k - n_full)])
        return _draw(rng, full if len(full) else masked, self.k)

    def __iter__(self) -> Iterator[list[tuple[int, bool]]]:
        step = self.start_step
        while self.num_steps is None or step < self.num_steps:
            yield self.batch(step)
            step += 1

    def __len__(self) -> int:
        if self.num_steps is None:
            raise TypeError("an endless PKSampler has no length")
        return max(self.num_steps - self.start_step, 0)


def _draw(rng: np.random.Generator, rows: np.ndarray, count: int) -> np.ndarray:
    return rng.choice(rows, size=count, replace=len(rows) < count)
