"""Teacher-guided training inside `mfr train`: targets, resume, clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from _train_data import make_dataset, tiny_overrides

from mfr.errors import ConfigError
from mfr.train.checkpoint import read_checkpoint
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
