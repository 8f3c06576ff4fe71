"""Mask templates from a folder in the MaskTheFace layout.

``DIR/masks.cfg`` is an INI file; each section names a template (``[surgical_blue]``,
``[surgical_blue_left]``, ...) with ``template: <path relative to DIR>`` (an RGBA PNG) and six
anchors ``mask_a`` .. ``mask_f`` as ``x, y`` template pixels. Sections without a template
(MaskTheFace's ``empty``/``inpaint``) are ignored. A name ending in ``_left``/``_right`` is
the pose variant of the name without it; types are the names without a suffix. A
``textures/`` folder may be present and is not needed.
"""

from __future__ import annotations

import configparser
from pathlib import Path

import numpy as np

from mfr.errors import ConfigError
from mfr.masking.mask_template import MaskTemplate

ANCHOR_KEYS = ("mask_a", "mask_b", "mask_c", "mask_d", "mask_e", "mask_f")
MAX_SIDE = 320  # templates are shrunk (area averaging) to this working size once, on load


def _parse_point(cfg_path: Path, section: str, key: str, text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{cfg_path}: [{section}] {key} must be 'x, y', got {text!r}") from None
    return x, y


def read_masks_cfg(folder: str | Path) -> dict[str, tuple[Path, np.ndarray]]:
    """Parse ``masks.cfg``: section name -> (template path, anchors 6 x 2)."""
    folder = Path(folder)
    cfg_path = folder / "masks.cfg"
    if not cfg_path.is_file():
        raise ConfigError(f"{cfg_path}: no masks.cfg (a MaskTheFace template folder needs one)")
    parser = configparser.ConfigParser(inline_comment_prefixes=(";", "#"))
    parser.optionxform = str
    try:
        parser.read(cfg_path, encoding="utf-8")
    except configparser.Error as error:
        raise ConfigError(f"{cfg_path}: not a valid INI file ({error})") from None
    entries = {}
    for section in parser.sections():
        options = parser[section]
        if "template" not in options:
            continue
        missing = [k for k in ANCHOR_KEYS if k not in options]
        if missing:
            raise ConfigError(f"{cfg_path}: [{section}] lacks {', '.join(missing)}")
        anchors = np.array([_parse_point(cfg_path, section, k, options[k]) for k in ANCHOR_KEYS])
        entries[section] = (folder / options["template"].strip(), anchors)
    if not entries:
        raise ConfigError(f"{cfg_path}: no section with a template")
    return entries


def load_template(name: str, path: Path, anchors: np.ndarray) -> MaskTemplate:
    """Read one RGBA template and shrink it to the working size."""
    import cv2

    if not path.is_file():
        raise ConfigError(f"{path}: template file of [{name}] not found")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ConfigError(f"{path}: template of [{name}] cannot be decoded")
    if image.ndim != 3 or image.shape[2] != 4:
        raise ConfigError(f"{path}: template of [{name}] has no alpha channel (need RGBA)")
    if image.dtype != np.uint8:
        image = (image / 257).astype(np.uint8)
    rgba = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    scale = min(1.0, MAX_SIDE / max(rgba.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(rgba.shape[1] * scale)), max(1, round(rgba.shape[0] * scale)))
        # Premultiply before shrinking so transparent pixels' colour does not bleed in.
        alpha = rgba[..., 3:4].astype(np.float32) / 255.0
        premult = np.dstack([rgba[..., :3] * alpha, rgba[..., 3:4].astype(np.float32)])
        small = cv2.resize(premult, size, interpolation=cv2.INTER_AREA)
        a = small[..., 3:4]
        colour = np.where(a > 0, small[..., :3] * 255.0 / np.maximum(a, 1e-6), 0)
        rgba = np.clip(np.round(np.dstack([colour, a])), 0, 255).astype(np.uint8)
        anchors = anchors * [size[0] / image.shape[1], size[1] / image.shape[0]]
    return MaskTemplate.from_rgba(name, rgba, anchors)


def _split_variant(name: str) -> tuple[str, str]:
    for variant in ("left", "right"):
        if name.endswith(f"_{variant}"):
            return name[: -len(variant) - 1], variant
    return name, "front"


class TemplateLibrary:
    """Mask source of a MaskTheFace folder; templates are loaded on first use and cached."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.entries = read_masks_cfg(self.folder)
        self.variants: dict[str, dict[str, str]] = {}
        for section in self.entries:
            kind, variant = _split_variant(section)
            self.variants.setdefault(kind, {})[variant] = section
        self.kinds = tuple(k for k in self.variants if "front" in self.variants[k]) or tuple(
            self.variants
        )
        self.name = str(self.folder)
        self._cache: dict[str, MaskTemplate] = {}

    def template(self, section: str) -> MaskTemplate:
        """One template by its section name, e.g. ``surgical_blue_left``."""
        if section not in self._cache:
            path, anchors = self.entries[section]
            self._cache[section] = load_template(section, path, anchors)
        return self._cache[section]

    def get(self, kind: str, variant: str, rng: np.random.Generator | None = None):
        """The ``variant`` of ``kind``; the front one (or any) when that variant is missing."""
        options = self.variants[kind]
        section = options.get(variant) or options.get("front") or next(iter(options.values()))
        return self.template(section)
