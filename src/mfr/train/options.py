"""The one options loader: dataclass options from YAML plus dotted ``--set key.sub=value``.

Every options kind of mfr goes through it: the recognizer's
:class:`~mfr.train.config.TrainConfig` and its distillation mapping
(:class:`~mfr.train.config.DistillOptions`), :class:`~mfr.train.iamgan.GanOptions`,
:class:`~mfr.train.segmenter.SegOptions` and
:class:`~mfr.experiments.config.ExperimentConfig`. The rules are strict and the same for all;
a broken rule is one :class:`~mfr.errors.ConfigError` line naming the source (the YAML file,
``--set`` or a caller's label) and the key:

- an unknown key: ``<source>: unknown option(s) <key> (known: ...)`` (``unknown distill
  option(s)`` for a key inside a mapping option);
- a wrong type: ``<source>: option '<key>' expects <type>, got <value>``. ``bool`` takes
  ``true``/``false`` only (not ``1`` or ``yes``); ``int`` takes whole numbers (not ``1.5``
  or ``true``); ``float`` takes numbers, and text that reads as one (YAML 1.1 reads ``1e-4``
  as text); ``str`` and ``Path`` take text only; ``list[T]`` takes a list of ``T`` or one
  ``T`` (a one-item list) but not text with a comma (write ``[a, b]``); ``dict[str, T]``
  takes a mapping of ``T``; ``X | None`` also takes ``null``;
- a mapping option whose field metadata names a ``schema`` dataclass (``field(...,
  metadata={"schema": DistillOptions})``) is checked key by key against that dataclass
  (and by its ``validate`` unless ``metadata["validate"]`` is False) and kept as a plain dict
  of the keys given, with their checked values;
- after the types, the dataclass's own ``validate(source)`` checks ranges and choices.

``--set`` values are parsed as YAML scalars (``--set steps=100``, ``--set data=[a,b]``); a
value that is not YAML (``[1``) stays text and meets the type check. A dotted key sets one key
of a mapping option (``--set loss_options.gamma=0.5``, ``--set distill.teacher=dlib``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from mfr.errors import ConfigError
from mfr.io import load_yaml, missing_file, parse_yaml

T = TypeVar("T")


def load_options(
    cls: type[T],
    path: str | Path | None,
    overrides: list[str] | tuple[str, ...] | None = (),
    what: str = "config file",
) -> T:
    """Read YAML ``path`` (a mapping; None = the defaults), apply ``--set`` ``overrides``
    and return a checked ``cls``. Raises :class:`ConfigError` for a missing or unreadable
    file, YAML that is not a mapping, or any broken rule (module docstring)."""
    overrides = list(overrides or [])
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise missing_file(path, what, cls=ConfigError)
        loaded = load_yaml(path, what)
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a config must be a mapping of option: value")
        values = dict(loaded or {})
        source = str(path) + (" with --set" if overrides else "")
    else:
        source = "--set" if overrides else "defaults"
    return build_options(cls, merge_overrides(values, overrides), source)


def override_options(options: T, overrides: list[str] | tuple[str, ...] | None) -> T:
    """A checked copy of dataclass ``options`` with ``key=value`` strings applied."""
    overrides = list(overrides or [])
    values = merge_overrides(options_dict(options), overrides)
    return build_options(type(options), values, "--set" if overrides else "config")


def merge_overrides(values: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict:
    """``values`` (not modified) with ``key=value`` / ``key.sub=value`` strings applied.

    Raises :class:`ConfigError` for an item without ``=`` or a dotted key into an option
    that is not a mapping."""
    merged = dict(values)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value")
        try:
            value = parse_yaml(raw, f"--set {key}") if raw.strip() else ""
        except ConfigError:  # not YAML: the text itself (checked against the option's type)
            value = raw
        *outer_keys, leaf = key.split(".")
        target = merged
        for depth, name in enumerate(outer_keys):
            inner = target.get(name)
            if inner is None:
                inner = {}
            elif not isinstance(inner, dict):
                dotted = ".".join(outer_keys[: depth + 1])
                raise ConfigError(f"--set {item!r}: option '{dotted}' is not a mapping")
            target[name] = inner = dict(inner)
            target = inner
        target[leaf] = value
    return merged


def build_options(
    cls: type[T],
    values: dict[str, Any],
    source: str = "config",
    *,
    prefix: str = "",
    validate: bool = True,
) -> T:
    """A ``cls`` from the plain mapping ``values``, every key and type checked, then
    ``cls.validate(source)`` (when it has one and ``validate`` is true). ``prefix`` (e.g.
    ``"distill."``) is put before key names in messages for a mapping nested in another
    config. Raises :class:`ConfigError` (module docstring)."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: expected a mapping of option: value, got {values!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields), key=str)
    if unknown:
        kind = f"{prefix.rstrip('.')} option" if prefix else "option"
        raise ConfigError(
            f"{source}: unknown {kind}(s) {', '.join(map(str, unknown))} "
            f"(known: {', '.join(fields)})"
        )
    checked = {}
    for key, value in values.items():
        schema = fields[key].metadata.get("schema")
        if schema is not None:
            checked[key] = _check_mapping(schema, value, source, prefix + key, fields[key].metadata)
        else:
            checked[key] = _coerce(prefix + key, value, hints[key], source)
    options = cls(**checked)
    check = getattr(options, "validate", None)
    if validate and check is not None:
        check(source)
    return options


def options_dict(options: Any) -> dict[str, Any]:
    """Plain dict of a dataclass (for checkpoints and YAML, which hold plain values only)."""
    return dataclasses.asdict(options)


def _check_mapping(schema: type, value: Any, source: str, key: str, metadata) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: option '{key}' expects a mapping, got {value!r}")
    if not value:
        return {}
    options = build_options(
        schema, value, source, prefix=key + ".", validate=metadata.get("validate", True)
    )
    return {name: getattr(options, name) for name in value}


def _type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list:
        return f"a list of {_type_name(args[0])}"
    if origin is dict:
        return "a mapping" if args[1] is Any else f"a mapping of {_type_name(args[1])}"
    return getattr(annotation, "__name__", str(annotation))


def _coerce(key: str, value: Any, annotation: Any, source: str) -> Any:
    """``value`` checked against ``annotation`` (and converted where the rules allow)."""
    if annotation is Any:
        return value
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        annotation = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)

    def wrong(hint: str = "") -> ConfigError:
        return ConfigError(
            f"{source}: option '{key}' expects {_type_name(annotation)}, got {value!r}{hint}"
        )

    if annotation is bool:
        if not isinstance(value, bool):
            raise wrong()
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong()
        return value
    if annotation is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as text
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
    if annotation is Path:
        if not isinstance(value, str | Path):
            raise wrong()
        return Path(value)
    if origin is list:
        if isinstance(value, str) and "," in value:
            raise wrong(f" (write a list: [{value}])")
        if not isinstance(value, list | dict | type(None)):
            value = [value]  # one path or number where a list is expected
        if not isinstance(value, list):
            raise wrong()
        return [_coerce(key, item, args[0], source) for item in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise wrong()
        return {name: _coerce(f"{key}.{name}", v, args[1], source) for name, v in value.items()}
    return value
