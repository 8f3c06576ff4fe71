"""P x K sampler: batch shape, both domains per identity, determinism, DDP disjointness."""

from __future__ import annotations

import numpy as np
import pytest

from mfr.data.sampler import PKSampler
from mfr.errors import ConfigError


def _dataset(rng, identities=10):
    """Identities 0-5 have both domains (few masked), 6-9 only full faces."""
    labels, domains = [], []
    for identity in range(identities):
        n_full = int(rng.integers(1, 6))
        n_masked = int(rng.integers(1, 3)) if identity < 6 else 0
        labels += [identity] * (n_full + n_masked)
        domains += [0] * n_full + [1] * n_masked
    order = rng.permutation(len(labels))  # the sampler must not rely on sorted input
    return np.array(labels)[order], np.array(domains, dtype=np.uint8)[order]


def test_batch_is_p_identities_times_k_images(rng):
    labels, domains = _dataset(rng)
    sampler = PKSampler(labels, domains, p=4, k=6, seed=1)
    for step in range(7):
        batch = sampler.batch(step)
        assert len(batch) == 24
        ids = labels[[i for i, _ in batch]]
        values, counts = np.unique(ids, return_counts=True)
        assert len(values) == 4 and (counts == 6).all()


def test_identities_with_both_domains_get_half_full_half_masked(rng):
    labels, domains = _dataset(rng)
    sampler = PKSampler(labels, domains, p=5, k=5, seed=2)
    seen_both = 0
    for step in range(20):
        rows = np.array([i for i, _ in sampler.batch(step)])
        for identity in np.unique(labels[rows]):
            mine = rows[labels[rows] == identity]
            if identity < 6:
                assert (domains[mine] == 0).sum() == 3 and (domains[mine] == 1).sum() == 2
                seen_both += 1
            else:
                assert (domains[mine] == 0).all()
    assert seen_both > 0


def test_images_are_drawn_without_replacement_when_enough():
    labels = np.repeat(np.arange(3), 10)
    sampler = PKSampler(labels, np.zeros(30, np.uint8), p=3, k=6, seed=0)
    rows = [i for i, _ in sampler.batch(0)]
    assert len(set(rows)) == 18


def test_each_epoch_visits_every_identity_once(rng):
    labels, domains = _dataset(rng, identities=12)
    sampler = PKSampler(labels, domains, p=3, k=2, seed=3)
    assert sampler.steps_per_epoch == 4
    ids = [labels[i] for step in range(4) for i, _ in sampler.batch(step)]
    assert sorted(set(ids)) == list(range(12))


def test_same_seed_and_step_give_same_batch_and_flips(rng):
    labels, domains = _dataset(rng)
    a = PKSampler(labels, domains, p=4, k=4, seed=7, flip_probability=0.5)
    b = PKSampler(labels, domains, p=4, k=4, seed=7, flip_probability=0.5, start_step=5)
    assert [a.batch(s) for s in range(5, 9)] == [next(iter(b))] + [b.batch(s) for s in (6, 7, 8)]
    c = PKSampler(labels, domains, p=4, k=4, seed=8, flip_probability=0.5)
    assert [a.batch(s) for s in range(4)] != [c.batch(s) for s in range(4)]
    flips = [f for s in range(20) for _, f in a.batch(s)]
    assert 0.3 < np.mean(flips) < 0.7


def test_iteration_resumes_from_start_step_and_stops_at_num_steps(rng):
    labels, domains = _dataset(rng)
    full = list(PKSampler(labels, domains, p=2, k=2, seed=0, num_steps=6))
    tail = list(PKSampler(labels, domains, p=2, k=2, seed=0, start_step=4, num_steps=6))
    assert len(full) == 6 and tail == full[4:]


def test_ranks_get_disjoint_identities_and_together_match_the_global_draw(rng):
    labels, domains = _dataset(rng, identities=16)
    ranks = [PKSampler(labels, domains, 3, 4, seed=5, rank=r, world_size=2) for r in range(2)]
    for step in range(10):
        a, b = (set(labels[[i for i, _ in s.batch(step)]]) for s in ranks)
        assert len(a) == 3 and len(b) == 3 and not a & b
        assert a | b == set(ranks[0].identities[ranks[0].step_identities(step)])


def test_too_few_identities_is_a_config_error():
    labels = np.array([0, 0, 1, 1])
    with pytest.raises(ConfigError, match="only 2"):
        PKSampler(labels, np.zeros(4, np.uint8), p=2, k=2, world_size=2)
