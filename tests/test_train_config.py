"""Training config: YAML + --set overrides, unknown keys and wrong types name the key."""

from __future__ import annotations

import pytest

from mfr.errors import ConfigError
from mfr.train.config import TrainConfig, apply_overrides, load_config


def test_yaml_and_overrides_are_typed(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("backbone: resnet34\nsteps: 100\nlr: 1\ndata: some/root\n")
    config = load_config(path, ["steps=7", "bf16=true", "loss_options.gamma=0.5", "lr=2e-4"])
    assert config.backbone == "resnet34" and config.steps == 7 and config.bf16 is True
    assert config.lr == 2e-4 and isinstance(config.lr, float)
    assert config.data == ["some/root"]  # a single path becomes a list
    assert config.loss_options == {"gamma": 0.5}


def test_paper_defaults_follow_section_5_2():
    config = TrainConfig()
    assert (config.p, config.k, config.lr, config.steps) == (32, 6, 1e-4, 60000)
    assert config.lr_milestones == [0.5, 0.75] and config.lr_gamma == 0.1


def test_unknown_key_in_yaml_names_key_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("backbone: resnet18\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown option\(s\) learning_rate"):
        load_config(path)


@pytest.mark.parametrize(
    "override, key",
    [("steps=many", "steps"), ("steps=1.5", "steps"), ("bf16=3", "bf16"), ("lr=fast", "lr"),
     ("loss_options=5", "loss_options"), ("domains=masked", "domains"), ("p=1", "p")],
)  # fmt: skip
def test_wrong_type_or_value_names_the_key(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        apply_overrides(TrainConfig(), [override])


def test_unknown_override_and_malformed_override_are_errors():
    with pytest.raises(ConfigError, match="unknown option.*batch"):
        apply_overrides(TrainConfig(), ["batch=3"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(TrainConfig(), ["steps"])


def test_missing_or_non_mapping_yaml_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


def test_shipped_configs_load(tmp_path):
    from mfr.paths import config_dir

    configs = config_dir()
    paper = load_config(configs / "recognizer-paper.yaml")
    assert (paper.backbone, paper.input_size, paper.steps, paper.p, paper.k) == (
        "resnet50", 112, 60000, 32, 6)  # fmt: skip
    cpu = load_config(configs / "recognizer-cpu.yaml")
    assert cpu.input_size <= 96


def test_cli_reports_a_bad_config_in_one_line_and_shows_a_good_one(tmp_path, capsys):
    from mfr.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: ten\n")
    assert main(["train", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"mfr: error: {bad}: option 'steps' expects int, got 'ten'"
    assert main(["train", "--config", str(bad), "--set", "steps=3", "--show-config"]) == 0
    assert "steps: 3" in capsys.readouterr().out


def test_every_shipped_recognizer_config_loads_and_distillation_configs_name_a_teacher():
    from mfr.paths import config_dir

    configs = config_dir()
    names = ("recognizer-", "distill-")
    shipped = [p for p in sorted(configs.glob("*.yaml")) if p.name.startswith(names)]
    assert len(shipped) >= 7
    for path in shipped:
        config = load_config(path)
        if path.name.startswith("distill-"):
            assert config.distill["teacher"] == "dlib", path.name
        if config.backbone == "dlib-resnet":
            assert (config.init, config.embedding_dim) == ("dlib", 128), path.name
