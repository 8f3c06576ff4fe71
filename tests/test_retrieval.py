"""CMC / mAP: the fast path equals the plain per-probe loop, and both follow the equations."""

from __future__ import annotations

import numpy as np
import pytest

from mfr.errors import MfrError
from mfr.eval.embeddings import l2_normalise
from mfr.eval.retrieval import retrieval_metrics, retrieval_reference


def _random_case(rng, num_probes, num_gallery, dim, num_ids):
    probes = rng.standard_normal((num_probes, dim)).astype(np.float32)
    gallery = rng.standard_normal((num_gallery, dim)).astype(np.float32)
    probe_ids = rng.integers(0, num_ids, num_probes).astype(str)
    gallery_ids = rng.integers(0, num_ids, num_gallery).astype(str)
    return probes, probe_ids, gallery, gallery_ids


def _quantised_unit(rng, n):
    """Vectors with 16 entries of +-1/4: unit norm exactly, dot products exact multiples of 1/16,
    so similarities tie often and identically however they are computed."""
    return (np.sign(rng.standard_normal((n, 16))) / 4).astype(np.float32)


def _assert_same(fast, ref):
    assert np.array_equal(fast.cmc, ref.cmc)
    np.testing.assert_allclose(fast.average_precision, ref.average_precision, rtol=0, atol=1e-12)
    assert (fast.num_probes, fast.num_gallery, fast.skipped_probes) == (
        ref.num_probes,
        ref.num_gallery,
        ref.skipped_probes,
    )


@pytest.mark.parametrize("chunk_size", [1, 7, 1024])
def test_fast_cmc_map_equal_per_probe_loop_on_random_data(rng, chunk_size):
    for _ in range(5):
        probes, pid, gallery, gid = _random_case(rng, 37, 53, 8, 9)
        sim = l2_normalise(probes) @ l2_normalise(gallery).T
        fast = retrieval_metrics(probes, pid, gallery, gid, chunk_size=chunk_size)
        _assert_same(fast, retrieval_reference(sim, pid, gid))


@pytest.mark.parametrize("chunk_size", [3, 1024])
def test_fast_cmc_map_equal_per_probe_loop_with_ties(rng, chunk_size):
    probes, gallery = _quantised_unit(rng, 40), _quantised_unit(rng, 60)
    pid = rng.integers(0, 6, 40).astype(str)
    gid = rng.integers(0, 6, 60).astype(str)
    sim = probes @ gallery.T
    assert len(np.unique(sim[0])) < sim.shape[1] // 2  # the case really has many ties
    fast = retrieval_metrics(probes, pid, gallery, gid, chunk_size=chunk_size)
    _assert_same(fast, retrieval_reference(sim, pid, gid))
    _assert_same(retrieval_metrics(None, pid, None, gid, similarity=sim), fast)


def test_cmc_and_ap_follow_the_definitions_on_a_hand_made_ranking():
    # probe 0 (id a): gallery order by similarity = [g0 a, g1 b, g2 a, g3 b] -> hits at ranks 1, 3
    # probe 1 (id b): order = [g0 a, g2 a, g3 b, g1 b] -> hits at ranks 3, 4
    sim = np.array([[0.9, 0.8, 0.7, 0.1], [0.9, 0.1, 0.8, 0.7]], dtype=np.float32)
    pid, gid = np.array(["a", "b"]), np.array(["a", "b", "a", "b"])
    for result in (retrieval_metrics(None, pid, None, gid, similarity=sim),
                   retrieval_reference(sim, pid, gid)):  # fmt: skip
        np.testing.assert_allclose(result.average_precision, [(1 + 2 / 3) / 2, (1 / 3 + 2 / 4) / 2])
        assert result.rank(1) == 0.5 and result.rank(2) == 0.5 and result.rank(3) == 1.0
        assert result.rank(10) == 1.0  # beyond the gallery size: the whole gallery
        assert result.mean_average_precision == pytest.approx(((5 / 3) / 2 + (5 / 6) / 2) / 2)


def test_ties_are_broken_by_gallery_index():
    # every gallery item scores the same: the stable order is the gallery index order
    sim = np.zeros((2, 3), dtype=np.float32)
    pid, gid = np.array(["x", "y"]), np.array(["y", "z", "x"])
    result = retrieval_metrics(None, pid, None, gid, similarity=sim)
    # x's match is at index 2 (rank 3), y's at index 0 (rank 1)
    np.testing.assert_allclose(result.average_precision, [1 / 3, 1.0])
    np.testing.assert_allclose(result.cmc, [0.5, 0.5, 1.0])


def test_probe_without_gallery_identity_is_skipped_and_counted(rng):
    probes, _, gallery, _ = _random_case(rng, 5, 6, 4, 1)
    pid = np.array(["a", "b", "ghost", "a", "ghost2"])
    gid = np.array(["a", "b", "a", "b", "a", "b"])
    result = retrieval_metrics(probes, pid, gallery, gid)
    assert result.skipped_probes == 2 and result.num_probes == 3
    assert len(result.average_precision) == 3
    sim = l2_normalise(probes) @ l2_normalise(gallery).T
    _assert_same(result, retrieval_reference(sim, pid, gid))
    kept = np.array([0, 1, 3])
    alone = retrieval_metrics(probes[kept], pid[kept], gallery, gid)
    np.testing.assert_allclose(result.average_precision, alone.average_precision)


def test_single_identity_gives_perfect_scores(rng):
    probes, _, gallery, _ = _random_case(rng, 4, 3, 5, 1)
    result = retrieval_metrics(probes, ["p"] * 4, gallery, ["p"] * 3)
    assert result.rank(1) == 1.0 and result.mean_average_precision == 1.0


def test_all_probes_skipped_gives_no_probes():
    sim = np.ones((2, 2), dtype=np.float32)
    result = retrieval_metrics(None, ["a", "a"], None, ["b", "c"], similarity=sim)
    assert result.num_probes == 0 and result.skipped_probes == 2
    assert np.isnan(result.rank(1)) and np.isnan(result.mean_average_precision)


def test_empty_probe_or_gallery_is_a_clear_error(rng):
    gallery = rng.standard_normal((3, 4)).astype(np.float32)
    with pytest.raises(MfrError, match="probe"):
        retrieval_metrics(np.zeros((0, 4), np.float32), [], gallery, ["a", "b", "c"])
    with pytest.raises(MfrError, match="gallery"):
        retrieval_metrics(gallery, ["a", "b", "c"], np.zeros((0, 4), np.float32), [])
