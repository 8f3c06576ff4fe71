"""``mfr eval --dataset``: end-to-end figures against a hand count on a tiny dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mfr.cli import main
from mfr.eval.retrieval import RetrievalResult, with_missed_probes

# The dataset: three people with one full face each; masked probes A1, A2, B1, C1; and a
# masked probe of D, who has no full face (skipped in every view).
DATASET = [
    "A/full.jpg",
    "B/full.jpg",
    "C/full.jpg",
    "A/masked/a1.jpg",
    "A/masked/a2.jpg",
    "B/masked/b1.jpg",
    "C/masked/c1.jpg",
    "D/masked/d1.jpg",
]


def _dataset(root):
    for relative in DATASET:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not decoded by eval")
    return root


def _embeddings(path, rows):
    vectors, ids, domains, paths = [], [], [], []
    for relative, vector in rows:
        parts = relative.split("/")
        vectors.append(vector)
        ids.append(parts[0])
        domains.append(int("masked" in parts))
        paths.append(relative.rsplit(".", 1)[0] + ".png")  # as `mfr align` names them
    np.savez(
        path,
        embeddings=np.array(vectors, np.float32),
        identities=np.array(ids),
        domains=np.array(domains, np.uint8),
        paths=np.array(paths),
    )
    return path


# Embedded: the three full faces, A1 (nearest A: rank 1), B1 (nearest A, then B: rank 2) and
# D1. Not embedded: A2 and C1 (alignment failed).
EMBEDDED = [
    ("A/full.jpg", [1.0, 0.0, 0.0]),
    ("B/full.jpg", [0.0, 1.0, 0.0]),
    ("C/full.jpg", [0.0, 0.0, 1.0]),
    ("A/masked/a1.jpg", [1.0, 0.1, 0.0]),
    ("B/masked/b1.jpg", [0.9, 0.5, 0.0]),
    ("D/masked/d1.jpg", [0.3, 0.3, 0.3]),
]


def test_end_to_end_figures_match_a_hand_count(tmp_path):
    dataset = _dataset(tmp_path / "data")
    emb = _embeddings(tmp_path / "emb.npz", EMBEDDED)
    out = tmp_path / "e2e.json"
    assert main(["eval", str(emb), "--dataset", str(dataset), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    # hand count, end to end: 4 probes with a gallery identity (A1, A2, B1, C1); first true
    # match at rank 1 (A1) and 2 (B1); A2 and C1 are misses. D1 is skipped (no gallery).
    assert report["end_to_end"] is True
    assert report["num_probes"] == 4 and report["failed_probes"] == 2
    assert report["skipped_probes"] == 1
    assert report["rank1"] == pytest.approx(100 * 1 / 4)
    assert report["rank5"] == pytest.approx(100 * 2 / 4)  # gallery of 3: rank 5 = all 3
    assert report["mAP"] == pytest.approx(100 * (1 + 1 / 2 + 0 + 0) / 4)
    embedded = report["embedded_only"]
    assert embedded["num_probes"] == 2
    assert embedded["rank1"] == pytest.approx(50.0)
    assert embedded["mAP"] == pytest.approx(100 * (1 + 1 / 2) / 2)


def test_without_dataset_the_figures_are_embedded_only(tmp_path):
    emb = _embeddings(tmp_path / "emb.npz", EMBEDDED)
    out = tmp_path / "plain.json"
    assert main(["eval", str(emb), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["end_to_end"] is False and report["failed_probes"] is None
    assert report["num_probes"] == 2 and report["rank1"] == pytest.approx(50.0)


def test_a_probe_whose_gallery_all_failed_is_a_miss_end_to_end(tmp_path):
    dataset = _dataset(tmp_path / "data")
    rows = [row for row in EMBEDDED if row[0] != "B/full.jpg"]  # B's only full face failed
    emb = _embeddings(tmp_path / "emb.npz", rows)
    out = tmp_path / "e2e.json"
    assert main(["eval", str(emb), "--dataset", str(dataset), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    # probes A1 (rank 1), A2, B1 (its gallery is gone), C1: one hit of four
    assert report["num_probes"] == 4 and report["gallery_lost_probes"] == 1
    assert report["rank1"] == pytest.approx(25.0) and report["mAP"] == pytest.approx(25.0)


def test_embeddings_from_another_dataset_are_refused(tmp_path, capsys):
    dataset = _dataset(tmp_path / "data")
    emb = _embeddings(tmp_path / "emb.npz", [*EMBEDDED, ("E/full.jpg", [0.5, 0.5, 0.0])])
    assert main(["eval", str(emb), "--dataset", str(dataset)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mfr: error:") and "no image in" in err and "Traceback" not in err


def test_missed_probes_scale_cmc_and_add_zero_ap():
    result = RetrievalResult(np.array([0.5, 1.0]), np.array([1.0, 0.5]), 2, 2, 0)
    total = with_missed_probes(result, 2)
    assert total.num_probes == 4
    assert total.cmc.tolist() == [0.25, 0.5]
    assert total.mean_average_precision == pytest.approx(0.375)


def test_per_probe_results_hold_the_hand_count_with_the_misses_end_to_end(tmp_path):
    from mfr.embedders import dataset_faces
    from mfr.eval import evaluate
    from mfr.eval.bootstrap import MISS
    from mfr.eval.probes import load_probe_results

    dataset = _dataset(tmp_path / "data")
    emb = _embeddings(tmp_path / "emb.npz", EMBEDDED)
    report = evaluate(emb, log=lambda _: None, dataset=dataset, probes_out=tmp_path / "p.npz",
                      dataset_faces=dataset_faces(dataset))  # fmt: skip
    probes = load_probe_results(tmp_path / "p.npz")
    # embedded A1 (rank 1) and B1 (rank 2), then the misses A2 and C1; D1 skipped
    assert sorted(probes.identities.tolist()) == ["A", "A", "B", "C"]
    assert sorted(probes.first_rank.tolist()) == [0, 1, MISS, MISS]
    assert sorted(probes.keys.tolist()) == ["A/a2", "A/masked/a1.png", "B/masked/b1.png", "C/c1"]
    assert dict(zip(probes.keys.tolist(), probes.first_rank.tolist()))["B/masked/b1.png"] == 1
    assert 100 * probes.values("rank1").mean() == pytest.approx(report["rank1"])
    assert 100 * probes.values("rank5").mean() == pytest.approx(report["rank5"])
    assert 100 * probes.values("mAP").mean() == pytest.approx(report["mAP"])
