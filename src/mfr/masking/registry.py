"""The masking methods by name: the one list that the CLI, ``make_method``, the experiment
tables and the docs read.

A method is a callable ``(image uint8 H x W x 3, landmarks68 float (68, 2), rng) -> (masked
image uint8 H x W x 3, label uint8 H x W, 255 where the method covered)``. An entry names
where it lives (``"module:attribute"``, imported on first use so that listing the methods
costs nothing), its label in the paper's tables and, for a method with options (``--types``,
``--masks``), the factory ``(types, masks) -> method``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module


@dataclass(frozen=True)
class MaskMethod:
    """One masking method: ``name`` (``--method``), its table ``label`` and where it lives."""

    name: str
    label: str
    method: str  # "module:attribute" of the method with its default options
    factory: str | None = None  # "module:attribute" of (types, masks) -> method; None: no options

    def load(self):
        """The method with its default options."""
        return _attribute(self.method)

    def build(self, types=None, masks=None):
        """The method with options ``types`` and ``masks``; only methods with a factory take
        them (:class:`mfr.errors.ConfigError` otherwise)."""
        if self.factory is None:
            if types or masks:
                from mfr.errors import ConfigError

                raise ConfigError(
                    f"--types and --masks apply to --method template, not {self.name}"
                )
            return self.load()
        return _attribute(self.factory)(types, masks)


def _attribute(target: str):
    module, _, name = target.partition(":")
    return getattr(import_module(module), name)


MASK_METHODS: dict[str, MaskMethod] = {
    method.name: method
    for method in (
        MaskMethod("erase", "DE", "mfr.masking.erase:erase"),
        MaskMethod("hull", "KP-CVX", "mfr.masking.hull:hull"),
        MaskMethod(
            "template",
            "KP-SYN",
            "mfr.masking.template:template_mask",
            "mfr.masking.template:template_method",
        ),  # fmt: skip
    )
}
METHODS = tuple(MASK_METHODS)


def method_help() -> str:
    """``erase (DE), hull (KP-CVX) or template (KP-SYN)``: the methods for a help text."""
    names = [f"{m.name} ({m.label})" for m in MASK_METHODS.values()]
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
