"""Teacher-guided training inside `mfr train`: targets, resume, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _train_data import make_dataset, tiny_overrides

from mfr.embedders.checkpoint import read_checkpoint
from mfr.errors import ConfigError
from mfr.train.config import TrainConfig, apply_overrides
from mfr.train.recognizer import train


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def teacher_and_data(tmp_path_factory):
    """A tiny trained mfr checkpoint (the teacher) and a dataset with masked twins."""
    root = tmp_path_factory.mktemp("distill")
    data = make_dataset(root / "data")
    config = apply_overrides(TrainConfig(), tiny_overrides(data, embedding_dim=8))
    train(config, root / "teacher", log=_quiet)
    return root / "teacher" / "final.pt", data, root


def _config(data, teacher, cache, **distill) -> TrainConfig:
    options = {"teacher": str(teacher), "cache": str(cache), **distill}
    config = apply_overrides(TrainConfig(), tiny_overrides(data, loss="dcr", steps=4))
    config.distill = options
    return config


def test_distillation_trains_logs_and_stores_its_projection(teacher_and_data, tmp_path):
    teacher, data, _ = teacher_and_data
    lines: list[str] = []
    train(_config(data, teacher, tmp_path / "cache", warmup_steps=2), tmp_path / "run",
          log=lines.append)  # fmt: skip
    final = read_checkpoint(tmp_path / "run" / "final.pt")
    projection = final["distill_state"]["projection.weight"]
    assert projection.shape == (8, 16)  # student 16-d -> teacher 8-d
    assert any("teacher:" in line and "computed" in line for line in lines)
    assert len(list((tmp_path / "cache").rglob("part-*.npz"))) >= 1
    records = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert all(json.loads(r)["loss"] > 0 for r in records)


def test_distillation_changes_training_and_resume_is_bit_identical(teacher_and_data, tmp_path):
    teacher, data, _ = teacher_and_data
    config = _config(data, teacher, tmp_path / "cache", weight_relational=2.0)
    train(config, tmp_path / "straight", log=_quiet)
    train(config, tmp_path / "split", log=_quiet, stop_at=2)
    train(config, tmp_path / "split", resume=True, log=_quiet)
    a = read_checkpoint(tmp_path / "straight" / "final.pt")
    b = read_checkpoint(tmp_path / "split" / "final.pt")
    for part in ("model", "distill_state"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key} differs"
    plain = apply_overrides(TrainConfig(), tiny_overrides(data, loss="dcr", steps=4))
    train(plain, tmp_path / "plain", log=_quiet)
    c = read_checkpoint(tmp_path / "plain" / "final.pt")
    assert any(not torch.equal(a["model"][k], c["model"][k]) for k in a["model"])


def test_teacher_checkpoint_is_not_modified_by_student_training(teacher_and_data, tmp_path):
    teacher, data, _ = teacher_and_data
    before = read_checkpoint(teacher)["model"]
    train(_config(data, teacher, tmp_path / "cache"), tmp_path / "run", log=_quiet)
    after = read_checkpoint(teacher)["model"]
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_bad_distill_options_are_one_clear_error(teacher_and_data, tmp_path):
    teacher, data, _ = teacher_and_data
    with pytest.raises(ConfigError, match="unknown distill option"):
        train(_config(data, teacher, tmp_path / "c", temperature=2), tmp_path / "r", log=_quiet)
    config = _config(data, teacher, tmp_path / "c")
    del config.distill["teacher"]
    with pytest.raises(ConfigError, match="needs 'teacher'"):
        train(config, tmp_path / "r", log=_quiet)
    with pytest.raises(ConfigError, match="metric"):
        train(_config(data, teacher, tmp_path / "c", metric="l1"), tmp_path / "r", log=_quiet)


def test_init_dlib_needs_the_dlib_backbone(tmp_path):
    from _train_data import make_dataset

    data = make_dataset(tmp_path / "data")
    config = apply_overrides(TrainConfig(), tiny_overrides(data, steps=1))
    config.init = "dlib"
    with pytest.raises(ConfigError, match="init 'dlib' needs backbone dlib-resnet"):
        train(config, tmp_path / "run", log=_quiet)


def test_init_from_a_checkpoint_starts_from_its_weights(teacher_and_data, tmp_path):
    from mfr.errors import CheckpointError
    from mfr.nets.backbones import build_backbone
    from mfr.train.recognizer import initialise_backbone

    teacher, _, _ = teacher_and_data
    fresh = build_backbone("resnet_tiny", embedding_dim=8, input_size=16)
    initialise_backbone(fresh, str(teacher), "resnet_tiny")
    trained = read_checkpoint(teacher)["model"]
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in trained.items())
    with pytest.raises(CheckpointError, match="resnet_tiny backbone, but resnet18"):
        initialise_backbone(build_backbone("resnet18", 8, 32), str(teacher), "resnet18")
    with pytest.raises(CheckpointError, match="another embedding size"):
        initialise_backbone(build_backbone("resnet_tiny", 16, 16), str(teacher), "resnet_tiny")


def test_dlib_student_trains_end_to_end_from_dlibs_weights(teacher_and_data, tmp_path):
    pytest.importorskip("dlib")
    from mfr.embedders import load_embedder
    from mfr.nets.dlib_resnet import load_dlib_face_resnet

    _, data, _ = teacher_and_data
    overrides = tiny_overrides(data, backbone="dlib-resnet", embedding_dim=128, input_size=24,
                               loss="dcr", steps=2, p=2, k=2, lr=1e-5)  # fmt: skip
    config = apply_overrides(TrainConfig(), overrides)
    config.init = "dlib"
    config.distill = {"teacher": "dlib", "cache": str(tmp_path / "cache")}
    lines: list[str] = []
    train(config, tmp_path / "run", log=lines.append)
    assert "backbone initialised from dlib" in lines
    from mfr.align.dlib_models import model_path

    start = load_dlib_face_resnet(model_path("descriptor")).state_dict()
    final = read_checkpoint(tmp_path / "run" / "final.pt")["model"]
    moved = [k for k, v in start.items() if not torch.equal(final["net." + k], v)]
    assert moved and all(torch.isfinite(v).all() for v in final.values())
    embedder = load_embedder(str(tmp_path / "run" / "final.pt"))
    faces = [np.full((24, 24, 3), 100, np.uint8), np.full((24, 24, 3), 200, np.uint8)]
    assert embedder.embed(faces).shape == (2, 128)
