"""Dataclass options read from YAML with ``key=value`` overrides; unknown keys are errors."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from mfr.errors import ConfigError
from mfr.io import load_yaml, missing_file, parse_yaml

T = TypeVar("T")


def _coerce(name: str, value: Any, annotation: Any, source: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        annotation = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    try:
        if annotation is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if annotation is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(float(value)) if isinstance(value, str) else int(value)
        if annotation is float:
            return float(value)
        if annotation is str:
            return str(value)
        if origin is list:
            if isinstance(value, str):
                value = [v for v in value.split(",") if v]
            return [_coerce(name, v, args[0], source) for v in value]
    except (TypeError, ValueError):
        raise ConfigError(
            f"{source}: option '{name}' expects {getattr(annotation, '__name__', annotation)}, "
            f"got {value!r}"
        ) from None
    return value


def build_options(cls: type[T], values: dict[str, Any], source: str = "config") -> T:
    """Create dataclass ``cls`` from ``values``, checking names and types."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown option(s) {', '.join(unknown)}")
    coerced = {k: _coerce(k, v, hints[k], source) for k, v in values.items()}
    options = cls(**coerced)
    check = getattr(options, "validate", None)
    if check is not None:
        check(source)
    return options


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (values parsed as YAML scalars; a value
    that is not YAML, such as ``[1``, is kept as text and checked against the option's
    type)."""
    result: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got '{pair}'")
        key, value = pair.split("=", 1)
        try:
            result[key.strip()] = parse_yaml(value, f"--set {key.strip()}") if value else ""
        except ConfigError:
            result[key.strip()] = value
    return result


def load_options(cls: type[T], path: str | Path | None, overrides: list[str] | None = None) -> T:
    """Read YAML ``path`` (or defaults when None), apply ``--set`` overrides, validate."""
    values: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise missing_file(path, "config file", cls=ConfigError)
        loaded = load_yaml(path, "config file") or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of options")
        values.update(loaded)
    values.update(parse_overrides(overrides))
    return build_options(cls, values, source)


def options_dict(options: Any) -> dict[str, Any]:
    """Plain dict of a dataclass (for checkpoints, which hold plain Python values only)."""
    return dataclasses.asdict(options)
