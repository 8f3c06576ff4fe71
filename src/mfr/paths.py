"""Where mfr finds its data folder and its shipped configs, in a checkout and in a wheel.

- The data folder is one setting, ``MFR_DATA``; unset, it is ``../shared/data`` relative to
  the current working folder (from a checkout's root: ``shared/data`` beside the checkout).
  The default is read from the working folder, never from where mfr is installed, so it
  means the same in a checkout and in an installed wheel.
- The configs that mfr ships (``experiment-*.yaml``, ``demo.yaml``, ``model-masked.yaml``,
  the recognizer, segmenter, GAN and distillation examples) are package data in
  ``src/mfr/configs/``, read through :mod:`importlib.resources`, so an installed wheel finds
  them too.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

DEFAULT_DATA = Path("..") / "shared" / "data"  # relative to the current working folder


def data_root() -> Path:
    """The data folder (absolute): ``$MFR_DATA`` if set, else ``../shared/data`` from the
    current working folder."""
    value = os.environ.get("MFR_DATA")
    return Path(value).expanduser().resolve() if value else DEFAULT_DATA.resolve()


def config_dir() -> Path:
    """The folder of the configs shipped with mfr (``mfr/configs`` inside the package)."""
    return Path(str(files("mfr") / "configs"))


def config_path(name: str) -> Path:
    """The shipped config ``name`` (e.g. ``experiment-cpu.yaml``); it may not exist (the
    caller reports a missing file with its path)."""
    return config_dir() / name
