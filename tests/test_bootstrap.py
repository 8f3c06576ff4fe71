"""Bootstrap intervals of Rank-k and mAP: equal to a direct per-resample re-computation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mfr.errors import MfrError
from mfr.eval.bootstrap import MISS, bootstrap_intervals, identity_draws


def _direct(first_rank, ap, identities, draws, ks):
    """Each resample: gather the probes of every drawn identity (repeats included), then
    Rank-k = share of them with a first match in the top k, mAP = their mean AP."""
    names = sorted(set(identities))
    values = {f"rank{k}": [] for k in ks} | {"mAP": []}
    for row in draws:
        chosen = [p for i in row for p in range(len(identities)) if identities[p] == names[i]]
        for k in ks:
            values[f"rank{k}"].append(100.0 * np.mean([first_rank[p] < k for p in chosen]))
        values["mAP"].append(100.0 * np.mean([ap[p] for p in chosen]))
    return {key: [np.percentile(v, 2.5), np.percentile(v, 97.5)] for key, v in values.items()}


def test_identity_bootstrap_equals_direct_recomputation_on_small_case():
    rng = np.random.default_rng(3)
    identities = np.array(["a", "a", "b", "c", "c", "c", "d", "e", "e", "f"])
    first_rank = rng.integers(0, 12, size=len(identities)).astype(np.int64)
    first_rank[[2, 7]] = MISS  # two probes that could not be embedded
    ap = rng.uniform(0, 1, size=len(identities))
    ap[[2, 7]] = 0.0
    got = bootstrap_intervals(first_rank, ap, identities, num_resamples=200, seed=11)
    draws = identity_draws(6, 200, seed=11)
    want = _direct(first_rank, ap, identities, draws, (1, 5, 10))
    assert set(got) == {"rank1", "rank5", "rank10", "mAP"}
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-9)


def test_interval_brackets_the_point_estimate_and_is_seeded():
    rng = np.random.default_rng(0)
    identities = np.repeat(np.arange(40), 3)
    first_rank = rng.integers(0, 4, size=len(identities))
    ap = rng.uniform(size=len(identities))
    a = bootstrap_intervals(first_rank, ap, identities, num_resamples=500, seed=1)
    b = bootstrap_intervals(first_rank, ap, identities, num_resamples=500, seed=1)
    assert a == b
    rank1 = 100.0 * np.mean(first_rank < 1)
    assert a["rank1"][0] < rank1 < a["rank1"][1]
    assert a["mAP"][0] < 100.0 * ap.mean() < a["mAP"][1]


def test_one_identity_gives_a_zero_width_interval():
    got = bootstrap_intervals(np.array([0, 3, MISS]), np.array([1.0, 0.25, 0.0]), ["x"] * 3, 50)
    assert got["rank1"] == [pytest.approx(100 / 3)] * 2
    assert got["rank5"] == [pytest.approx(200 / 3)] * 2


@pytest.mark.parametrize(
    ("first_rank", "ap", "ids", "n", "message"),
    [
        ([], [], [], 10, "at least one probe"),
        ([0], [1.0], ["a"], 0, "at least 1 resample"),
        ([0, 1], [1.0], ["a", "b"], 10, "differ in length"),
    ],
)
def test_bad_bootstrap_arguments_raise_clear_errors(first_rank, ap, ids, n, message):
    with pytest.raises(MfrError, match=message):
        bootstrap_intervals(np.array(first_rank), np.array(ap), np.array(ids), n)


def _write_embeddings(path, rng, ids_full, ids_masked):
    vectors = rng.standard_normal((len(ids_full) + len(ids_masked), 8)).astype(np.float32)
    ids = np.array([*ids_full, *ids_masked])
    domains = np.array([0] * len(ids_full) + [1] * len(ids_masked), np.uint8)
    paths = np.array([f"{i}/{'masked/' * d}{n}.png" for n, (i, d) in enumerate(zip(ids, domains))])
    np.savez(path, embeddings=vectors, identities=ids, domains=domains, paths=paths)
    return vectors, ids, domains


def _naive_first_ranks(vectors, ids, domains):
    """Per probe, by a plain loop: 0-based rank of its first true match, its AP, its id."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    gallery = np.flatnonzero(domains == 0)
    first, aps, probe_ids = [], [], []
    for p in np.flatnonzero(domains == 1):
        order = gallery[np.argsort(-(unit[gallery] @ unit[p]), kind="stable")]
        hits = np.flatnonzero(ids[order] == ids[p])
        first.append(hits[0])
        aps.append(np.mean([(n + 1) / (r + 1) for n, r in enumerate(hits)]))
        probe_ids.append(ids[p])
    return np.array(first), np.array(aps), np.array(probe_ids)


