"""End to end on mfr2-dev: enrol its full faces, identify its masked photos with the CLI, and
check the CLI's Rank-1 equals `mfr eval`'s on the same model's embeddings."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gallery_helpers import run_mfr, tiny_onnx


def mfr2_images(root):
    """(path, identity, domain) of every labelled mfr2-dev image (domain 1 = masked)."""
    out = []
    for line in (root / "mfr2_labels.txt").read_text().splitlines():
        identity, number, kind = (part.strip() for part in line.split(","))
        path = root / identity / f"{identity}_{int(number):04d}.png"
        out.append((path, identity, 0 if kind == "no-mask" else 1))
    return out


def cli_rank1_and_eval_rank1(tmp_path, capsys, root, model, align_flags):
    from mfr.api import FaceRecognizer
    from mfr.eval.embeddings import save_embeddings

    gallery = tmp_path / "mfr2.npz"
    code, out, err = run_mfr(capsys, "enroll", gallery, root, "--model", model, *align_flags)
    assert code == 0, err
    images = mfr2_images(root)
    masked = [p for p, _, d in images if d == 1]
    code, out, err = run_mfr(
        capsys, "identify", gallery, *masked, "--k", "1", "--json", *align_flags
    )
    assert code == 0, err
    results = json.loads(out)["results"]
    hits = [r["matches"][0]["identity"] == r["photo"].split("/")[-2] for r in results]

    # the same images through the same model, written as an embeddings file for `mfr eval`
    recognizer = FaceRecognizer.load(model)
    aligned = True if "--aligned" in align_flags else None
    result = recognizer.embed_many([p for p, _, _ in images], aligned=aligned)
    kept = [images[i] for i in result.kept]
    emb = tmp_path / "emb.npz"
    save_embeddings(
        emb,
        result.embeddings,
        np.array([i for _, i, _ in kept]),
        np.array([d for _, _, d in kept], np.uint8),
        np.array([str(p) for p, _, _ in kept]),
    )
    code, _, err = run_mfr(capsys, "eval", emb, "--json", tmp_path / "eval.json")
    assert code == 0, err
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["num_probes"] == len(results)
    return 100 * np.mean(hits), report["rank1"]


def test_tiny_model_cli_rank1_equals_eval_rank1_on_mfr2_dev(tmp_path, capsys, data_dir):
    model = tiny_onnx(tmp_path / "tiny.onnx")
    cli, evaluated = cli_rank1_and_eval_rank1(
        tmp_path, capsys, data_dir / "mfr2-dev", model, ["--aligned"]
    )
    assert cli == pytest.approx(evaluated, abs=1e-3)  # the report rounds to 4 decimals


@pytest.mark.slow
def test_dlib_cli_rank1_equals_eval_rank1_on_mfr2_dev(tmp_path, capsys, data_dir):
    pytest.importorskip("mfr.embedders.dlib")
    cli, evaluated = cli_rank1_and_eval_rank1(tmp_path, capsys, data_dir / "mfr2-dev", "dlib", [])
    print(f"dlib on mfr2-dev (detect + align): CLI Rank-1 {cli:.2f}%, mfr eval {evaluated:.2f}%")
    assert cli == pytest.approx(evaluated, abs=1e-3)  # the report rounds to 4 decimals
