"""``mfr align`` end to end on tiny self-made folders: outputs, failures, resume, shards."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mfr.align import batch
from mfr.align.landmarks import load_landmarks
from mfr.cli import main as cli_main


def main(argv: list[str]) -> int:
    """``mfr ARGV`` in-process; its exit status."""
    return cli_main(argv)


def _face(width: int, flip: bool = False) -> Image.Image:
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    with Image.open(path) as image:
        image = image.convert("RGB").resize((width, round(width * 600 / 512)), Image.BILINEAR)
    return image.transpose(Image.FLIP_LEFT_RIGHT) if flip else image


@pytest.fixture
def source(tmp_path):
    """alice: 2 faces + unreadable + noise; bob: 1 face, 1 masked-folder face, 1 tiny image."""
    root = tmp_path / "src"
    (root / "alice").mkdir(parents=True)
    (root / "bob" / "masked").mkdir(parents=True)
    (root / "_cache").mkdir()
    _face(160).save(root / "alice" / "a1.jpg")
    _face(170, flip=True).save(root / "alice" / "a2.png")
    (root / "alice" / "broken.jpg").write_bytes(b"not a jpeg")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (150, 150, 3), dtype=np.uint8)).save(
        root / "alice" / "noise.png"
    )
    _face(150).save(root / "bob" / "b1.jpg")
    _face(165, flip=True).save(root / "bob" / "masked" / "b1.jpg")
    _face(30).save(root / "bob" / "tiny.jpg")
    _face(160).save(root / "_cache" / "ignored.jpg")
    (root / "alice" / "notes.txt").write_text("not an image")
    return root


ALIGNED = {"alice/a1.png", "alice/a2.png", "bob/b1.png", "bob/masked/b1.png"}


def _csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_align_writes_images_sidecar_manifest_and_failures(source, tmp_path, capsys):
    dst = tmp_path / "dst"
    assert main(["align", str(source), str(dst), "--workers", "1", "--size", "96", "-q"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "aligned 4 / no face 1 / unreadable 1 / too small 1 / fallback used 0" in out
    assert "skipped 1 files" in captured.err and "notes.txt" in captured.err
    for rel in ALIGNED:
        with Image.open(dst / rel) as image:
            assert image.size == (96, 96) and image.mode == "RGB"
    landmarks, size = load_landmarks(dst)
    assert set(landmarks) == ALIGNED and size == 96
    manifest = _csv(dst / "manifest.csv")
    assert {row["path"] for row in manifest} == ALIGNED
    domains = {row["path"]: (row["identity"], row["domain"]) for row in manifest}
    assert domains["bob/masked/b1.png"] == ("bob", "1") and domains["alice/a1.png"] == (
        "alice",
        "0",
    )
    reasons = {row["path"]: row["reason"] for row in _csv(dst / "failures.csv")}
    assert set(reasons) == {"alice/broken.jpg", "alice/noise.png", "bob/tiny.jpg"}
    assert "broken.jpg" in reasons["alice/broken.jpg"] and not reasons[
        "alice/broken.jpg"
    ].startswith("no face")
    assert reasons["alice/noise.png"].startswith("no face found")
    assert reasons["bob/tiny.jpg"].startswith("image too small")


def test_rerun_resumes_without_redoing_finished_files(source, tmp_path, capsys):
    dst = tmp_path / "dst"
    assert main(["align", str(source), str(dst), "--workers", "1", "-q"]) == 0
    capsys.readouterr()
    # Simulate an interruption: one image lost, a stray temp file of an unfinished write.
    (dst / "alice" / "a2.png").unlink()
    stray = dst / "bob" / ".b1.png.abc123.tmp"
    stray.write_bytes(b"half a png")
    kept = {rel: (dst / rel).stat().st_mtime_ns for rel in ALIGNED - {"alice/a2.png"}}
    os.utime(dst / "alice" / "a1.png", ns=(1, 1))  # any rewrite would change this
    kept["alice/a1.png"] = 1
    assert main(["align", str(source), str(dst), "--workers", "1", "-q"]) == 0
    out = capsys.readouterr().out
    assert "aligned 1 / no face 0 / unreadable 0" in out and "already done 6" in out
    assert {rel: (dst / rel).stat().st_mtime_ns for rel in kept} == kept
    assert (dst / "alice" / "a2.png").is_file() and not stray.exists()
    landmarks, _ = load_landmarks(dst)
    assert set(landmarks) == ALIGNED
    assert len(_csv(dst / "failures.csv")) == 3


def test_interrupted_run_keeps_flushed_progress_and_finishes_on_rerun(
    source, tmp_path, monkeypatch, capsys
):
    dst = tmp_path / "dst"
    real_process = batch._process
    calls = []

    def interrupted(item):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(item.output)
        return real_process(item)

    monkeypatch.setattr(batch, "_process", interrupted)
    assert main(["align", str(source), str(dst), "--workers", "1", "-q"]) == 130  # Ctrl-C
    assert list((dst / ".align-parts").glob("part-*.npz"))  # progress flushed on the way out
    monkeypatch.setattr(batch, "_process", real_process)
    done_before = {o: (dst / o).stat().st_mtime_ns for o in calls if (dst / o).is_file()}
    assert main(["align", str(source), str(dst), "--workers", "1", "-q"]) == 0
    assert "already done 3" in capsys.readouterr().out
    assert {o: (dst / o).stat().st_mtime_ns for o in done_before} == done_before
    assert set(load_landmarks(dst)[0]) == ALIGNED


def test_shards_are_disjoint_and_merge_gives_the_full_sidecar(source, tmp_path, capsys):
    dst = tmp_path / "dst"
    assert main(["align", str(source), str(dst), "--shard", "0/2", "--workers", "2", "-q"]) == 0
    first = set(load_landmarks(dst)[0])
    assert main(["align", str(source), str(dst), "--shard", "1/2", "--workers", "1", "-q"]) == 0
    capsys.readouterr()
    assert main(["align", "--merge", str(dst)]) == 0
    assert "merged: 4 aligned, 3 failed" in capsys.readouterr().out
    merged = set(load_landmarks(dst)[0])
    assert merged == ALIGNED and first and first < merged
    items = batch.list_sources(source)
    shards = [{i.output for i in batch.shard_items(items, k, 3)} for k in range(3)]
    assert sum(len(s) for s in shards) == len(items) == len(set().union(*shards))


def test_mfr2_layout_puts_masked_faces_under_masked(tmp_path):
    root = tmp_path / "mfr2"
    (root / "Ann").mkdir(parents=True)
    _face(160).save(root / "Ann" / "Ann_0001.png")
    _face(160, flip=True).save(root / "Ann" / "Ann_0002.png")
    (root / "mfr2_labels.txt").write_text("Ann, 1, no-mask\nAnn, 2, surgical_blue\n")
    items = {item.name: item.output for item in batch.list_sources(root)}
    assert items == {
        "Ann/Ann_0001.png": "Ann/Ann_0001.png",
        "Ann/Ann_0002.png": "Ann/masked/Ann_0002.png",
    }


def test_bad_arguments_give_one_line_errors(tmp_path, capsys):
    assert main(["align", str(tmp_path / "missing"), str(tmp_path / "out")]) == 2
    assert "missing: no such file or folder" in capsys.readouterr().err
    assert main(["align", str(tmp_path), str(tmp_path / "out"), "--shard", "2/2"]) == 2
    assert "--shard" in capsys.readouterr().err
    assert main(["align", str(tmp_path), str(tmp_path / "out"), "--pick", "biggest"]) == 2
    assert "--pick 'biggest'" in capsys.readouterr().err
    assert main(["align", "--merge", str(tmp_path)]) == 2
    assert "nothing to merge" in capsys.readouterr().err


def test_one_worker_reads_ahead_and_writes_behind_in_a_thread(source, tmp_path, monkeypatch):
    import threading

    from mfr.errors import OutputError

    threads = {"read": set(), "write": set()}
    real_read, real_write = batch.read_image, batch._write_replace

    def read(path):
        threads["read"].add(threading.current_thread().name)
        return real_read(path)

    def write(path, data):
        threads["write"].add(threading.current_thread().name)
        return real_write(path, data)

    monkeypatch.setattr(batch, "read_image", read)
    monkeypatch.setattr(batch, "_write_replace", write)
    dst = tmp_path / "dst"
    assert main(["align", str(source), str(dst), "--workers", "1", "-q"]) == 0
    assert set(load_landmarks(dst)[0]) == ALIGNED
    main_thread = threading.main_thread().name
    assert threads["read"] - {main_thread} and threads["write"] == threads["read"] - {main_thread}

    def failing(path, data):
        raise OutputError(f"cannot write {path}: disk full")

    monkeypatch.setattr(batch, "_write_replace", failing)  # a write behind that fails stops
    with pytest.raises(OutputError, match="disk full"):
        batch.align_folder(source, tmp_path / "other", workers=1, progress=False)
