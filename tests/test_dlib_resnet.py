"""The PyTorch port of dlib's face ResNet reproduces dlib's descriptors; bad files fail clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mfr.errors import CheckpointError, MfrError
from mfr.nets.dlib_resnet import DlibFaceResNet, load_dlib_face_resnet, preprocess

dlib = pytest.importorskip("dlib")


def _model_path(name: str) -> Path:
    from mfr.align.dlib_models import model_path

    try:
        return model_path(name)
    except MfrError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def net():
    return load_dlib_face_resnet(_model_path("descriptor"))


def _chips(images: list[np.ndarray]) -> np.ndarray:
    """150 x 150 face chips as dlib's descriptor expects (HOG box, 5 points, get_face_chip)."""
    from mfr.align.dlib_models import hog_detector, landmark_predictor

    chips = []
    for image in images:
        boxes = hog_detector()(image, 1)
        assert boxes, "no face found"
        shape = landmark_predictor(5)(image, boxes[0])
        chips.append(dlib.get_face_chip(image, shape, size=150, padding=0.25))
    return np.stack(chips)


def _assert_matches_dlib(net: DlibFaceResNet, chips: np.ndarray, distinct: bool) -> None:
    from mfr.align.dlib_models import face_descriptor_model

    model = face_descriptor_model()
    expected = np.array([np.array(model.compute_face_descriptor(chip)) for chip in chips])
    with torch.no_grad():
        got = net(net.preprocess(chips)).double().numpy()
    assert got.shape == (len(chips), 128)
    assert np.abs(got - expected).max() < 1e-3
    cosine = (
        (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    )
    assert cosine.min() > 0.9999
    if distinct:  # different people are far apart (dlib's same-person threshold is 0.6)
        assert min(np.linalg.norm(got[i] - got[j]) for i in range(3) for j in range(i)) > 0.6


def test_matches_dlib_on_grace_hopper_and_its_mirror(net):
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = np.asarray(Image.open(path).convert("RGB").resize((200, 250), Image.BILINEAR))
    chip = _chips([image])[0]
    _assert_matches_dlib(net, np.stack([chip, chip[:, ::-1]]), distinct=False)


def test_matches_dlib_on_lfw_faces(net, data_dir):
    folder = data_dir / "lfw" / "images"
    names = ("Aaron_Eckhart", "Serena_Williams", "George_W_Bush")
    paths = [folder / name / f"{name}_0001.jpg" for name in names]
    if not all(p.is_file() for p in paths):
        pytest.skip(f"LFW images missing under {folder}")
    _assert_matches_dlib(
        net, _chips([np.asarray(Image.open(p).convert("RGB")) for p in paths]), distinct=True
    )


def test_preprocess_is_dlib_input_normalisation(net):
    chip = np.zeros((150, 150, 3), np.uint8)
    chip[..., 0], chip[..., 1], chip[..., 2] = 255, 0, 128
    x = preprocess(chip)
    assert x.shape == (1, 3, 150, 150) and x.dtype == torch.float32
    expected = (np.array([255, 0, 128], np.float32) - np.array([122.782, 117.001, 104.298])) / 256
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), expected, rtol=1e-6)
    # The loaded net carries the means stored in the file (dlib's values).
    np.testing.assert_allclose(net.mean.numpy(), [122.782, 117.001, 104.298], rtol=1e-6)
    with pytest.raises(ValueError, match="uint8"):
        preprocess(chip.astype(np.float32))


