"""ONNX export: onnxruntime matches PyTorch at several batch sizes; metadata read back."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from gallery_helpers import face_like, run_mfr, tiny_model, tiny_onnx

from mfr.embedders.onnx import OnnxEmbedder
from mfr.errors import MfrError
from mfr.nets.preprocess import images_to_tensor


@pytest.mark.parametrize("batch", [1, 3])
def test_onnxruntime_output_matches_pytorch_with_dynamic_batch(tmp_path, rng, batch):
    path = tiny_onnx(tmp_path / "tiny.onnx", seed=3, size=32)
    images = [face_like(rng, i, size=32) for i in range(batch)]
    with torch.no_grad():
        expected = tiny_model(3)(images_to_tensor(images)).numpy()
    embedder = OnnxEmbedder(path)
    tensor = images_to_tensor(images).numpy()
    raw = embedder.session.run(None, {embedder.input_name: tensor})[0]
    assert raw.shape == (batch, 16)
    np.testing.assert_allclose(raw, expected, atol=1e-4, rtol=0)
    # embed() L2-normalises, as a checkpoint's embedder does
    got = embedder.embed(images)
    unit = expected / np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(got, unit, atol=1e-4, rtol=0)


def test_export_records_input_size_normalisation_dim_and_threshold(tmp_path):
    path = tiny_onnx(tmp_path / "tiny.onnx", dim=24, size=40, threshold=0.31)
    proto = onnx.load(str(path))
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["mfr.input_size"] == "40"
    assert props["mfr.embedding_dim"] == "24"
    assert props["mfr.normalisation"] == "rgb/127.5-1"
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param == "batch"
    embedder = OnnxEmbedder(path)
    assert (embedder.input_size, embedder.dim, embedder.threshold) == (40, 24, 0.31)


def test_onnx_embedder_resizes_crops_to_the_model_input(tmp_path, rng):
    import cv2

    path = tiny_onnx(tmp_path / "tiny.onnx", size=32)
    big = face_like(rng, 1, size=112)
    small = cv2.resize(big, (32, 32), interpolation=cv2.INTER_AREA)
    embedder = OnnxEmbedder(path)
    np.testing.assert_allclose(embedder.embed([big]), embedder.embed([small]), atol=1e-6)


def test_onnx_file_without_mfr_metadata_is_refused(tmp_path):
    path = tmp_path / "plain.onnx"
    model = torch.nn.Linear(4, 2)
    with pytest.warns(DeprecationWarning):
        torch.onnx.export(model, (torch.zeros(1, 4),), str(path), dynamo=False)
    with pytest.raises(MfrError, match="not an mfr ONNX export"):
        OnnxEmbedder(path)


def test_export_command_uses_the_checkpoint_loader(tmp_path, monkeypatch, capsys):
    """`mfr export` with the checkpoint loader stubbed by a tiny model."""
    model = tiny_model(5)
    ckpt = tmp_path / "m.pt"
    torch.save({"format": "mfr-recognizer", "model": model.state_dict()}, ckpt)
    monkeypatch.setattr(
        "mfr.embedders.checkpoint.load_embedding_model",
        lambda path: (
            model,
            {"input_size": 32, "embedding_dim": 16, "backbone": "tiny", "threshold": 0.4},
        ),
    )
    out = tmp_path / "m.onnx"
    assert run_mfr(capsys, "export", ckpt, "--onnx", out)[0] == 0
    embedder = OnnxEmbedder(out)
    assert embedder.threshold == 0.4
    from mfr.embedders.fingerprint import checkpoint_fingerprint, onnx_fingerprint

    assert onnx_fingerprint(out) == checkpoint_fingerprint(ckpt)


@pytest.fixture
def resnet_tiny_checkpoint(tmp_path):
    pytest.importorskip("mfr.nets.backbones")
    from mfr.nets.backbones import build_backbone
    from mfr.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = build_backbone("resnet_tiny", embedding_dim=32, input_size=64)
    path = tmp_path / "tiny.pt"
    save_checkpoint(
        path, model=model.state_dict(), backbone="resnet_tiny", embedding_dim=32, input_size=64
    )
    return path


@pytest.mark.parametrize("batch", [1, 3])
def test_exported_checkpoint_matches_the_checkpoint_embedder(
    tmp_path, rng, capsys, resnet_tiny_checkpoint, batch
):
    from mfr.embedders.network import CheckpointEmbedder

    out = tmp_path / "tiny.onnx"
    assert run_mfr(capsys, "export", resnet_tiny_checkpoint, "--onnx", out)[0] == 0
    images = [face_like(rng, i, size=64) for i in range(batch)]
    onnx_out = OnnxEmbedder(out).embed(images)
    onnx_out /= np.linalg.norm(onnx_out, axis=1, keepdims=True)
    np.testing.assert_allclose(
        onnx_out, CheckpointEmbedder(resnet_tiny_checkpoint).embed(images), atol=1e-4
    )


def test_a_gallery_enrolled_with_a_checkpoint_opens_with_its_export(
    tmp_path, rng, capsys, resnet_tiny_checkpoint
):
    from mfr.api import FaceRecognizer
    from mfr.gallery.store import Gallery

    out = tmp_path / "tiny.onnx"
    assert run_mfr(capsys, "export", resnet_tiny_checkpoint, "--onnx", out)[0] == 0
    torch_rec, onnx_rec = FaceRecognizer.load(resnet_tiny_checkpoint), FaceRecognizer.load(out)
    gallery = Gallery.empty(torch_rec.model)
    gallery.add("a", torch_rec.embed([face_like(rng, 0)], aligned=True), ["a.png"])
    gallery.check_model(onnx_rec.model)  # same weights: accepted
    probe = face_like(rng, 0)
    assert onnx_rec.identify([probe], gallery, k=1)[0][0].score == pytest.approx(
        torch_rec.identify([probe], gallery, k=1)[0][0].score, abs=1e-4
    )


def test_dlib_backbone_exports_and_matches_pytorch(tmp_path, rng):
    from mfr.export import export_onnx
    from mfr.nets.backbones import build_backbone

    torch.manual_seed(0)
    model = build_backbone("dlib-resnet", embedding_dim=128, input_size=48).eval()
    path = export_onnx(model, {"input_size": 48, "embedding_dim": 128}, tmp_path / "d.onnx")
    images = [face_like(rng, i, size=48) for i in range(2)]
    with torch.no_grad():
        expected = model(images_to_tensor(images)).numpy()
    embedder = OnnxEmbedder(path)
    tensor = images_to_tensor(images).numpy()
    raw = embedder.session.run(None, {embedder.input_name: tensor})[0]
    np.testing.assert_allclose(raw, expected, atol=1e-4, rtol=0)
    unit = expected / np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(embedder.embed(images), unit, atol=1e-4, rtol=0)


def test_a_model_the_exporter_cannot_write_is_a_clear_error(tmp_path):
    from mfr.errors import CheckpointError
    from mfr.export import OPSET, export_onnx

    class Unexportable(torch.nn.Module):
        def forward(self, x):
            theta = torch.eye(2, 3)[None].expand(x.shape[0], 2, 3)
            return torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)

    meta = {"input_size": 8, "embedding_dim": 2, "backbone": "odd"}
    with pytest.raises(CheckpointError, match=f"odd: cannot export to ONNX opset {OPSET}"):
        export_onnx(Unexportable(), meta, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
