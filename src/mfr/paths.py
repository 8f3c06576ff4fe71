"""Where mfr finds the shared data: one setting, ``MFR_DATA`` (default ``../shared/data``)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def data_root() -> Path:
    """Return the data folder: ``$MFR_DATA`` if set, else ``../shared/data`` beside the repo."""
    value = os.environ.get("MFR_DATA")
    return Path(value).expanduser().resolve() if value else DEFAULT_DATA
