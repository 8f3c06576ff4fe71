"""The losses by name: ``build_loss(name, num_classes, embedding_dim, **options)``.

Each loss is listed once, in ``_CLASSES``; its table label (``label``) and the allowed values
of its options (``option_ranges``) live on its class (:class:`mfr.losses._base.RecognitionLoss`).
"""

from __future__ import annotations

import inspect
from importlib import import_module
from numbers import Real

from mfr.errors import ConfigError
from mfr.losses._base import RecognitionLoss

# name -> "module:class" under mfr.losses; a class carries its table label and option ranges.
_CLASSES = {
    "softmax": "softmax:SoftmaxLoss",
    "triplet": "triplet:TripletLoss",
    "center": "center:CenterLoss",
    "sphereface": "sphereface:SphereFaceLoss",
    "cosface": "cosface:CosFaceLoss",
    "arcface": "arcface:ArcFaceLoss",
    "dcr": "dcr:SoftmaxDCRLoss",
}


def _load(target: str) -> type[RecognitionLoss]:
    module, _, name = target.partition(":")
    return getattr(import_module(f"mfr.losses.{module}"), name)


LOSSES: dict[str, type[RecognitionLoss]] = {name: _load(t) for name, t in _CLASSES.items()}


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
    allowed = LOSSES[loss].option_ranges.get(key)
    problem = allowed.violation(value) if allowed else None
    if problem:
        raise ConfigError(f"{where} {problem}, got {value!r}")


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
