"""The losses by name: ``build_loss(name, num_classes, embedding_dim, **options)``."""

from __future__ import annotations

import inspect
from numbers import Real

from mfr.errors import ConfigError
from mfr.losses._base import RecognitionLoss
from mfr.losses.arcface import ArcFaceLoss
from mfr.losses.center import CenterLoss
from mfr.losses.cosface import CosFaceLoss
from mfr.losses.dcr import SoftmaxDCRLoss
from mfr.losses.softmax import SoftmaxLoss
from mfr.losses.sphereface import SphereFaceLoss
from mfr.losses.triplet import TripletLoss

LOSSES: dict[str, type[RecognitionLoss]] = {
    "softmax": SoftmaxLoss,
    "triplet": TripletLoss,
    "center": CenterLoss,
    "sphereface": SphereFaceLoss,
    "cosface": CosFaceLoss,
    "arcface": ArcFaceLoss,
    "dcr": SoftmaxDCRLoss,
}

# Range checks by option name (the same name means the same kind of value in every loss).
_NONNEGATIVE = {"margin", "weight", "alpha_s", "alpha_c", "gamma", "power", "lambda_min", "base"}
_POSITIVE = {"scale"}
_UNIT = {"beta", "alpha"}


def loss_options(name: str) -> dict[str, object]:
    """The options of loss ``name`` with their defaults."""
    cls = _loss_class(name)
    params = list(inspect.signature(cls.__init__).parameters.values())[3:]
    return {p.name: p.default for p in params}


def _loss_class(name: str) -> type[RecognitionLoss]:
    if not isinstance(name, str) or name not in LOSSES:
        known = ", ".join(LOSSES)
        raise ConfigError(f"unknown loss {name!r}; known losses: {known}")
    return LOSSES[name]


def _check_option(loss: str, key: str, value: object, default: object) -> None:
    where = f"loss {loss!r}: option {key!r}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        if value < 1:
            raise ConfigError(f"{where} must be at least 1, got {value!r}")
        return
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"{where} must be finite, got {value!r}")
    if key in _NONNEGATIVE and value < 0:
        raise ConfigError(f"{where} must be >= 0, got {value!r}")
    if key in _POSITIVE and value <= 0:
        raise ConfigError(f"{where} must be > 0, got {value!r}")
    if key in _UNIT and not 0 <= value <= 1:
        raise ConfigError(f"{where} must be in [0, 1], got {value!r}")


def build_loss(name: str, num_classes: int, embedding_dim: int, **options) -> RecognitionLoss:
    """Build loss ``name`` for ``num_classes`` identities and ``embedding_dim``-d features.

    Unknown names, unknown options, wrong types and out-of-range values raise
    :class:`mfr.errors.ConfigError` naming the loss and the option.
    """
    defaults = loss_options(name)
    for key, value in options.items():
        if key not in defaults:
            known = ", ".join(defaults) or "none"
            raise ConfigError(f"loss {name!r}: unknown option {key!r} (known options: {known})")
        _check_option(name, key, value, defaults[key])
    for what, value in (("num_classes", num_classes), ("embedding_dim", embedding_dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"loss {name!r}: {what} must be a positive integer, got {value!r}")
    return LOSSES[name](num_classes, embedding_dim, **options)
