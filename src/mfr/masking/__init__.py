"""Ad-hoc masked-face generators (paper §5.4): DE, KP-CVX and KP-SYN.

Every method is a function ``(image uint8 H x W x 3, landmarks68 float (68, 2), rng) ->
(masked image uint8 H x W x 3, label uint8 H x W, 255 where the method covered)``.
``METHODS`` names them; ``make_method`` builds one with options (template mix and source).
"""

from __future__ import annotations

from pathlib import Path

from mfr.masking.erase import erase
from mfr.masking.hull import hull

METHODS = ("erase", "hull", "template")


def template_mask(image, landmarks, rng):
    """KP-SYN with the built-in designs, every type equally likely."""
    return _default_template()(image, landmarks, rng)


_DEFAULT = {}


def _default_template():
    if "masker" not in _DEFAULT:
        from mfr.masking.template import TemplateMasker

        _DEFAULT["masker"] = TemplateMasker()
    return _DEFAULT["masker"]


REGISTRY = {"erase": erase, "hull": hull, "template": template_mask}


def make_method(name: str, types: str | None = None, masks: str | Path | None = None):
    """The method ``name`` (``erase``, ``hull`` or ``template``); ``types`` (a mix such as
    ``"surgical:0.5,n95:0.2,cloth:0.3"``) and ``masks`` (a MaskTheFace folder) configure
    ``template`` only."""
    from mfr.errors import ConfigError

    if name not in REGISTRY:
        raise ConfigError(f"unknown masking method {name!r}; choose from {', '.join(METHODS)}")
    if name != "template":
        if types or masks:
            raise ConfigError(f"--types and --masks apply to --method template, not {name}")
        return REGISTRY[name]
    from mfr.masking.template import TemplateMasker

    source = None
    if masks is not None:
        from mfr.masking.library import TemplateLibrary

        source = TemplateLibrary(masks)
    return TemplateMasker(source, types)


__all__ = ["METHODS", "REGISTRY", "erase", "hull", "make_method", "template_mask"]