def test_mfr_eval_bootstrap_writes_intervals_of_the_per_probe_ranks(tmp_path, rng):
    from mfr.cli import main

    full = [f"id{i}" for i in range(12) for _ in range(2)]
    masked = [f"id{i}" for i in range(12) for _ in range(3)]
    vectors, ids, domains = _write_embeddings(tmp_path / "e.npz", rng, full, masked)
    out = tmp_path / "r.json"
    assert main(["eval", str(tmp_path / "e.npz"), "--json", str(out), "--bootstrap", "300"]) == 0
    report = json.loads(out.read_text())
    first, aps, probe_ids = _naive_first_ranks(vectors, ids, domains)
    want = bootstrap_intervals(first, aps, probe_ids, num_resamples=300, seed=0)
    for key in ("rank1", "rank5", "rank10", "mAP"):
        assert report[f"{key}_ci"] == pytest.approx(want[key])
        assert report[f"{key}_ci"][0] <= report[key] <= report[f"{key}_ci"][1]
    assert report["rank1"] == pytest.approx(100 * np.mean(first < 1))


def test_end_to_end_bootstrap_resamples_the_probes_that_were_not_embedded(tmp_path, rng):
    from mfr.cli import main

    full = [f"id{i}" for i in range(6)]
    masked = [f"id{i}" for i in range(6)]
    vectors, ids, domains = _write_embeddings(tmp_path / "e.npz", rng, full, masked)
    dataset = tmp_path / "data"
    for n, (i, d) in enumerate(zip(ids, domains)):
        (dataset / i / ("masked" if d else "")).mkdir(parents=True, exist_ok=True)
        (dataset / i / ("masked" if d else "") / f"{n}.jpg").write_bytes(b"x")
    for i in (0, 1):  # two probes that were never embedded
        (dataset / f"id{i}" / "masked" / "lost.jpg").write_bytes(b"x")
    out = tmp_path / "r.json"
    argv = ["eval", str(tmp_path / "e.npz"), "--dataset", str(dataset), "--json", str(out)]
    assert main([*argv, "--bootstrap", "200", "--seed", "4"]) == 0
    report = json.loads(out.read_text())
    first, aps, probe_ids = _naive_first_ranks(vectors, ids, domains)
    first = np.r_[first, [MISS, MISS]]
    aps = np.r_[aps, [0.0, 0.0]]
    probe_ids = np.r_[probe_ids, ["id0", "id1"]]
    want = bootstrap_intervals(first, aps, probe_ids, num_resamples=200, seed=4)
    assert report["failed_probes"] == 2 and report["num_probes"] == 8
    for key in ("rank1", "mAP"):
        assert report[f"{key}_ci"] == pytest.approx(want[key])


def test_paired_difference_interval_equals_direct_recomputation_on_small_case():
    from mfr.eval.bootstrap import paired_difference_interval

    rng = np.random.default_rng(5)
    identities = np.array(["a", "a", "b", "c", "c", "c", "d", "e", "e", "f"])
    hits_a = rng.integers(0, 2, size=len(identities)).astype(float)
    hits_b = rng.integers(0, 2, size=len(identities)).astype(float)
    got = paired_difference_interval(hits_a, hits_b, identities, num_resamples=300, seed=4)
    names = sorted(set(identities))
    differences = []
    for row in identity_draws(6, 300, seed=4):
        chosen = [p for i in row for p in range(len(identities)) if identities[p] == names[i]]
        differences.append(100.0 * (np.mean(hits_a[chosen]) - np.mean(hits_b[chosen])))
    want = [np.percentile(differences, 2.5), np.percentile(differences, 97.5)]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_paired_interval_cancels_the_probe_noise_two_models_share():
    from mfr.eval.bootstrap import paired_difference_interval

    rng = np.random.default_rng(0)
    identities = np.repeat(np.arange(300), 3)
    hard = rng.uniform(0, 1, size=len(identities)) < 0.5  # hard probes: both models miss them
    hits_b = (~hard).astype(float)
    hits_a = hits_b.copy()
    hits_a[np.flatnonzero(hard)[:45]] = 1.0  # A also gets 45 of the hard ones: +5 points
    low, high = paired_difference_interval(hits_a, hits_b, identities, 1000, seed=1)
    ci_a = bootstrap_intervals(np.where(hits_a > 0, 0, 5), hits_a, identities, 1000, 1)["rank1"]
    ci_b = bootstrap_intervals(np.where(hits_b > 0, 0, 5), hits_b, identities, 1000, 1)["rank1"]
    assert 0 < low < 5 < high  # paired: the +5 points are decided
    assert ci_a[0] < ci_b[1]  # separately, the two intervals overlap
    assert paired_difference_interval(hits_a, hits_a, identities, 50) == [0.0, 0.0]
    with pytest.raises(MfrError, match="differ in length"):
        paired_difference_interval(hits_a, hits_b[:-1], identities, 10)
