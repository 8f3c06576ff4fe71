"""Training-data selection: ``max_images`` keeps the first N full faces and their twins."""

from __future__ import annotations

from _train_data import make_dataset, tiny_overrides

from mfr.train.config import TrainConfig, apply_overrides
from mfr.train.selection import load_training_data


def test_max_images_keeps_first_full_faces_with_their_masked_twins(tmp_path):
    # a folder named "masked" above the dataset must not be mistaken for the domain
    data = make_dataset(tmp_path / "masked" / "data", identities=3, per_identity=4, masked=2)
    config = apply_overrides(TrainConfig(), tiny_overrides(data, max_images=1))
    selected = load_training_data(config, log=lambda _: None)
    names = sorted(p.relative_to(data).as_posix() for p in selected.paths)
    expected = sorted(f"person_{i:02d}/{part}0.png" for i in range(3) for part in ("", "masked/"))
    assert names == expected
    assert sorted(selected.domains.tolist()) == [0, 0, 0, 1, 1, 1]


def test_max_images_zero_keeps_everything(tmp_path):
    data = make_dataset(tmp_path / "data", identities=3, per_identity=4, masked=2)
    config = apply_overrides(TrainConfig(), tiny_overrides(data))
    assert len(load_training_data(config, log=lambda _: None).paths) == 3 * (4 + 2)


def test_set_reaches_keys_of_mapping_options():
    config = apply_overrides(
        TrainConfig(), ["distill.teacher=dlib", "distill.weight_full=2", "loss_options.margin=0.2"]
    )
    assert config.distill == {"teacher": "dlib", "weight_full": 2}
    assert config.loss_options == {"margin": 0.2}
