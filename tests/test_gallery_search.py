"""Identity search: exact against a naive reference, faiss identical to exact."""

from __future__ import annotations

import numpy as np
import pytest

from mfr.gallery.search import GallerySearch

pytest.importorskip("faiss")


def naive_top_k(gallery, identities, probes, k):
    """Reference: per probe, each identity's best cosine, sorted (score desc, name)."""
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    gallery, probes = unit(gallery.astype(np.float64)), unit(probes.astype(np.float64))
    out = []
    for probe in probes:
        best = {}
        for row, identity in enumerate(identities):
            score = float(gallery[row] @ probe)
            if identity not in best or score > best[identity][0]:
                best[identity] = (score, row)
        ranked = sorted(best.items(), key=lambda item: (-item[1][0], item[0]))[:k]
        out.append([(name, score, row) for name, (score, row) in ranked])
    return out


def data(rng, identities=30, per_identity=(1, 4), probes=12, dim=16):
    counts = rng.integers(per_identity[0], per_identity[1] + 1, identities)
    names = np.repeat([f"id{i:03d}" for i in range(identities)], counts)
    order = rng.permutation(len(names))  # entries of one identity are not contiguous
    return rng.normal(size=(len(names), dim)), names[order], rng.normal(size=(probes, dim))


@pytest.mark.parametrize("per_identity", [(1, 1), (1, 4)])
def test_exact_search_matches_naive_max_over_identity_images(rng, per_identity):
    gallery, names, probes = data(rng, per_identity=per_identity)
    got = GallerySearch(gallery, names).search(probes, k=5)
    want = naive_top_k(gallery, names, probes, 5)
    for g, w in zip(got, want, strict=True):
        assert [m.identity for m in g] == [name for name, _, _ in w]
        np.testing.assert_allclose([m.score for m in g], [s for _, s, _ in w], atol=1e-5)
        assert [m.entry for m in g] == [row for _, _, row in w]


@pytest.mark.parametrize("per_identity", [(1, 1), (2, 6)])
def test_faiss_flat_gives_the_same_top_k_as_exact(rng, per_identity):
    gallery, names, probes = data(rng, identities=200, per_identity=per_identity, probes=50)
    exact = GallerySearch(gallery, names, "exact").search(probes, k=10)
    faiss = GallerySearch(gallery, names, "faiss").search(probes, k=10)
    for e, f in zip(exact, faiss, strict=True):
        assert [m.identity for m in e] == [m.identity for m in f]
        assert [m.entry for m in e] == [m.entry for m in f]
        np.testing.assert_allclose([m.score for m in e], [m.score for m in f], atol=1e-5)


def test_k_larger_than_the_gallery_returns_every_identity_once(rng):
    gallery, names, probes = data(rng, identities=3, per_identity=(2, 3), probes=2)
    for backend in ("exact", "faiss"):
        result = GallerySearch(gallery, names, backend).search(probes, k=10)
        assert all(sorted(m.identity for m in r) == ["id000", "id001", "id002"] for r in result)


def test_exact_search_in_blocks_equals_one_block(rng, monkeypatch):
    import mfr.gallery.search as search

    gallery, names, probes = data(rng, identities=50, probes=40)
    whole = GallerySearch(gallery, names).search(probes, k=3)
    monkeypatch.setattr(search, "BLOCK_BYTES", 4 * len(gallery) * 7)  # 7 probes per block
    blocks = GallerySearch(gallery, names).search(probes, k=3)
    # same identities and entries in the same order; a float32 GEMM's last bit may depend on
    # the block's row count (BLAS kernel choice), so scores agree to float32 rounding
    assert [[(m.identity, m.entry) for m in r] for r in whole] == [
        [(m.identity, m.entry) for m in r] for r in blocks
    ]
    for w, b in zip(whole, blocks):
        np.testing.assert_allclose([m.score for m in w], [m.score for m in b], rtol=0, atol=1e-6)


def test_approximate_faiss_indexes_find_an_exact_match(rng):
    from mfr.gallery.search import build_faiss_index

    gallery = rng.normal(size=(500, 16)).astype(np.float32)
    for kind in ("ivf", "hnsw"):
        index = build_faiss_index(gallery, kind)
        _, found = index.search(
            np.ascontiguousarray(
                gallery[:20] / np.linalg.norm(gallery[:20], axis=1, keepdims=True)
            ),
            1,
        )
        assert (found[:, 0] == np.arange(20)).mean() >= 0.9
