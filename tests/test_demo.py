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
    from mfr.experiments.runner import _test_rmfrd

    source = tmp_path / "shared" / "rmfrd-dev"  # before alignment: 5 masked probes
    aligned = tmp_path / "data" / "rmfrd-dev-112"  # after: 2 of them were not aligned
    for identity in range(3):
        for folder in (source, aligned):
            write_png(folder / f"p{identity}" / "full.png", face_like(rng, identity))
            write_png(folder / f"p{identity}" / "masked" / "m.png", face_like(rng, identity))
    write_png(source / "p0" / "masked" / "x.png", face_like(rng, 0))
    write_png(source / "p1" / "masked" / "y.png", face_like(rng, 1))
    (aligned / MARKER).touch()
    model = str(tiny_onnx(tmp_path / "tiny.onnx"))
    config = ExperimentConfig(data_dir=str(tmp_path / "data"), rmfrd=str(source))
    result = _test_rmfrd(model, Prepared(config, log=lambda _: None), tmp_path / "out", print)
    # naive: the same embeddings scored by `mfr eval`, then 2 more probes that all miss
    assert main(["eval", str(tmp_path / "out/rmfrd.npz"), "--json", str(tmp_path / "e.json")]) == 0
    plain = json.loads((tmp_path / "e.json").read_text())
    assert (result["num_probes"], result["failed_probes"]) == (5, 2)
    for key in ("rank1", "rank5", "mAP"):
        assert result[key] == pytest.approx(plain[key] * 3 / 5)
    assert result["end_to_end"] is True
    assert np.isfinite(plain["rank1"])


def test_the_report_calls_a_model_better_only_when_the_bootstrap_intervals_do_not_overlap():
    from mfr.experiments.demo import comparison

    ours = {"rank1": 82.3, "rank1_ci": [73.0, 90.5]}
    dlib = {"rank1": 74.7, "rank1_ci": [64.6, 83.5]}
    line = comparison(ours, dlib, "rank1", "Rank-1 on mfr2-dev", "mfr-masked")
    assert "ahead by 7.6 points, within the noise" in line and "beats" not in line
    clear = comparison({"rank1": 95.0, "rank1_ci": [90.0, 99.0]}, dlib, "rank1", "R", "m")
    assert "m beats dlib" in clear and "do not overlap" in clear
    worse = comparison({"rank1": 50.0, "rank1_ci": [40.0, 60.0]}, dlib, "rank1", "R", "m")
    assert "dlib beats m" in worse
    assert "no intervals" in comparison({"rank1": 1.0}, {"rank1": 2.0}, "rank1", "R", "m")
