"""The one options loader: every options kind rejects unknown keys and wrong types naming the
file and the key, takes dotted ``--set`` overrides, and has none of the old lenient
coercions (``bf16=1``, ``"a,b"`` as a list)."""

from __future__ import annotations

import pytest

from mfr.errors import ConfigError
from mfr.experiments.config import ExperimentConfig, load_experiment_config
from mfr.train.config import DistillOptions, TrainConfig, distill_options, load_config
from mfr.train.iamgan import GanOptions
from mfr.train.options import load_options, merge_overrides
from mfr.train.segmenter import SegOptions

# kind -> (a YAML line of the wrong type, its key, the type named)
KINDS = {
    TrainConfig: ("bf16: 1", "bf16", "bool"),
    GanOptions: ("bf16: 1", "bf16", "bool"),
    SegOptions: ("epochs: 2.5", "epochs", "int"),
    ExperimentConfig: ("seeds: '0,1'", "seeds", "a list of int"),
}


def _yaml(tmp_path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(text + "\n")
    return path


@pytest.mark.parametrize("cls", KINDS, ids=lambda c: c.__name__)
def test_unknown_key_names_the_file_and_the_key(tmp_path, cls):
    path = _yaml(tmp_path, "bogus_key: 3")
    with pytest.raises(ConfigError, match=rf"^{path}: unknown option\(s\) bogus_key \(known: "):
        load_options(cls, path)
    with pytest.raises(ConfigError, match=r"^--set: unknown option\(s\) bogus_key"):
        load_options(cls, None, ["bogus_key=3"])


@pytest.mark.parametrize("cls", KINDS, ids=lambda c: c.__name__)
def test_wrong_type_names_the_file_and_the_key(tmp_path, cls):
    line, key, expected = KINDS[cls]
    path = _yaml(tmp_path, line)
    with pytest.raises(ConfigError, match=rf"^{path}: option '{key}' expects {expected}, got "):
        load_options(cls, path)


def test_lenient_coercions_are_errors():
    with pytest.raises(ConfigError, match=r"option 'bf16' expects bool, got 1$"):
        load_options(GanOptions, None, ["bf16=1"])
    with pytest.raises(ConfigError, match=r"option 'flip' expects bool, got 'yes'"):
        load_options(SegOptions, None, ["flip='yes'"])
    with pytest.raises(ConfigError, match=r"'extra_label_roots' expects a list of str.*\[a,b\]"):
        load_options(SegOptions, None, ["extra_label_roots=a,b"])
    with pytest.raises(ConfigError, match=r"option 'out' expects str, got 5"):
        load_options(SegOptions, None, ["out=5"])
    with pytest.raises(ConfigError, match=r"option 'steps' expects int, got '4'"):
        load_options(GanOptions, None, ["steps='4'"])
    assert load_options(SegOptions, None, ["extra_label_roots=[a,b]"]).extra_label_roots == [
        "a",
        "b",
    ]


def test_distill_options_unknown_key_and_wrong_type_name_the_file_and_the_key(tmp_path):
    path = _yaml(tmp_path, "distill:\n  teacher: dlib\n  temperature: 2")
    with pytest.raises(ConfigError, match=rf"^{path}: unknown distill option\(s\) temperature"):
        load_config(path)
    path = _yaml(tmp_path, "distill:\n  teacher: dlib\n  weight_full: heavy")
    with pytest.raises(ConfigError, match=rf"^{path}: option 'distill.weight_full' expects float"):
        load_config(path)
    path = _yaml(tmp_path, "distill:\n  weight_full: 2")
    with pytest.raises(ConfigError, match=rf"^{path}: distill needs 'teacher'"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"^cell x: option 'distill.warmup_steps' expects int"):
        distill_options({"teacher": "dlib", "warmup_steps": 1.5}, "cell x")
    options = distill_options({"teacher": "dlib", "weight_full": 2})
    assert options == DistillOptions(teacher="dlib", weight_full=2.0)
    assert options.loss_arguments()["weight_full"] == 2.0


def test_experiment_config_checks_its_train_and_distill_mappings(tmp_path):
    path = _yaml(tmp_path, "train:\n  backbone: resnet18\n  learning_rate: 1")
    with pytest.raises(ConfigError, match=rf"^{path}: unknown train option\(s\) learning_rate"):
        load_experiment_config(path)
    path = _yaml(tmp_path, "train:\n  bf16: 1")
    with pytest.raises(ConfigError, match=rf"^{path}: option 'train.bf16' expects bool, got 1"):
        load_experiment_config(path)
    path = _yaml(tmp_path, "distill:\n  teacher: dlib\n  metric: 3")
    with pytest.raises(ConfigError, match=rf"^{path}: option 'distill.metric' expects str"):
        load_experiment_config(path)
    path = _yaml(tmp_path, "model_build:\n  stepz: 3")
    with pytest.raises(ConfigError, match=rf"^{path}: unknown model_build option\(s\) stepz"):
        load_experiment_config(path)
    path = _yaml(tmp_path, "train:\n  steps: 5\n  lr: 1e-3\ngan_checkpoints:\n  iamgan: 3")
    with pytest.raises(ConfigError, match=r"option 'gan_checkpoints.iamgan' expects str, got 3"):
        load_experiment_config(path)


def test_dotted_set_overrides_one_key_of_a_mapping(tmp_path):
    path = _yaml(tmp_path, "steps: 10\nloss_options:\n  gamma: 0.5\n  beta: 0.1")
    config = load_config(path, ["loss_options.gamma=0.25", "distill.teacher=dlib"])
    assert config.loss_options == {"gamma": 0.25, "beta": 0.1}
    assert config.distill == {"teacher": "dlib"} and config.steps == 10
    config = load_config(path, ["distill.teacher=dlib", "distill.warmup_steps=3"])
    assert config.distill == {"teacher": "dlib", "warmup_steps": 3}
    path = _yaml(tmp_path, "train:\n  steps: 5\n  lr: 1e-3")
    assert load_experiment_config(path).train == {"steps": 5, "lr": 1e-3}
    assert load_options(ExperimentConfig, path, ["train.steps=7"]).train == {"steps": 7, "lr": 1e-3}
    gan = load_options(GanOptions, None, ["steps=3", "lr=1e-4"])
    assert (gan.steps, gan.lr) == (3, 1e-4)


def test_dotted_set_into_an_option_that_is_not_a_mapping_is_an_error():
    with pytest.raises(ConfigError, match=r"option 'steps' is not a mapping"):
        merge_overrides({"steps": 3}, ["steps.x=1"])
    with pytest.raises(ConfigError, match=r"unknown option\(s\) epochz"):
        load_options(SegOptions, None, ["epochz.a=1"])


@pytest.mark.parametrize(
    "command, line, message",
    [
        (["gan", "train"], "bf16: 1", "option 'bf16' expects bool, got 1"),
        (["seg", "train"], "epochz: 3", "unknown option(s) epochz (known: "),
        (["train"], "distill:\n  teacher: dlib\n  metrik: l2", "unknown distill option(s) metrik"),
        (["experiment", "table1"], "train:\n  bf16: 1", "option 'train.bf16' expects bool, got 1"),
    ],
)
def test_cli_reports_a_bad_option_in_one_line_naming_the_file(tmp_path, capsys, command, line,
                                                              message):  # fmt: skip
    from mfr.cli import main

    path = _yaml(tmp_path, line)
    assert main([*command, "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"mfr: error: {path}: {message}"), err
