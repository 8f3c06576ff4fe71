"""Distillation terms against their naive formulas; the teacher cache's resume/invalidation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mfr.distill import (
    DistillationLoss,
    TeacherCache,
    embedding_matching,
    full_twin_path,
    relational_matching,
)
from mfr.errors import ConfigError


def _naive_cosine(s, t):
    return [1 - float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))) for a, b in zip(s, t)]


def test_embedding_matching_equals_naive_cosine_and_l2():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    cos = embedding_matching(s, t, "cosine").numpy()
    assert np.allclose(cos, _naive_cosine(s.numpy(), t.numpy()), atol=1e-6)
    l2 = embedding_matching(s, t, "l2").numpy()
    naive = [
        float(np.sum((a / np.linalg.norm(a) - b / np.linalg.norm(b)) ** 2))
        for a, b in zip(s.numpy(), t.numpy())
    ]
    assert np.allclose(l2, naive, atol=1e-6)
    assert np.allclose(l2, 2 * cos, atol=1e-5)  # on the unit sphere |s-t|^2 = 2(1-cos)


def test_relational_matching_equals_naive_offdiagonal_mean():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(4, 6, generator=g), torch.randn(4, 3, generator=g)
    sn = s.numpy() / np.linalg.norm(s.numpy(), axis=1, keepdims=True)
    tn = t.numpy() / np.linalg.norm(t.numpy(), axis=1, keepdims=True)
    total, count = 0.0, 0
    for i in range(4):
        for j in range(4):
            if i != j:
                total += (sn[i] @ sn[j] - tn[i] @ tn[j]) ** 2
                count += 1
    assert math.isclose(float(relational_matching(s, t)), total / count, rel_tol=1e-5)


def test_distillation_loss_weights_domains_and_warmup():
    g = torch.Generator().manual_seed(2)
    feats, teacher = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    domains = torch.tensor([0, 0, 0, 1, 1, 1])
    loss = DistillationLoss(
        8, 8, weight_full=2.0, weight_masked=0.5, weight_relational=3.0, warmup_steps=10
    )
    per = embedding_matching(feats, teacher, "cosine")
    expected = (
        2.0 * per[:3].mean() + 0.5 * per[3:].mean() + 3.0 * relational_matching(feats, teacher)
    )
    value, parts = loss(feats, teacher, domains, step=10)
    assert torch.allclose(value, expected, atol=1e-6)
    half, _ = loss(feats, teacher, domains, step=5)
    assert torch.allclose(half, expected * 0.5, atol=1e-6)
    assert float(loss(feats, teacher, domains, step=0)[0]) == 0.0
    assert set(parts) == {"distill_full", "distill_masked", "distill_relational"}


def test_teacher_receives_no_gradient_and_projection_learns():
    feats = torch.randn(4, 16, requires_grad=True)
    teacher = torch.randn(4, 8, requires_grad=True)
    loss = DistillationLoss(16, 8)
    value, _ = loss(feats, teacher, torch.tensor([0, 1, 0, 1]))
    value.backward()
    assert teacher.grad is None
    assert feats.grad is not None and torch.isfinite(feats.grad).all()
    assert loss.projection.weight.grad is not None


def test_distillation_rejects_bad_options():
    with pytest.raises(ConfigError, match="metric"):
        DistillationLoss(4, 4, metric="manhattan")
    with pytest.raises(ConfigError, match="weight_full"):
        DistillationLoss(4, 4, weight_full=-1)


def test_full_twin_path_drops_the_masked_component():
    assert full_twin_path(Path("/d/alice/masked/a.jpg")) == Path("/d/alice/a.jpg")
    assert full_twin_path(Path("/d/alice/a.jpg")) == Path("/d/alice/a.jpg")
    # a folder called "masked" higher up is not the domain marker
    assert full_twin_path(Path("/masked/d/alice/a.jpg")) == Path("/masked/d/alice/a.jpg")


class _CountingTeacher:
    name, dim = "fake", 3

    def __init__(self):
        self.calls = 0

    def embed(self, images, aligned=True):
        self.calls += len(images)
        return np.stack([img.reshape(-1, 3).mean(0) for img in images]).astype(np.float32)


def _face_folder(root: Path) -> list[Path]:
    paths = []
    for i, ident in enumerate(["a", "b"]):
        (root / ident / "masked").mkdir(parents=True)
        for j in range(2):
            pixel = np.full((8, 8, 3), 40 * i + 10 * j, np.uint8)
            Image.fromarray(pixel).save(root / ident / f"{j}.png")
            Image.fromarray(pixel // 2).save(root / ident / "masked" / f"{j}.png")
            paths += [root / ident / f"{j}.png", root / ident / "masked" / f"{j}.png"]
    return paths


def _cache(tmp_path, teacher, monkeypatch, **kw):
    monkeypatch.setattr("mfr.distill.teacher.teacher_fingerprint", lambda spec: f"{spec}-fp")
    return TeacherCache(tmp_path / "cache", "fake", embedder=teacher, **kw)


def test_masked_twins_get_the_full_face_embedding(tmp_path, monkeypatch):
    paths = _face_folder(tmp_path / "data")
    teacher = _CountingTeacher()
    targets, valid = _cache(tmp_path, teacher, monkeypatch).targets(paths)
    assert valid.all()
    assert teacher.calls == 4  # only the four full faces are embedded
    assert np.array_equal(targets[0], targets[1])  # a/0.png and a/masked/0.png share a target
    assert not np.array_equal(targets[0], targets[2])


def test_cache_resumes_and_invalidates_changed_images(tmp_path, monkeypatch):
    paths = _face_folder(tmp_path / "data")
    first = _CountingTeacher()
    cache = _cache(tmp_path, first, monkeypatch, batch_size=1, flush_every=1)
    cache.targets(paths[:2])  # an interrupted run: only a/0.png was embedded and flushed
    assert first.calls == 1
    second = _CountingTeacher()
    targets, _ = _cache(tmp_path, second, monkeypatch).targets(paths)
    assert second.calls == 3  # the three not yet cached
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(paths[0])
    third = _CountingTeacher()
    changed, _ = _cache(tmp_path, third, monkeypatch).targets(paths)
    assert third.calls == 1  # only the changed image is recomputed
    assert not np.array_equal(changed[0], targets[0])
    assert np.array_equal(changed[2], targets[2])


def test_other_teacher_does_not_reuse_the_cache(tmp_path, monkeypatch):
    paths = _face_folder(tmp_path / "data")
    monkeypatch.setattr("mfr.distill.teacher.teacher_fingerprint", lambda spec: f"{spec}-fp")
    TeacherCache(tmp_path / "c", "one", embedder=_CountingTeacher()).targets(paths)
    other = _CountingTeacher()
    TeacherCache(tmp_path / "c", "two", embedder=other).targets(paths)
    assert other.calls == 4
