"""``mfr mask`` end to end on a tiny aligned folder: layout, manifest, resume, bad images."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest
from _masking_faces import LFW_SAMPLES, face, grace_hopper_path

import mfr.masking.generate as generate
from mfr.align.landmarks import load_landmarks, save_landmarks
from mfr.cli import main as cli_main
from mfr.data.images import read_image

SIZE = 112


def main(argv) -> int:
    """``mfr ARGV`` in-process; its exit status."""
    return cli_main([str(a) for a in argv])


@pytest.fixture
def aligned(tmp_path, data_dir):
    """SRC with 4 real faces (112 px, landmarks scaled) + one corrupt file in the sidecar."""
    src = tmp_path / "src"
    sources = [("Grace_Hopper", str(grace_hopper_path()))] + [
        (rel.split("/")[0], str(data_dir / "lfw/images" / rel)) for rel in LFW_SAMPLES
    ]
    landmarks = {}
    for identity, path in sources:
        image, lm = face(path)
        scale_x, scale_y = SIZE / image.shape[1], SIZE / image.shape[0]
        small = cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        rel = f"{identity}/{identity}_0001.png"
        (src / identity).mkdir(parents=True)
        cv2.imwrite(str(src / rel), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        landmarks[rel] = lm * [scale_x, scale_y]
    (src / "Broken").mkdir()
    (src / "Broken/Broken_0001.png").write_bytes(b"not a png at all")
    landmarks["Broken/Broken_0001.png"] = landmarks[rel]
    save_landmarks(src, landmarks, SIZE)
    return src


GOOD = ["Grace_Hopper/Grace_Hopper_0001.png"] + [
    f"{rel.split('/')[0]}/{rel.split('/')[0]}_0001.png" for rel in LFW_SAMPLES
]


def _outputs(dst):
    return {p.relative_to(dst): p.read_bytes() for p in dst.rglob("*") if p.is_file()}


@pytest.mark.parametrize("method", ["erase", "hull", "template"])
def test_mask_writes_twins_labels_manifest_sidecar_and_lists_the_bad_image(
    method, aligned, tmp_path, capsys
):
    dst = tmp_path / "dst"
    grid = tmp_path / "grid.png"
    args = ["mask", str(aligned), str(dst), "--method", method, "--quiet", "--preview", str(grid)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "4 written, 0 already done, 1 failed of 5" in captured.out
    assert "Broken/Broken_0001.png: not an image file" in captured.err
    for rel in GOOD:
        identity, name = rel.split("/")
        full, masked = dst / rel, dst / identity / "masked" / name
        label = read_image(dst / "_labels" / identity / name.replace(".png", ".png"))[..., 0]
        assert full.read_bytes() == (aligned / rel).read_bytes()
        original, twin = read_image(full), read_image(masked)
        changed = (original != twin).any(axis=2)
        assert not (changed & (label == 0)).any()
        assert label.any() and set(np.unique(label)) <= {0, 255}
    with open(dst / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8
    assert {(r["path"], r["identity"], r["domain"]) for r in rows} >= {
        ("Grace_Hopper/Grace_Hopper_0001.png", "Grace_Hopper", "0"),
        ("Grace_Hopper/masked/Grace_Hopper_0001.png", "Grace_Hopper", "1"),
    }
    copied, size = load_landmarks(dst)
    source, _ = load_landmarks(aligned)
    assert size == SIZE and sorted(copied) == sorted(GOOD)
    np.testing.assert_array_equal(copied[GOOD[0]], source[GOOD[0]])
    with open(dst / "_failures.csv", newline="") as handle:
        failures = list(csv.DictReader(handle))
    assert [f["path"] for f in failures] == ["Broken/Broken_0001.png"]
    assert "not an image file" in failures[0]["reason"]
    assert not (dst / "Broken").exists()
    assert read_image(grid).shape == (3 * 112, 4 * 112, 3)


def test_interrupted_run_resumes_without_rewriting_finished_files(aligned, tmp_path, monkeypatch):
    fresh = tmp_path / "fresh"
    assert main(["mask", str(aligned), str(fresh), "--seed", "5", "--quiet"]) == 0

    dst = tmp_path / "dst"
    real_mask_one, calls = generate.mask_one, []

    def interrupted(item):
        calls.append(item[0])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_mask_one(item)

    monkeypatch.setattr(generate, "mask_one", interrupted)
    # Ctrl-C on the third image: typer exits with status 130 (128 + SIGINT)
    assert main(["mask", str(aligned), str(dst), "--seed", "5", "--quiet"]) == 130
    monkeypatch.setattr(generate, "mask_one", real_mask_one)
    done = [p for p in dst.rglob("*") if p.is_file()]
    assert not [p for p in done if p.name.endswith(".tmp")]
    stamps = {p: p.stat().st_mtime_ns for p in done}
    assert len(stamps) == 3 * 2  # two finished pairs (twin, full face, label each)

    assert main(["mask", str(aligned), str(dst), "--seed", "5", "--quiet"]) == 0
    assert {p: p.stat().st_mtime_ns for p in done} == stamps
    assert _outputs(dst) == _outputs(fresh)  # same bytes as an uninterrupted run


def test_workers_and_order_do_not_change_results(aligned, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["mask", str(aligned), str(one), "--seed", "1", "--quiet"]) == 0
    assert main(["mask", str(aligned), str(two), "--seed", "1", "--quiet", "--workers", "2"]) == 0
    assert _outputs(one) == _outputs(two)
    three = tmp_path / "three"
    assert main(["mask", str(aligned), str(three), "--seed", "2", "--quiet"]) == 0
    masked = "Grace_Hopper/masked/Grace_Hopper_0001.png"
    assert (
        _outputs(three)[type(next(iter(_outputs(one))))(masked)]
        != _outputs(one)[type(next(iter(_outputs(one))))(masked)]
    )


def test_template_folder_and_type_mix_from_the_command_line(aligned, tmp_path, data_dir):
    dst = tmp_path / "dst"
    masks = data_dir / "mask-templates"
    args = ["mask", str(aligned), str(dst), "--masks", str(masks), "--types", "N95:1,cloth:1"]
    assert main([*args, "--quiet"]) == 0
    assert (dst / "Grace_Hopper/masked/Grace_Hopper_0001.png").is_file()


def test_user_errors_are_one_line_naming_the_problem(tmp_path, aligned, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["mask", str(empty), str(tmp_path / "out"), "--quiet"]) == 2
    assert "landmarks.npz: no landmarks sidecar" in capsys.readouterr().err
    assert main(["mask", str(aligned), str(tmp_path / "o"), "--types", "balaclava"]) == 2
    assert "unknown mask type 'balaclava'" in capsys.readouterr().err
    assert main(["mask", str(aligned), str(tmp_path / "o"), "--method", "blur"]) == 2
    assert "unknown masking method 'blur'" in capsys.readouterr().err
    assert main(["mask", str(aligned), str(aligned)]) == 2
    assert "the output folder is the input folder" in capsys.readouterr().err


def test_an_image_whose_landmarks_cannot_be_fitted_is_listed_not_fatal(aligned, tmp_path):
    landmarks, size = load_landmarks(aligned)
    landmarks[GOOD[1]] = np.zeros((68, 2), np.float32)  # collapsed landmarks
    save_landmarks(aligned, landmarks, size)
    dst = tmp_path / "dst"
    assert main(["mask", str(aligned), str(dst), "--quiet"]) == 0
    with open(dst / "_failures.csv", newline="") as handle:
        reasons = {row["path"]: row["reason"] for row in csv.DictReader(handle)}
    assert "masking failed (degenerate anchor points" in reasons[GOOD[1]]
    assert not (dst / GOOD[1]).exists()
    assert (dst / GOOD[2]).is_file() and len(reasons) == 2
