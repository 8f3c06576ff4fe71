"""User-facing errors: one plain message naming the file and the problem."""

from __future__ import annotations


class MfrError(Exception):
    """An error the CLI prints as one line (no traceback) and exits with status 2."""


class BadImageError(MfrError):
    """An image file that cannot be decoded; the message names the file and the reason."""


class ConfigError(MfrError):
    """A config with unknown keys, wrong types or impossible values."""


class CheckpointError(MfrError):
    """A checkpoint that is missing, corrupt or of another model."""


class OutputError(MfrError, OSError):
    """An output that cannot be written: ``<path>: cannot write (<reason>)``. Also an
    ``OSError``, which it is."""
