"""mfr finds its shipped configs as package data and its data folder without knowing where
the checkout is: no ``parents[N]`` lookups, so an installed wheel behaves like a checkout."""

from __future__ import annotations

import ast
import tomllib
from importlib.resources import files
from pathlib import Path

import mfr
from mfr.paths import DEFAULT_DATA, config_dir, config_path, data_root

SRC = Path(mfr.__file__).parent


def test_configs_are_package_data_found_with_importlib_resources(monkeypatch):
    from mfr.experiments import config, model_build

    assert config_dir() == Path(str(files("mfr") / "configs")) == SRC / "configs"
    assert config_path("demo.yaml").is_file() and config_path("model-masked.yaml").is_file()
    for scale in ("quick", "cpu", "finetune", "paper"):
        assert config_path(f"experiment-{scale}.yaml").is_file()
    recipe = config_path("model-masked.yaml")
    assert config_dir() == config.CONFIG_DIR and recipe == model_build.RECIPE

    calls = []
    real = files

    def spy(package):
        calls.append(package)
        return real(package)

    monkeypatch.setattr("mfr.paths.files", spy)
    config_path("demo.yaml")
    assert calls == ["mfr"]


def test_the_wheel_ships_every_config():
    pyproject = tomllib.loads((SRC.parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["mfr"]
    shipped = {p for pattern in patterns for p in SRC.glob(pattern)}
    assert shipped == set((SRC / "configs").glob("*")) and len(shipped) >= 20


def test_no_module_looks_up_the_repository_with_parents():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Subscript)
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "parents"
            ):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not offenders
    assert not [p for p in SRC.rglob("*.py") if "parents[" in p.read_text(encoding="utf-8")]


def test_data_folder_defaults_to_shared_data_beside_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("MFR_DATA", raising=False)
    work = tmp_path / "checkout"
    work.mkdir()
    monkeypatch.chdir(work)
    assert str(DEFAULT_DATA) == "../shared/data"
    assert data_root() == (tmp_path / "shared" / "data").resolve()
    monkeypatch.setenv("MFR_DATA", str(tmp_path / "elsewhere"))
    assert data_root() == (tmp_path / "elsewhere").resolve()
