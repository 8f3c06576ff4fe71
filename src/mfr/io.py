"""Every file mfr writes, and every text file it reads, goes through here.

Writing: :func:`atomic_write` writes a temp file beside the target, fsyncs it and
``os.replace``-s it over the target, so readers only ever see a complete old or new file.
Anything that stops the write (a read-only or full disk, an output path that is a folder, a
folder path that is a file) becomes one :class:`~mfr.errors.OutputError`
(``<path>: cannot write (<reason>)``) and leaves neither a half-written target nor a temp
file. Temp files are named ``.<name>.<pid>-<random>.tmp``; one left by a killed process (its
pid no longer runs) is removed by the next write of the same target, or by
:func:`remove_stale_temps` over a whole output folder. New files get the permissions
``0o666 & ~umask`` (like ``open``), a replaced file keeps its own.

Reading text: :func:`read_text` decodes strict UTF-8 (a byte-order mark is dropped); text in
another encoding is one :class:`~mfr.errors.MfrError` naming the file and the line.
File *names* that are not UTF-8 (Latin-1 names unzipped from an old archive) are kept as
Python does, with ``surrogateescape``; :func:`name_bytes` turns such a name back into the
bytes the file system holds (for hashing), and text written by :func:`atomic_write` writes
them back byte for byte.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from mfr.errors import MfrError, OutputError

#: ``.<name>.<pid>-<random>.tmp``: the temp files of :func:`atomic_write`.
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp$")
#: ``.<name>.<random8>.tmp``: temp files of earlier mfr versions (no pid recorded).
_LEGACY_TEMP = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")
#: A legacy temp file older than this cannot belong to a write still in progress.
LEGACY_TEMP_AGE_S = 3600.0


def _reason(error: OSError) -> str:
    if error.errno == errno.ENOSPC:
        return "no space left on the device"
    if error.errno == errno.EDQUOT:
        return "disk quota exceeded"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if error.errno == errno.EROFS:
        return "read-only file system"
    if error.errno == errno.ENOTDIR:
        return "a parent of the path is a file, not a folder"
    return (error.strerror or str(error) or type(error).__name__).lower()


def cannot_write(path: str | Path, error: OSError | str) -> OutputError:
    """The one error for an output that cannot be written."""
    reason = error if isinstance(error, str) else _reason(error)
    return OutputError(f"{path}: cannot write ({reason})")


def ensure_folder(folder: str | Path) -> Path:
    """Create ``folder`` (and its parents) if needed; :class:`OutputError` when it cannot be
    created or exists as something other than a folder."""
    folder = Path(folder)
    if folder.is_dir():
        return folder
    if folder.exists() or folder.is_symlink():
        raise cannot_write(folder, "it exists and is not a folder")
    for parent in reversed(folder.parents):
        if parent.exists() and not parent.is_dir():
            raise cannot_write(folder, f"{parent} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise cannot_write(folder, error) from None
    return folder


def check_writable(path: str | Path) -> Path:
    """Fail early (before hours of work) when the file ``path`` could not be written: its
    folder cannot be made or written to, or ``path`` is a folder. Leaves nothing behind
    except the folder."""
    path = Path(path)
    if path.is_dir():
        raise cannot_write(path, "it is an existing folder")
    ensure_folder(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-")
    except OSError as error:
        raise cannot_write(path, error) from None
    os.close(fd)
    os.unlink(tmp)
    return path


def current_umask() -> int:
    """The process umask (read from /proc where possible: setting it to read it is racy)."""
    status = Path("/proc/self/status")
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in status.read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _pid_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(temp: Path, name: str | None = None) -> bool:
    match = _TEMP.match(temp.name)
    if match:
        return (name is None or match["name"] == name) and not _pid_running(int(match["pid"]))
    match = _LEGACY_TEMP.match(temp.name)
    if match and (name is None or match["name"] == name):
        with contextlib.suppress(OSError):
            return time.time() - temp.lstat().st_mtime > LEGACY_TEMP_AGE_S
    return False


def remove_stale_temps(folder: str | Path, recursive: bool = True) -> int:
    """Delete the temp files that killed writes left in ``folder``; returns how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    candidates = folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")
    for temp in candidates:
        if _is_stale(temp):
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
                removed += 1
    return removed


def remove_stale_temps_of(path: str | Path) -> None:
    """Delete the temp files that killed writes of ``path`` left beside it."""
    path = Path(path)
    with contextlib.suppress(OSError):
        for temp in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
            if _is_stale(temp, path.name):
                with contextlib.suppress(FileNotFoundError):
                    temp.unlink()


