"""mfr.FaceRecognizer: embed, verify, identify and the stored threshold (tiny ONNX model)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from gallery_helpers import face_like, tiny_onnx, write_png

from mfr.api import FaceRecognizer
from mfr.errors import MfrError
from mfr.gallery.store import Gallery
from mfr.gallery.threshold import calibration_pairs, sidecar_path


@pytest.fixture
def recognizer(tmp_path):
    return FaceRecognizer.load(tiny_onnx(tmp_path / "tiny.onnx", threshold=0.5))


def test_import_mfr_stays_light_and_exports_face_recognizer_lazily():
    code = (
        "import sys, mfr; assert 'torch' not in sys.modules and 'numpy' not in sys.modules;"
        "from mfr import FaceRecognizer; print(FaceRecognizer.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "FaceRecognizer"


def test_load_records_model_spec_dim_fingerprint_and_threshold(tmp_path, recognizer):
    assert recognizer.dim == 16
    assert recognizer.model.spec == str((tmp_path / "tiny.onnx").resolve())
    assert recognizer.model.fingerprint.startswith("sha256:")
    assert recognizer.threshold == 0.5
    assert FaceRecognizer.load(tmp_path / "tiny.onnx", threshold=0.1).threshold == 0.1


def test_missing_model_file_is_one_clear_error(tmp_path):
    with pytest.raises(MfrError, match="nope.onnx: no such model file"):
        FaceRecognizer.load(tmp_path / "nope.onnx")


def test_embed_gives_unit_vectors_and_takes_paths_or_arrays(tmp_path, rng, recognizer):
    images = [face_like(rng, i) for i in range(3)]
    path = write_png(tmp_path / "a.png", images[0])
    from_arrays = recognizer.embed(images)
    np.testing.assert_allclose(np.linalg.norm(from_arrays, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(recognizer.embed([path]), from_arrays[:1], atol=1e-6)
    raw = recognizer.embedder.embed(images)  # the same up to normalisation
    np.testing.assert_allclose(
        from_arrays, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-6
    )


def test_auto_mode_takes_112px_images_as_crops_and_detects_in_others(rng, recognizer):
    crop = face_like(rng, 0)
    np.testing.assert_array_equal(recognizer.embed([crop]), recognizer.embed([crop], aligned=True))
    photo = np.full((150, 200, 3), 128, np.uint8)  # no face in it
    with pytest.raises(MfrError, match="image 0: no face found"):
        recognizer.embed([photo])
    # taken as aligned, it is still checked: an aligned crop is an upright face or nothing
    with pytest.raises(MfrError, match="image 0: no face found"):
        recognizer.embed([photo], aligned=True)


def test_unreadable_file_is_named_in_the_error(tmp_path, recognizer):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(MfrError, match="broken.jpg"):
        recognizer.embed([bad])
    result = recognizer.embed_many([bad], skip_errors=True)
    assert result.kept == [] and result.skipped[0][0] == str(bad)


def test_verify_is_cosine_similarity_above_the_threshold(rng, recognizer):
    a, b = face_like(rng, 0), face_like(rng, 1)
    ea, eb = recognizer.embed([a, b])
    similarity, same = recognizer.verify(a, b)
    assert similarity == pytest.approx(float(ea @ eb), abs=1e-6)
    assert same == (similarity > 0.5)
    assert recognizer.verify(a, b, threshold=similarity - 1e-3)[1] is True
    assert recognizer.verify(a, b, threshold=similarity + 1e-3)[1] is False


def test_verify_without_a_threshold_says_how_to_calibrate(tmp_path, rng):
    recognizer = FaceRecognizer.load(tiny_onnx(tmp_path / "plain.onnx"))
    with pytest.raises(MfrError, match="no calibrated threshold.*--calibrate"):
        recognizer.verify(face_like(rng, 0), face_like(rng, 1))


def test_identify_ranks_enrolled_identities_by_their_best_image(rng, recognizer):
    gallery = Gallery.empty(recognizer.model)
    crops = {name: [face_like(rng, i) for _ in range(2)] for i, name in enumerate("abcd")}
    for name, images in crops.items():
        gallery.add(name, recognizer.embed(images), [f"{name}{j}" for j in range(2)])
    probes = [face_like(rng, 2), face_like(rng, 0)]
    ranked = recognizer.identify(probes, gallery, k=3)
    embeddings = recognizer.embed(probes)
    for probe, matches in zip(embeddings, ranked, strict=True):
        best = {n: max(gallery.embeddings[gallery.identities == n] @ probe) for n in "abcd"}
        want = sorted(best, key=lambda n: -best[n])[:3]
        assert [m.identity for m in matches] == want
        assert [m.score for m in matches] == pytest.approx([best[n] for n in want], abs=1e-5)


def test_identify_refuses_a_gallery_of_another_model(tmp_path, rng, recognizer):
    other = FaceRecognizer.load(tiny_onnx(tmp_path / "other.onnx", seed=9))
    gallery = Gallery.empty(other.model)
    gallery.add("a", other.embed([face_like(rng, 0)]), ["a"])
    gallery.save(tmp_path / "g.npz")
    with pytest.raises(MfrError, match="g.npz: gallery was enrolled with model"):
        recognizer.identify([face_like(rng, 0)], tmp_path / "g.npz")


def test_calibration_pairs_are_all_matched_masked_full_pairs_plus_as_many_unmatched():
    identities = np.array(["a", "a", "a", "b", "b", "c"])
    domains = np.array([0, 1, 1, 0, 1, 1], np.uint8)
    pairs = calibration_pairs(identities, domains)
    matched = {(a, b) for a, b, s in pairs if s == 1}
    assert matched == {(1, 0), (2, 0), (4, 3)}
    unmatched = pairs[pairs[:, 2] == 0]
    assert len(unmatched) == 3
    assert all(domains[a] == 1 and domains[b] == 0 for a, b, _ in pairs)
    assert all(identities[a] != identities[b] for a, b, _ in unmatched)


def test_calibrate_stores_a_threshold_the_model_then_loads(tmp_path, rng, capsys):
    from gallery_helpers import run_mfr

    from mfr.eval.embeddings import save_embeddings

    model = tiny_onnx(tmp_path / "tiny.onnx")
    recognizer = FaceRecognizer.load(model)
    images = [face_like(rng, i % 4) for i in range(16)]
    emb = tmp_path / "emb.npz"
    save_embeddings(
        emb,
        recognizer.embed(images),
        np.array([f"id{i % 4}" for i in range(16)]),
        np.array([i // 4 % 2 for i in range(16)], np.uint8),
        np.array([f"{i}.png" for i in range(16)]),
    )
    code, out, _ = run_mfr(capsys, "verify", "--calibrate", emb, "--model", model)
    assert code == 0 and "stored in" in out
    record = json.loads(sidecar_path(str(model.resolve())).read_text())
    assert FaceRecognizer.load(model).threshold == pytest.approx(record["threshold"])
    # brute force: the lowest threshold reaching the best accuracy on the same pairs
    from mfr.eval.embeddings import load_embeddings

    data = load_embeddings(emb)
    pairs = calibration_pairs(data.identities, data.domains)
    sims = np.einsum("ij,ij->i", data.embeddings[pairs[:, 0]], data.embeddings[pairs[:, 1]])
    accuracy = lambda t: np.mean((sims > t) == pairs[:, 2].astype(bool))  # noqa: E731
    best = max(accuracy(t) for t in np.r_[sims - 1e-7, sims + 1e-7])
    assert record["accuracy"] == pytest.approx(best)
    assert accuracy(record["threshold"]) == pytest.approx(best)
    # a sidecar calibrated for other weights is ignored
    tiny_onnx(model, seed=4)
    assert FaceRecognizer.load(model).threshold is None


def test_calibrating_a_checkpoint_stores_its_threshold_key_and_keeps_its_fingerprint(tmp_path):
    import torch
    from gallery_helpers import tiny_model

    from mfr.embedders.fingerprint import checkpoint_fingerprint
    from mfr.gallery.threshold import store_threshold

    ckpt = tmp_path / "m.pt"
    torch.save({"format": "mfr-recognizer", "model": tiny_model(1).state_dict()}, ckpt)
    before = checkpoint_fingerprint(ckpt)
    assert store_threshold(str(ckpt), before, {"threshold": 0.25}) == ckpt
    assert torch.load(ckpt, weights_only=True)["threshold"] == 0.25
    assert checkpoint_fingerprint(ckpt) == before
    torch.save({"format": "mfr-recognizer", "model": tiny_model(2).state_dict()}, ckpt)
    assert checkpoint_fingerprint(ckpt) != before


def test_a_recognizer_says_which_model_and_threshold_it_uses(tmp_path, recognizer):
    text = repr(recognizer)
    assert "tiny.onnx" in text and "threshold=0.5000" in text
    plain = FaceRecognizer.load(tiny_onnx(tmp_path / "plain.onnx"))
    assert "refuses to decide" in repr(plain)
