"""Ad-hoc masked-face generators (paper §5.4): DE, KP-CVX and KP-SYN.

Every method is a function ``(image uint8 H x W x 3, landmarks68 float (68, 2), rng) ->
(masked image uint8 H x W x 3, label uint8 H x W, 255 where the method covered)``. They are
listed once, in :mod:`mfr.masking.registry`; ``METHODS`` names them, ``REGISTRY`` maps each
name to the method with its default options and ``make_method`` builds one with options
(template mix and source).
"""

from __future__ import annotations

from pathlib import Path

from mfr.masking.erase import erase  # the methods' functions, as mfr.masking exported them
from mfr.masking.hull import hull
from mfr.masking.registry import MASK_METHODS, METHODS
from mfr.masking.template import template_mask

REGISTRY = {name: method.load() for name, method in MASK_METHODS.items()}


def make_method(name: str, types: str | None = None, masks: str | Path | None = None):
    """The method ``name`` (one of ``METHODS``); ``types`` (a mix such as
    ``"surgical:0.5,n95:0.2,cloth:0.3"``) and ``masks`` (a MaskTheFace folder) configure
    ``template`` only. Unknown names and options raise :class:`mfr.errors.ConfigError`."""
    from mfr.errors import ConfigError

    if name not in MASK_METHODS:
        raise ConfigError(f"unknown masking method {name!r}; choose from {', '.join(METHODS)}")
    return MASK_METHODS[name].build(types, masks)


__all__ = ["METHODS", "REGISTRY", "erase", "hull", "make_method", "template_mask"]