def glob_escape(name: str) -> str:
    """``name`` with the glob characters ``*?[`` made literal."""
    return re.sub(r"([*?\[])", r"[\1]", name)


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb", fsync: bool = True) -> Iterator[IO]:
    """Open a temp file beside ``path``; on success it replaces ``path``, on error it is
    removed and an ``OSError`` of the write becomes :class:`OutputError`. Text modes write
    UTF-8 (names that are not UTF-8 byte for byte). ``fsync=False`` skips the flush to disk
    (for many small files whose progress is recorded elsewhere)."""
    path = Path(path)
    if path.is_dir():
        raise cannot_write(path, "it is an existing folder")
    ensure_folder(path.parent)
    remove_stale_temps_of(path)
    try:
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp"
        )
    except OSError as error:
        raise cannot_write(path, error) from None
    try:
        try:
            existing = os.stat(path).st_mode
        except OSError:
            os.fchmod(fd, 0o666 & ~current_umask())
        else:
            os.fchmod(fd, stat.S_IMODE(existing))
        text = {} if "b" in mode else {"encoding": "utf-8", "errors": "surrogateescape"}
        with os.fdopen(fd, mode, **text) as handle:
            yield handle
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OutputError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    except OSError as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if error.filename not in (None, tmp, str(path)):
            raise  # not the write: e.g. a source file read inside the block
        raise cannot_write(path, error) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_save_torch(obj, path: str | Path) -> None:
    """``torch.save`` through :func:`atomic_write`."""
    import torch

    with atomic_write(path, "wb") as handle:
        torch.save(obj, handle)


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path, "w") as handle:
        handle.write(text)


def append_text(path: str | Path, text: str) -> None:
    """Append ``text`` (UTF-8) to a log file such as ``metrics.jsonl`` (not atomic: a log
    grows; a torn last line is dropped on resume)."""
    path = Path(path)
    try:
        with open(path, "a", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(text)
    except OSError as error:
        raise cannot_write(path, error) from None


def read_text(path: str | Path, what: str = "file", names: bool = False) -> str:
    """The text of ``path``, decoded as strict UTF-8 (a byte-order mark is dropped).

    ``names=True`` is for mfr's own lists of file names (manifests): bytes that are not UTF-8
    are kept as Python keeps such file names (``surrogateescape``), so they name the same
    files. Raises :class:`MfrError`: ``<path>: <what> not found``, ``<path>: cannot read
    ...``, or ``<path>: line N: not UTF-8 text ...`` naming the first bad byte.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MfrError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise MfrError(f"{path}: is a folder, not a {what}") from None
    except OSError as error:
        raise MfrError(f"{path}: cannot read the {what} ({_reason(error)})") from None
    if names:
        return data.decode("utf-8-sig", "surrogateescape")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise MfrError(
            f"{path}: line {line}: not UTF-8 text (byte 0x{data[error.start]:02x} at column "
            f"{column}); save the {what} as UTF-8"
        ) from None


def name_bytes(text: str) -> bytes:
    """The bytes of a file name or path as the file system holds them (also for names that
    are not UTF-8, which Python keeps with ``surrogateescape``)."""
    return os.fsencode(text)


def display_name(text: str) -> str:
    """A name safe to print or store as UTF-8 text: bytes that are not UTF-8 shown as
    ``\\xNN``."""
    return os.fsencode(text).decode("utf-8", "backslashreplace")


def _escape_names(error: UnicodeError):
    """Codec error handler ``mfr-names``: a byte of a file name that is not UTF-8 (kept by
    ``surrogateescape``) prints as ``\\xNN``, anything else unencodable as ``\\uNNNN``."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    out = []
    for char in error.object[error.start : error.end]:
        code = ord(char)
        out.append(f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}")
    return "".join(out), error.end


codecs.register_error("mfr-names", _escape_names)


def printable_streams(*streams) -> None:
    """Make text streams print names that are not UTF-8 as ``\\xNN`` (valid text for a
    terminal or a program reading the output) instead of raising ``UnicodeEncodeError``."""
    for stream in streams:
        errors = getattr(stream, "errors", None)
        if errors in ("strict", "backslashreplace", "surrogateescape") and hasattr(
            stream, "reconfigure"
        ):
            stream.reconfigure(errors="mfr-names")
