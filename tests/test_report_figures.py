"""Top-k retrieval (Fig. 8 rows) against a brute-force ranking, and the grid's layout."""

from __future__ import annotations

import numpy as np

from mfr.report.figures import retrieval_grid, top_k_matches


def test_top_k_matches_equal_brute_force_cosine_ranking(rng):
    emb = rng.normal(size=(12, 5)).astype(np.float32)
    domains = np.array([0, 1] * 6, np.uint8)
    matches = top_k_matches(emb, domains, probes=[1, 3], k=3)
    for probe, found in zip([1, 3], matches):
        scored = []
        for j in range(12):
            if domains[j] == 0:
                cos = emb[probe] @ emb[j] / (np.linalg.norm(emb[probe]) * np.linalg.norm(emb[j]))
                scored.append((-cos, j))
        expected = [j for _, j in sorted(scored)[:3]]
        assert [row for row, _ in found] == expected
        assert all(domains[row] == 0 for row, _ in found)


def test_retrieval_grid_has_one_row_per_probe_and_colours_matches():
    faces = [np.full((20, 20, 3), v, np.uint8) for v in (0, 60, 120, 180)]
    grid = retrieval_grid(faces, ["a", "a", "b", "b"], [(0, [(1, 0.9), (2, 0.5)])], tile=32)
    assert grid.size == (3 * 36, 32 + 14 + 4)
    pixels = np.asarray(grid)
    assert tuple(pixels[1, 36 + 1]) == (40, 170, 60)  # same identity: green box
    assert tuple(pixels[1, 72 + 1]) == (210, 40, 40)  # other identity: red box
