"""The demo's pieces: rmfrd-dev scored end to end (an unaligned masked probe is a miss)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gallery_helpers import face_like, tiny_onnx, write_png

from mfr.experiments.config import ExperimentConfig
from mfr.experiments.prepare import MARKER, Prepared


def test_rmfrd_test_counts_probes_that_could_not_be_aligned_as_misses(tmp_path, rng):
    from mfr.cli import main
    from mfr.experiments.demo import rmfrd_test

    aligned = tmp_path / "data" / "rmfrd-dev-112"
    for identity in range(3):
        write_png(aligned / f"p{identity}" / "full.png", face_like(rng, identity))
        write_png(aligned / f"p{identity}" / "masked" / "m.png", face_like(rng, identity))
    failures = ["path,reason", "p0/masked/x.jpg,no face", "p1/masked/y.jpg,no face", "p2/z.jpg,x"]
    (aligned / "failures.csv").write_text("\n".join(failures) + "\n")
    (aligned / MARKER).touch()
    model = str(tiny_onnx(tmp_path / "tiny.onnx"))
    config = ExperimentConfig(data_dir=str(tmp_path / "data"), rmfrd="rmfrd-dev")
    result = rmfrd_test(model, Prepared(config, log=lambda _: None), tmp_path / "out", print)
    # naive: the same embeddings scored by `mfr eval`, then 2 more probes that all miss
    assert main(["eval", str(tmp_path / "out/rmfrd.npz"), "--json", str(tmp_path / "e.json")]) == 0
    plain = json.loads((tmp_path / "e.json").read_text())
    assert (result["num_probes"], result["failed_probes"]) == (5, 2)
    for key in ("rank1", "rank5", "mAP"):
        assert result[key] == pytest.approx(plain[key] * 3 / 5)
    assert result["accuracy"] is None
    assert np.isfinite(plain["rank1"])
