"""Gallery file: round trip, edits, atomic writes, corrupt files and foreign models."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

import mfr.io
from mfr.errors import MfrError
from mfr.gallery.store import Gallery, ModelInfo, locked

MODEL = ModelInfo(spec="tiny.onnx", name="tiny", dim=8, fingerprint="sha256:" + "a" * 64)


def gallery_with(rng, counts: dict[str, int]) -> Gallery:
    gallery = Gallery.empty(MODEL)
    for identity, n in counts.items():
        gallery.add(identity, rng.normal(size=(n, 8)), [f"/p/{identity}/{i}.png" for i in range(n)])
    return gallery


def test_round_trip_keeps_normalised_embeddings_identities_paths_ids_and_model(tmp_path, rng):
    gallery = gallery_with(rng, {"ann": 2, "bob": 3})
    gallery.save(tmp_path / "g.npz")
    loaded = Gallery.load(tmp_path / "g.npz")
    np.testing.assert_array_equal(loaded.embeddings, gallery.embeddings)
    np.testing.assert_allclose(np.linalg.norm(loaded.embeddings, axis=1), 1.0, atol=1e-6)
    assert loaded.identities.tolist() == ["ann"] * 2 + ["bob"] * 3
    assert loaded.paths[2] == "/p/bob/0.png"
    assert loaded.ids.tolist() == [0, 1, 2, 3, 4]
    assert loaded.model == MODEL
    assert loaded.identity_counts() == {"ann": 2, "bob": 3}


def test_entry_ids_are_never_reused_after_removal(tmp_path, rng):
    gallery = gallery_with(rng, {"ann": 2, "bob": 1})
    assert gallery.remove("ann") == 2
    gallery.save(tmp_path / "g.npz")
    gallery = Gallery.load(tmp_path / "g.npz")
    new = gallery.add("cy", rng.normal(size=(1, 8)), ["/c.png"])
    assert new.tolist() == [3]
    assert gallery.remove(entry_ids=[2]) == 1
    assert gallery.identities.tolist() == ["cy"]


def test_rename_merges_into_an_existing_identity(rng):
    gallery = gallery_with(rng, {"ann": 2, "bob": 1})
    assert gallery.rename("bob", "ann") == 1
    assert gallery.identity_counts() == {"ann": 3}
    assert gallery.rename("nobody", "x") == 0


def test_crash_during_write_leaves_previous_gallery_intact(tmp_path, rng, monkeypatch):
    path = tmp_path / "g.npz"
    gallery = gallery_with(rng, {"ann": 2})
    gallery.save(path)
    before = path.read_bytes()
    gallery.add("bob", rng.normal(size=(3, 8)), ["a", "b", "c"])

    def crash(handle, **arrays):  # write half a file, then die as a killed process would
        handle.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        gallery.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert Gallery.load(path).identity_counts() == {"ann": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["g.npz"]  # no temp file left behind


def test_crash_before_rename_leaves_previous_gallery_intact(tmp_path, rng, monkeypatch):
    path = tmp_path / "g.npz"
    gallery_with(rng, {"ann": 1}).save(path)
    bigger = gallery_with(rng, {"ann": 1, "bob": 1})

    def fail_replace(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(mfr.io.os, "replace", fail_replace)
    with pytest.raises(OSError):
        bigger.save(path)
    monkeypatch.undo()
    assert Gallery.load(path).identity_counts() == {"ann": 1}


def test_readers_only_ever_see_complete_galleries_while_a_writer_saves(tmp_path, rng):
    path = tmp_path / "g.npz"
    gallery = gallery_with(rng, {"ann": 1})
    gallery.save(path)
    stop, seen, errors = threading.Event(), set(), []

    def reader():
        while not stop.is_set():
            try:
                seen.add(len(Gallery.load(path)))
            except Exception as error:  # any partial read would land here
                errors.append(error)

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(30):
        gallery.add(f"id{i}", rng.normal(size=(50, 8)), ["x"] * 50)
        gallery.save(path)
    stop.set()
    thread.join()
    assert not errors
    assert len(seen) >= 1


def test_corrupt_gallery_file_gives_one_clear_error_and_is_left_alone(tmp_path):
    path = tmp_path / "g.npz"
    path.write_bytes(b"this is not a gallery")
    with pytest.raises(MfrError, match=r"g\.npz: not a gallery \(\.npz\) file \(it is text\)"):
        Gallery.load(path)
    assert path.read_bytes() == b"this is not a gallery"


def test_truncated_gallery_file_is_reported_as_corrupt(tmp_path, rng):
    path = tmp_path / "g.npz"
    gallery_with(rng, {"ann": 40}).save(path)
    path.write_bytes(path.read_bytes()[:-300])
    with pytest.raises(MfrError, match="corrupt"):
        Gallery.load(path)


def test_npz_of_another_kind_is_not_taken_for_a_gallery(tmp_path):
    path = tmp_path / "emb.npz"
    np.savez(path, embeddings=np.zeros((2, 8), np.float32), identities=np.array(["a", "b"]))
    with pytest.raises(MfrError, match="emb.npz: corrupt or unreadable gallery file"):
        Gallery.load(path)


def test_gallery_of_another_embedding_size_or_model_is_refused(rng):
    gallery = gallery_with(rng, {"ann": 1})
    wider = ModelInfo("big.onnx", "big", 16, MODEL.fingerprint)
    with pytest.raises(MfrError, match="8-d embeddings .* gives 16-d"):
        gallery.check_model(wider, "g.npz")
    other = ModelInfo("other.onnx", "other", 8, "sha256:" + "b" * 64)
    with pytest.raises(MfrError, match="g.npz: gallery was enrolled with model 'tiny.onnx'"):
        gallery.check_model(other, "g.npz")
    gallery.check_model(MODEL, "g.npz")  # the same model passes


def test_lock_serialises_writers(tmp_path):
    path = tmp_path / "g.npz"
    order = []

    def writer(tag):
        with locked(path):
            order.append(f"{tag}-in")
            threading.Event().wait(0.05)
            order.append(f"{tag}-out")

    threads = [threading.Thread(target=writer, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert order[0][0] == order[1][0] and order[2][0] == order[3][0]
    assert os.path.exists(str(path) + ".lock")
