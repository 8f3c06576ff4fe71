"""Checkpoints: load_embedding_model, CheckpointEmbedder and clear errors for wrong files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _train_data import make_dataset

from mfr.embedders import load_embedder
from mfr.embedders.checkpoint import load_embedding_model, read_checkpoint
from mfr.embedders.network import CheckpointEmbedder
from mfr.errors import CheckpointError
from mfr.nets.backbones import build_backbone
from mfr.nets.preprocess import images_to_tensor
from mfr.train.checkpoint import rng_state, save_checkpoint, set_rng_state


def _save_tiny(path, backbone="resnet_tiny", model=None, **extra):
    torch.manual_seed(0)
    net = model or build_backbone("resnet_tiny", embedding_dim=8, input_size=16)
    net.eval()
    fields = dict(backbone=backbone, embedding_dim=8, input_size=16, head="flatten",
                  model=net.state_dict(), loss="softmax", loss_state={}, step=5,
                  config={"steps": 5})  # fmt: skip
    save_checkpoint(path, **{**fields, **extra})
    return net


def test_load_embedding_model_restores_the_same_network(tmp_path):
    net = _save_tiny(tmp_path / "m.pt", threshold=0.4)
    model, meta = load_embedding_model(tmp_path / "m.pt")
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    assert not model.training
    assert torch.equal(model(x), net(x))
    assert meta == {"backbone": "resnet_tiny", "embedding_dim": 8, "input_size": 16,
                    "head": "flatten", "loss": "softmax", "step": 5, "threshold": 0.4,
                    "operating_point": None, "config": {"steps": 5}}  # fmt: skip


def test_embed_images_is_the_network_on_resized_crops(tmp_path, rng):
    from mfr.embedders.network import embed_images

    net = _save_tiny(tmp_path / "m.pt")
    images = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(3)]
    raw = embed_images(net, images, 16, batch_size=2, normalize=False)
    with torch.no_grad():
        expected = net(images_to_tensor(images)).numpy()
    assert raw.dtype == np.float32 and np.allclose(raw, expected, atol=1e-5)
    unit = embed_images(net, images, 16)
    assert np.allclose(unit, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-5)
    assert embed_images(net, [], 16).shape == (0, 0)


def test_checkpoint_embedder_resizes_normalises_and_flip_averages(tmp_path, rng):
    net = _save_tiny(tmp_path / "m.pt")
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(5)]
    embedder = load_embedder(str(tmp_path / "m.pt"), batch_size=2)
    assert isinstance(embedder, CheckpointEmbedder) and embedder.dim == 8
    out = embedder.embed(images)
    assert out.shape == (5, 8) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    # naive: area-resize by 2x2 mean (what INTER_AREA does for an exact halving), then the net
    small = [im.reshape(16, 2, 16, 2, 3).mean((1, 3)).round().astype(np.uint8) for im in images]
    with torch.no_grad():
        ref = torch.nn.functional.normalize(net(images_to_tensor(small)), dim=1).numpy()
    assert np.allclose(out, ref, atol=2e-2)
    flipped = CheckpointEmbedder(tmp_path / "m.pt", flip=True).embed(images)
    mirror = CheckpointEmbedder(tmp_path / "m.pt", flip=True).embed([im[:, ::-1] for im in images])
    assert np.allclose(flipped, mirror, atol=1e-5)  # flip averaging is mirror-invariant
    assert not np.allclose(flipped, out, atol=1e-3)


def test_checkpoint_of_another_backbone_is_a_clear_error(tmp_path):
    other = build_backbone("resnet18", embedding_dim=8, input_size=16)
    _save_tiny(tmp_path / "m.pt", backbone="resnet_tiny", model=other)
    with pytest.raises(CheckpointError, match=r"m\.pt: weights do not fit a resnet_tiny backbone"):
        load_embedding_model(tmp_path / "m.pt")


def test_files_that_are_not_recognizer_checkpoints_are_named(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(
        CheckpointError, match=r"junk\.pt: not an mfr checkpoint \(\.pt\) \(it is text\)"
    ):
        read_checkpoint(tmp_path / "junk.pt")
    torch.save({"format": "mfr-iamgan", "G": {}}, tmp_path / "gan.pt")
    with pytest.raises(CheckpointError, match=r"gan\.pt: not an mfr recognizer.*mfr-iamgan"):
        read_checkpoint(tmp_path / "gan.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="no mfr format tag"):
        load_embedding_model(tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "missing.pt")


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    import random

    save_checkpoint(tmp_path / "r.pt", rng=rng_state())
    expected = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(read_checkpoint(tmp_path / "r.pt")["rng"])
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1])
    assert expected[2] == again[2]


def test_mfr_embed_with_a_checkpoint_writes_the_embeddings_contract(tmp_path):
    pytest.importorskip("mfr.commands.embed", reason="mfr embed (data developer) not there yet")
    pytest.importorskip("mfr.data.dataset", reason="load_index (data developer) not there yet")
    from mfr.cli import main

    _save_tiny(tmp_path / "m.pt")
    data = make_dataset(tmp_path / "data", identities=3, per_identity=2, masked=1)
    code = main(["embed", str(data), "--model", str(tmp_path / "m.pt"),
                 "--out", str(tmp_path / "emb.npz")])  # fmt: skip
    assert code == 0
    emb = np.load(tmp_path / "emb.npz")
    assert emb["embeddings"].shape == (9, 8) and emb["embeddings"].dtype == np.float32
    assert sorted(emb["domains"].tolist()) == [0] * 6 + [1] * 3
    assert set(emb["identities"].tolist()) == {"person_00", "person_01", "person_02"}
