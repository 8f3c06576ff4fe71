"""Weight imprinting (mfr.losses.imprint): new classifier rows start at class means."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _train_data import make_dataset, tiny_overrides

from mfr.embedders.checkpoint import read_checkpoint
from mfr.losses import build_loss
from mfr.losses.imprint import enable_imprinting
from mfr.train.config import TrainConfig, apply_overrides
from mfr.train.recognizer import train


def _batch(seed=0):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(8, 4, generator=generator)
    labels = torch.tensor([0, 0, 2, 2, 2, 3, 3, 0])
    return features, labels


def _mean_direction(features, labels, label):
    return F.normalize(features[labels == label].mean(0), dim=0)


@pytest.mark.parametrize("name", ["arcface", "cosface", "sphereface"])
def test_a_cosine_head_row_is_set_to_the_unit_mean_embedding_of_its_first_batch(name):
    loss = build_loss(name, 5, 4)
    assert enable_imprinting(loss) == 1
    untouched = loss.fc.weight.detach().clone()
    features, labels = _batch()
    loss(features, labels)
    for label in (0, 2, 3):
        assert torch.allclose(loss.fc.weight[label], _mean_direction(features, labels, label))
    assert torch.equal(loss.fc.weight[[1, 4]], untouched[[1, 4]])  # not in the batch
    assert loss.fc.imprinted.tolist() == [True, False, True, True, False]


def test_an_imprinted_row_is_never_imprinted_again():
    loss = build_loss("cosface", 5, 4)
    enable_imprinting(loss)
    loss(*_batch(0))
    first = loss.fc.weight.detach().clone()
    loss(*_batch(1))
    assert torch.equal(loss.fc.weight, first)


def test_a_plain_softmax_row_gives_scale_times_cosine_for_an_embedding_of_mean_length():
    loss = build_loss("softmax", 5, 4)
    enable_imprinting(loss, scale=10.0)
    features, labels = _batch()
    loss(features, labels)
    length = features.norm(dim=1).mean()
    probe = features[0] / features[0].norm() * length
    cosine = probe @ _mean_direction(features, labels, 2) / length
    assert float(loss.logits(probe[None])[0, 2].detach()) == pytest.approx(
        float(10.0 * cosine), rel=1e-5
    )
    assert loss.fc.bias[[0, 2, 3]].abs().max() == 0


def test_the_softmax_inside_softmax_dcr_is_imprinted():
    loss = build_loss("dcr", 5, 4)
    assert enable_imprinting(loss) == 1
    features, labels = _batch()
    loss(features, labels, torch.zeros_like(labels))
    assert loss.softmax.fc.imprinted[[0, 2, 3]].all()


def test_evaluation_mode_never_imprints():
    loss = build_loss("cosface", 5, 4)
    enable_imprinting(loss)
    before = loss.fc.weight.detach().clone()
    loss.eval()
    loss(*_batch())
    assert torch.equal(loss.fc.weight, before) and not loss.fc.imprinted.any()


def test_a_module_without_a_classifier_has_nothing_to_imprint_and_bad_scales_are_refused():
    assert enable_imprinting(torch.nn.Module()) == 0
    assert enable_imprinting(build_loss("triplet", 5, 4)) == 1  # its softmax part
    with pytest.raises(ValueError, match="scale"):
        enable_imprinting(build_loss("softmax", 5, 4), scale=0)


def test_training_with_imprinting_starts_each_seen_row_at_its_class_mean_and_resumes(tmp_path):
    data = make_dataset(tmp_path / "data")
    options = dict(loss="cosface", steps=4, head_init="imprint", checkpoint_every=2)
    config = apply_overrides(TrainConfig(), tiny_overrides(data, **options))
    train(config, tmp_path / "run", log=lambda _: None, stop_at=2)
    loss_state = read_checkpoint(tmp_path / "run/last.pt")["loss_state"]
    assert loss_state["fc.imprinted"].any()
    train(config, tmp_path / "run", resume=True, log=lambda _: None)
    final = read_checkpoint(tmp_path / "run/final.pt")["loss_state"]
    assert final["fc.imprinted"].sum() >= loss_state["fc.imprinted"].sum()


def test_head_init_must_be_random_or_imprint(tmp_path):
    from mfr.errors import ConfigError

    with pytest.raises(ConfigError, match="head_init"):
        apply_overrides(TrainConfig(), tiny_overrides(tmp_path, head_init="zeros")).validate()
