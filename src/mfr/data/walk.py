"""The folder walk now lives in :mod:`mfr.data.layout`; ``commands/gallery.py`` and
``commands/embed.py`` still import it from here until they import ``mfr.data.layout``."""

from mfr.data.layout import classify, walk_images

__all__ = ["classify", "walk_images"]