def test_truncated_or_foreign_files_name_the_file(tmp_path):
    data = _model_path("descriptor").read_bytes()
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(data[: len(data) // 3])
    garbage = tmp_path / "garbage.dat"
    garbage.write_bytes(b"this is not a dlib network" * 100)
    empty = tmp_path / "empty.dat"
    empty.write_bytes(b"")
    for path in (truncated, garbage, empty, _model_path("predictor5")):
        with pytest.raises(CheckpointError, match=path.name):
            load_dlib_face_resnet(path)
    with pytest.raises(CheckpointError, match="missing.dat"):
        load_dlib_face_resnet(tmp_path / "missing.dat")


# ----------------------------------------------------------------------------- the backbone


def _naive_chip(image: np.ndarray, box: tuple[float, float, float], size: int = 150):
    """Bilinear samples of the box (centre x, centre y, side in dlib pixel indices) at the
    centres of a size x size grid, zero outside the image: the chip, one pixel at a time."""
    cx, cy, side = box
    h, w, _ = image.shape
    out = np.zeros((size, size, 3))
    for i in range(size):
        for j in range(size):
            # chip pixel centre -> continuous image coordinates (pixel k covers [k, k+1))
            x = cx + 0.5 + side * ((j + 0.5) / size - 0.5) - 0.5
            y = cy + 0.5 + side * ((i + 0.5) / size - 0.5) - 0.5
            x0, y0 = int(np.floor(x)), int(np.floor(y))
            for yy, xx, weight in (
                (y0, x0, (1 - (x - x0)) * (1 - (y - y0))),
                (y0, x0 + 1, (x - x0) * (1 - (y - y0))),
                (y0 + 1, x0, (1 - (x - x0)) * (y - y0)),
                (y0 + 1, x0 + 1, (x - x0) * (y - y0)),
            ):
                if 0 <= yy < h and 0 <= xx < w:
                    out[i, j] += weight * image[yy, xx]
    return out


def test_chip_backbone_cuts_the_fixed_box_scaled_to_the_input_size():
    from mfr.nets.dlib_resnet import CHIP_BOX_112, DlibChipBackbone

    rng = np.random.default_rng(0)
    for size in (112, 56):
        image = rng.integers(0, 256, (size, size, 3)).astype(np.uint8)
        tensor = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 127.5 - 1.0
        got = DlibChipBackbone(size).chips(tensor)[0].permute(1, 2, 0).numpy()
        box = tuple(v * size / 112 for v in CHIP_BOX_112)
        np.testing.assert_allclose(got, _naive_chip(image, box), atol=1e-2)  # of 0-255


def test_chip_backbone_with_dlib_weights_is_dlibs_net_on_the_chip(net):
    from mfr.nets.backbones import build_backbone
    from mfr.train.recognizer import initialise_backbone

    backbone = build_backbone("dlib-resnet", embedding_dim=128, input_size=112).eval()
    initialise_backbone(backbone, "dlib", "dlib-resnet")
    crops = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        chips = backbone.chips(crops)
        expected = net((chips - net.mean[None, :, None, None]) / 256.0)
        assert torch.allclose(backbone(crops), expected, atol=1e-5)
    assert backbone(crops).shape == (2, 128)


def test_chip_backbone_rejects_options_it_cannot_honour():
    from mfr.errors import ConfigError
    from mfr.nets.backbones import build_backbone

    with pytest.raises(ConfigError, match="128 dimensions, not 512"):
        build_backbone("dlib-resnet", embedding_dim=512)
    with pytest.raises(ConfigError, match="own head"):
        build_backbone("dlib-resnet", embedding_dim=128, head="gap")


def test_dlib_resnet_spec_embeds_aligned_crops_with_dlibs_weights(net, tmp_path, monkeypatch):
    from mfr.api import FaceRecognizer
    from mfr.distill.teacher import teacher_fingerprint
    from mfr.embedders import load_embedder
    from mfr.embedders.registry import BUILTIN

    rng = np.random.default_rng(1)
    crops = [rng.integers(0, 256, (112, 112, 3)).astype(np.uint8) for _ in range(2)]
    got = load_embedder("dlib-resnet").embed(crops)
    tensor = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    from mfr.nets.dlib_resnet import DlibChipBackbone

    backbone = DlibChipBackbone(112)
    backbone.net.load_state_dict(net.state_dict())
    with torch.no_grad():
        expected = torch.nn.functional.normalize(backbone(tensor), dim=1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)

    monkeypatch.setenv("MFR_HOME", str(tmp_path))
    recognizer = FaceRecognizer.load("dlib-resnet")
    assert recognizer.model.fingerprint.startswith("dlib-resnet:")
    # its own threshold, calibrated on held-out masked-vs-full pairs (no longer dlib's rule)
    assert (recognizer.dim, recognizer.threshold) == (128, BUILTIN["dlib-resnet"].value)
    assert teacher_fingerprint("dlib-resnet") != teacher_fingerprint("dlib")
