"""The recognizer training config: a typed dataclass read from YAML plus ``key=value`` overrides.

Unknown keys and values of the wrong type are a :class:`~mfr.errors.ConfigError` naming the key
and the file. ``--set`` values are parsed as YAML scalars (``--set steps=100``,
``--set bf16=true``, ``--set data=[a,b]``); keys of ``loss_options`` are set with a dot
(``--set loss_options.alpha_s=0.6``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mfr.errors import ConfigError
from mfr.io import load_yaml, missing_file, parse_yaml


@dataclass
class TrainConfig:
    """Every option of ``mfr train`` (see docs/training.md for what each does)."""

    # model
    backbone: str = "resnet18"
    input_size: int = 112
    embedding_dim: int = 512
    head: str | None = None  # None: the backbone's default ("flatten" / "gap" for resnet50)
    dropout: float = 0.0
    # starting weights: None (random), "dlib" (dlib's descriptor, backbone dlib-resnet) or an
    # mfr checkpoint of the same backbone (fine-tuning); ignored when resuming
    init: str | None = None
    loss: str = "softmax"
    loss_options: dict[str, Any] = field(default_factory=dict)
    # data
    data: list[str] = field(default_factory=list)  # dataset roots or manifest CSVs
    exclude: list[str] = field(default_factory=list)  # files listing identities to leave out
    domains: str = "both"  # "both" or "full" (drop the masked twins)
    min_images: int = 1  # leave out identities with fewer full-face images
    max_images: int = 0  # > 0: keep only the first N full faces of an identity (+ twins)
    flip: float = 0.5  # probability of a horizontal flip
    workers: int = 2
    # sampling and schedule (paper: 32 x 6, Adam 1e-4, x0.1 at 50 % and 75 %)
    p: int = 32
    k: int = 6
    steps: int = 60000
    lr: float = 1e-4
    lr_milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])
    lr_gamma: float = 0.1
    weight_decay: float = 0.0
    # fine-tuning a pretrained backbone (docs/training.md): the loss's own parameters (the
    # classifier head) get head_lr (None: lr), and for the first head_warmup_steps steps the
    # backbone is frozen (no gradient, eval mode) while the new head learns
    head_lr: float | None = None
    head_warmup_steps: int = 0
    # "imprint": each classifier row starts at its identity's mean embedding the first time the
    # identity is in a batch (mfr.losses.imprint); "random": the loss's own initialisation
    head_init: str = "random"
    imprint_scale: float = 30.0
    # > 0: clip the gradient of all trained parameters to this global L2 norm each step
    # (keeps the first backbone steps after the warm-up from wrecking pretrained weights)
    grad_clip: float = 0.0
    seed: int = 0
    # speed
    device: str = "auto"  # auto | cpu | cuda
    bf16: bool = False
    channels_last: bool = False
    # bookkeeping
    log_every: int = 50
    checkpoint_every: int = 1000
    val_data: str | None = None  # a dataset evaluated by mfr.eval every val_every steps
    val_every: int = 0
    # teacher-guided training (docs/distillation.md): {} = off; keys: teacher (required),
    # cache, metric, weight_full, weight_masked, weight_relational, warmup_steps
    distill: dict[str, Any] = field(default_factory=dict)

    def validate(self, source: str = "config") -> None:
        """Range checks that types alone cannot express."""
        checks = [
            (self.domains in ("both", "full"), "domains", "must be 'both' or 'full'"),
            (self.input_size >= 16, "input_size", "must be >= 16"),
            (self.embedding_dim >= 1, "embedding_dim", "must be positive"),
            (self.p >= 2, "p", "must be >= 2 (a batch needs two identities)"),
            (self.k >= 1, "k", "must be positive"),
            (self.min_images >= 1, "min_images", "must be positive"),
            (self.max_images >= 0, "max_images", "must be >= 0 (0 keeps all)"),
            (self.steps >= 1, "steps", "must be positive"),
            (self.lr > 0, "lr", "must be positive"),
            (self.head_lr is None or self.head_lr > 0, "head_lr", "must be positive"),
            (
                0 <= self.head_warmup_steps < self.steps,
                "head_warmup_steps",
                "must be >= 0 and below steps",
            ),
            (self.head_init in ("random", "imprint"), "head_init", "must be random or imprint"),
            (self.imprint_scale > 0, "imprint_scale", "must be positive"),
            (self.grad_clip >= 0, "grad_clip", "must be >= 0 (0: no clipping)"),
            (0.0 <= self.flip <= 1.0, "flip", "must be a probability"),
            (self.workers >= 0, "workers", "must be >= 0"),
            (self.device in ("auto", "cpu", "cuda"), "device", "must be auto, cpu or cuda"),
            (self.log_every >= 1, "log_every", "must be positive"),
            (self.checkpoint_every >= 0, "checkpoint_every", "must be >= 0"),
            (self.val_every >= 0, "val_every", "must be >= 0"),
            (all(0 < m <= 1 for m in self.lr_milestones), "lr_milestones", "must be in (0, 1]"),
        ]
        for ok, key, problem in checks:
            if not ok:
                raise ConfigError(f"{source}: option '{key}' {problem}, got {getattr(self, key)!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(
    path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()
) -> TrainConfig:
    """Read ``path`` (YAML mapping; None = defaults) and apply ``key=value`` overrides."""
    values: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise missing_file(path, "config file", cls=ConfigError)
        loaded = load_yaml(path, "config file")
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a config must be a mapping of option: value")
        values = dict(loaded or {})
    _merge_overrides(values, overrides)
    return config_from_dict(values, source + (" with --set" if overrides else ""))


def config_from_dict(values: dict[str, Any], source: str = "config") -> TrainConfig:
    """Build a checked :class:`TrainConfig` from a plain dict."""
    hints = typing.get_type_hints(TrainConfig)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        known = ", ".join(hints)
        raise ConfigError(f"{source}: unknown option(s) {', '.join(unknown)} (known: {known})")
    coerced = {key: _coerce(key, value, hints[key], source) for key, value in values.items()}
    config = TrainConfig(**coerced)
    config.validate(source)
    return config


def apply_overrides(config: TrainConfig, overrides) -> TrainConfig:
    """Apply ``key=value`` strings (values parsed as YAML) to a copy of ``config``."""
    values = config.to_dict()
    _merge_overrides(values, overrides)
    return config_from_dict(values, "--set" if overrides else "config")


_MAPPING_OPTIONS = ("loss_options", "distill")  # set one key with --set distill.teacher=dlib


def _merge_overrides(values: dict[str, Any], overrides) -> None:
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value")
        try:
            value = parse_yaml(raw, f"--set {key}") if raw.strip() else ""
        except ConfigError:  # not YAML: the text itself (checked against the option's type)
            value = raw
        parent, dot, child = key.partition(".")
        if dot and parent in _MAPPING_OPTIONS:
            options = values.get(parent) or {}
            if not isinstance(options, dict):
                raise ConfigError(f"--set {item!r}: option '{parent}' is not a mapping")
            values[parent] = {**options, child: value}
        else:
            values[key] = value


def _coerce(key: str, value: Any, annotation: Any, source: str) -> Any:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        annotation = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)

    def wrong() -> ConfigError:
        name = getattr(annotation, "__name__", str(annotation))
        if origin is list:
            name = f"a list of {args[0].__name__}"
        elif origin is dict:
            name = "a mapping"
        return ConfigError(f"{source}: option '{key}' expects {name}, got {value!r}")

    if annotation is bool:
        if not isinstance(value, bool):
            raise wrong()
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong()
        return value
    if annotation is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise wrong() from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong()
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise wrong()
        return value
    if origin is list:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            value = [value]  # a single path or number where a list is expected
        if not isinstance(value, list):
            raise wrong()
        return [_coerce(key, item, args[0], source) for item in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise wrong()
        return dict(value)
    return value
