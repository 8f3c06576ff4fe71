"""Experiment settings: a YAML file (shipped: ``src/mfr/configs/experiment-<scale>.yaml``) read
into a dataclass by the one options loader (:mod:`mfr.train.options`: unknown keys and wrong
types name the file and the key, also inside ``train`` and ``distill``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mfr.errors import ConfigError
from mfr.experiments.cells import BASELINE_ROWS
from mfr.paths import config_dir
from mfr.train.config import DistillOptions, TrainConfig
from mfr.train.options import build_options, load_options

CONFIG_DIR = config_dir()  # the shipped configs (mfr.paths)


@dataclass
class ExperimentConfig:
    """Where the data lives, how it is split, and the recognizer settings every cell shares."""

    data_dir: str = "runs/data"  # aligned and masked datasets, shared by all experiments
    lfw: str = "lfw/images"  # relative to MFR_DATA unless absolute
    celeba: str | None = "celeba"  # extra training identities; None or missing: not used
    mfr2: str = "mfr2-dev"
    rmfrd: str | None = None  # second real-mask test (the demo); None: not used
    rmfrd_identities: int = 0  # > 0: only the first N rmfrd-dev identities (by name)
    exclude: str = "lfw/exclude-mfr2-overlap.txt"
    lfw_limit: int = 0  # > 0: only this many LFW identities (those with most images first)
    lfw_max_per_identity: int = 0  # > 0: at most this many images of each LFW identity
    heldout_identities: int = 100  # LFW identities kept out for the synthetic-mask test
    heldout_sources: list[str] = field(default_factory=lambda: ["lfw"])  # + "celeba"
    heldout_max_images: int = 0  # > 0: at most this many images of a held-out identity
    # > 0: the first N full faces of a held-out identity are its gallery and the masked twins
    # of the rest its probes; 0: even-numbered images are probes, odd-numbered ones gallery
    heldout_gallery_images: int = 0
    masked_source: str = "template"  # generated masks of Table 1 and Table 4
    gan_checkpoints: dict[str, str] = field(default_factory=dict)  # source -> IAMGAN checkpoint
    seeds: list[int] = field(default_factory=lambda: [0])
    # untrained rows of Table 1 (mfr.experiments.cells.BASELINE_ROWS): off-the-shelf "dlib"
    # and "dlib-resnet" (dlib's weights behind mfr's chip)
    baselines: list[str] = field(default_factory=lambda: ["dlib", "dlib-resnet"])
    second_seed_tables: list[str] = field(default_factory=list)
    size: int = 112  # alignment size; training resizes to train.input_size
    workers: int = 2
    # recognizer options every cell shares (TrainConfig keys and types; the cell adds data,
    # loss and seed, so ranges are checked per cell)
    train: dict[str, Any] = field(
        default_factory=dict, metadata={"schema": TrainConfig, "validate": False}
    )
    # the tables (e.g. [table1]) whose trained rows get a "+distill" twin trained with
    # ``distill`` (the recognizer's distill mapping, e.g. {teacher: dlib-resnet})
    distill_tables: list[str] = field(default_factory=list)
    distill: dict[str, Any] = field(default_factory=dict, metadata={"schema": DistillOptions})
    bootstrap: int = 0  # > 0: identity resamples of each test's 95 % intervals (mfr eval)
    # the demo's masked-face model (mfr.experiments.model_build.BuildOptions fields: steps,
    # head_warmup_steps, name, ...); empty: the demo builds none
    model_build: dict[str, Any] = field(default_factory=dict)

    def validate(self, source: str) -> None:
        if self.distill_tables and not self.distill.get("teacher"):
            raise ConfigError(f"{source}: option 'distill_tables' needs 'distill' with a teacher")
        unknown_baselines = sorted(set(self.baselines) - set(BASELINE_ROWS))
        if unknown_baselines:
            raise ConfigError(f"{source}: baselines: unknown {', '.join(unknown_baselines)}")
        unknown_sources = sorted(set(self.heldout_sources) - {"lfw", "celeba"})
        if unknown_sources:
            raise ConfigError(f"{source}: heldout_sources: unknown {', '.join(unknown_sources)}")
        if self.model_build:
            from mfr.experiments.model_build import BuildOptions  # only configs with model_build

            build_options(BuildOptions, self.model_build, source, prefix="model_build.")


def load_experiment_config(path: str | Path | None, scale: str = "cpu") -> ExperimentConfig:
    """Read ``path`` (default: the shipped ``experiment-<scale>.yaml``) into a checked
    :class:`ExperimentConfig`; a missing file, an unknown key or a wrong type is a
    :class:`~mfr.errors.ConfigError` naming the file (and the key)."""
    path = Path(path) if path is not None else CONFIG_DIR / f"experiment-{scale}.yaml"
    return load_options(ExperimentConfig, path, what="experiment config")
