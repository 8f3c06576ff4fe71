"""Pairs CSV reading/writing and the paper's pair protocol generator."""

from __future__ import annotations

import numpy as np
import pytest

from mfr.errors import MfrError
from mfr.eval.pairs import Pairs, generate_pairs, pair_kinds, read_pairs, write_pairs


def _dataset(rng, num_ids=6, per_domain=(3, 4)):
    ids, domains = [], []
    for i in range(num_ids):
        for domain, count in enumerate(per_domain):
            ids += [f"id{i}"] * count
            domains += [domain] * count
    order = rng.permutation(len(ids))  # interleave rows so indices are not grouped
    return np.array(ids)[order], np.array(domains, np.uint8)[order]


def test_write_then_read_round_trips(tmp_path):
    pairs = Pairs(np.array([0, 3, 2]), np.array([1, 1, 4]), np.array([True, False, True]))
    path = tmp_path / "p.csv"
    write_pairs(path, pairs)
    assert path.read_text().splitlines()[0] == "a,b,same"
    back = read_pairs(path, num_embeddings=5)
    assert np.array_equal(back.a, pairs.a) and np.array_equal(back.b, pairs.b)
    assert np.array_equal(back.same, pairs.same)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x,y,z\n0,1,1\n", "header must be 'a,b,same'"),
        ("", "header must be 'a,b,same'"),
        ("a,b,same\n0,9,1\n", "line 2: index 9 is out of range"),
        ("a,b,same\n0,-1,1\n", "index -1 is out of range"),
        ("a,b,same\n0,1,2\n", "line 2: 'same' must be 0 or 1"),
        ("a,b,same\n0,one,1\n", "must be integers"),
        ("a,b,same\n0,1\n", "expected 3 fields"),
    ],
)
def test_bad_pairs_files_give_a_clear_error_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(MfrError, match=message) as info:
        read_pairs(path, num_embeddings=5)
    assert str(path) in str(info.value)


def test_missing_pairs_file_is_a_clear_error(tmp_path):
    with pytest.raises(MfrError, match="not found"):
        read_pairs(tmp_path / "nope.csv")


def test_generated_folds_are_balanced_masked_vs_full_and_labelled_right(rng):
    ids, domains = _dataset(rng)
    gen = generate_pairs(ids, domains, pairs_per_fold=14, seed=3)
    pairs = gen.pairs
    assert len(pairs) == 140 and not gen.shrunk and gen.note() is None
    for fold in np.array_split(np.arange(len(pairs)), 10):
        assert pairs.same[fold].sum() == 7 and (~pairs.same[fold]).sum() == 7
    assert (domains[pairs.a] == 1).all() and (domains[pairs.b] == 0).all()
    assert np.array_equal(ids[pairs.a] == ids[pairs.b], pairs.same)
    assert len(set(zip(pairs.a.tolist(), pairs.b.tolist()))) == len(pairs)  # no duplicates
    assert pair_kinds(pairs, domains) == {"masked_full": 140, "masked_masked": 0, "full_full": 0}


def test_generation_is_deterministic_by_seed(rng):
    ids, domains = _dataset(rng)
    a = generate_pairs(ids, domains, 20, seed=1).pairs
    b = generate_pairs(ids, domains, 20, seed=1).pairs
    c = generate_pairs(ids, domains, 20, seed=2).pairs
    assert np.array_equal(a.a, b.a) and np.array_equal(a.b, b.b)
    assert not (np.array_equal(a.a, c.a) and np.array_equal(a.b, c.b))


def test_generation_shrinks_to_the_data_and_says_so(rng):
    ids, domains = _dataset(rng)  # 6 ids x 3 masked x 4 full = 72 matched pairs -> 7 per fold
    gen = generate_pairs(ids, domains, pairs_per_fold=10_000, seed=0)
    assert gen.available_matched == 72 and gen.matched_per_fold == 7 and gen.shrunk
    assert len(gen.pairs) == 140
    assert "7 matched + 7 unmatched per fold" in gen.note() and "72" in gen.note()
    assert len(set(zip(gen.pairs.a.tolist(), gen.pairs.b.tolist()))) == 140


def test_unmatched_sampling_without_duplicates_on_large_grids():
    # more masked x full combinations than the permutation limit: the rejection sampler path
    rng = np.random.default_rng(0)
    n = 6000
    ids = rng.integers(0, 50, n).astype(str)
    domains = (np.arange(n) % 2).astype(np.uint8)
    gen = generate_pairs(ids, domains, pairs_per_fold=400, seed=0)
    pairs = gen.pairs
    assert 3000 * 3000 > 8_000_000 and len(pairs) == 4000
    assert len(set(zip(pairs.a.tolist(), pairs.b.tolist()))) == 4000
    assert np.array_equal(ids[pairs.a] == ids[pairs.b], pairs.same)


def test_single_identity_yields_no_pairs():
    gen = generate_pairs(["a"] * 6, [0, 1, 0, 1, 0, 1], pairs_per_fold=10)
    assert len(gen.pairs) == 0 and gen.shrunk and gen.available_unmatched == 0


def test_odd_pairs_per_fold_is_rejected():
    with pytest.raises(MfrError, match="even"):
        generate_pairs(["a", "b"], [0, 1], pairs_per_fold=7)
