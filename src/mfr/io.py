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
    folder could not be made or written to, or ``path`` is a folder. Creates nothing: a
    missing folder is made by the first write into it (so a command that fails later on a
    bad input leaves no empty output folder); the test writes a temp file into the nearest
    existing folder and removes it."""
    path = Path(path)
    if path.is_dir():
        raise cannot_write(path, "it is an existing folder")
    folder = path.parent
    while not folder.exists() and not folder.is_symlink() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        target = path.parent
        if folder == target:
            raise cannot_write(target, "it exists and is not a folder")
        raise cannot_write(target, f"{folder} is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.{os.getpid()}-")
    except OSError as error:
        raise cannot_write(path, error) from None
    os.close(fd)
    os.unlink(tmp)
    return path


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_separate_folders(
    src: str | Path, dst: str | Path, src_what: str = "input", dst_what: str = "output"
) -> None:
    """Refuse an output folder that is the input folder, lies inside it, or holds it: a
    re-run (or the same run) would read its own output as input (e.g. align a sub-folder
    ``sub`` of aligned faces as a new identity). ``src`` may be a file (a manifest, one
    image) names what is read, so only its own folder is refused as the output (the output's
    files could overwrite it). Symlinks are resolved. Raises :class:`MfrError`
    ``<dst>: the output folder ... the input folder <src> ...``."""
    src, dst = Path(src), Path(dst)
    root = src if src.is_dir() else src.parent
    inner, outer = dst.resolve(), root.resolve()
    if inner == outer:
        problem = f"is the {src_what} folder"
    elif not src.is_dir():
        return
    elif _within(inner, outer):
        problem = f"is inside the {src_what} folder {root}"
    elif _within(outer, inner):
        problem = f"holds the {src_what} folder {root}"
    else:
        return
    raise MfrError(
        f"{dst}: the {dst_what} folder {problem}; a run would read its own output as input, "
        f"so choose a {dst_what} folder outside {root}"
    )


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
def atomic_write(
    path: str | Path, mode: str = "wb", fsync: bool = True, clean: bool = True
) -> Iterator[IO]:
    """Open a temp file beside ``path``; on success it replaces ``path``, on error it is
    removed and an ``OSError`` of the write becomes :class:`OutputError`. Text modes write
    UTF-8 (names that are not UTF-8 byte for byte). ``fsync=False`` skips the flush to disk
    (for many small files whose progress is recorded elsewhere); ``clean=False`` skips the
    search for stale temps of ``path`` (a scan of its folder: for jobs that removed them
    once at the start)."""
    path = Path(path)
    if path.is_dir():
        raise cannot_write(path, "it is an existing folder")
    ensure_folder(path.parent)
    if clean:
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
    except (FileNotFoundError, IsADirectoryError):
        raise missing_file(path, what) from None
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


def missing_file(
    path: str | Path, what: str = "file", hint: str | None = None, cls: type = MfrError
) -> MfrError:
    """The error (of class ``cls``) for an input file that is not there, in words that say
    why: ``<path>: is a folder, not a <what>``, ``<path>: is a broken link (to <target>,
    which does not exist)`` or ``<path>: <what> not found (<hint>)``."""
    path = Path(path)
    if path.is_dir():
        article = "an" if what[:1].lower() in "aeiou" else "a"
        return cls(f"{path}: is a folder, not {article} {what}")
    if path.is_symlink() and not path.exists():
        try:
            target = os.readlink(path)
        except OSError:
            return cls(f"{path}: is a broken link")
        return cls(f"{path}: is a broken link (to {target}, which does not exist)")
    return cls(f"{path}: {what} not found" + (f" ({hint})" if hint else ""))


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


# ----------------------------------------------------------------------------- interrupts

_interrupt_note = None


def on_interrupt(note) -> None:
    """What the ``mfr`` command says if the user interrupts it (Ctrl-C) from now on:
    ``note`` is text or a function returning text, called at the interrupt (so it can say
    whether progress was saved), e.g. ``"progress saved in OUT.partial.npz; run the same
    command again to resume"``. The command line prints ``mfr: interrupted; <note>`` and
    exits 130; without a note it says that no output was half-written. ``None`` clears it."""
    global _interrupt_note
    _interrupt_note = note


def worker_initializer(init, *args) -> None:
    """A process pool's initializer: the worker ignores Ctrl-C (the terminal sends it to every
    process of the group; the main process alone reports it and stops the pool, instead of
    each worker printing a traceback), then runs ``init(*args)``. Use as
    ``Pool(n, initializer=worker_initializer, initargs=(init, *args))``."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if init is not None:
        init(*args)


def interrupt_note() -> str:
    """The note :func:`on_interrupt` set, evaluated now (a generic one when none was set)."""
    note = _interrupt_note
    if callable(note):
        try:
            note = note()
        except Exception:  # a note must never hide the interrupt itself
            note = None
    return note or "no output is half-written (every file is written whole or not at all)"


def resume_note(progress: str | Path, done: bool | None = None) -> str:
    """``progress saved in <progress>; run the same command again to resume`` when
    ``done`` (default: ``progress`` exists), else ``nothing written``."""
    done = Path(progress).exists() if done is None else done
    if done:
        return f"progress saved in {progress}; run the same command again to resume"
    return "nothing written yet"


# ----------------------------------------------------------------------------- file kinds

_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "a JPEG image"),
    (b"\x89PNG\r\n\x1a\n", 0, "a PNG image"),
    (b"GIF8", 0, "a GIF image"),
    (b"WEBP", 8, "a WebP image"),
    (b"BM", 0, "a BMP image"),
    (b"II*\x00", 0, "a TIFF image"),
    (b"MM\x00*", 0, "a TIFF image"),
    (b"ftypavif", 4, "an AVIF image"),
    (b"ftypheic", 4, "a HEIC image"),
    (b"ftyp", 4, "a video or HEIF file"),
    (b"%PDF", 0, "a PDF document"),
    (b"\x93NUMPY", 0, "a NumPy .npy array"),
    (b"\x1f\x8b", 0, "a gzip archive"),
    (b"\x80", 0, "a Python pickle"),
    (b"\x08", 0, "an ONNX model"),
)


def file_kind(path: str | Path) -> str:
    """What ``path`` holds, judged by its first bytes (never by its name): ``"a NumPy .npz
    archive"``, ``"a PyTorch checkpoint"``, ``"a zip archive"``, one of the kinds in
    ``_MAGIC`` (``"a JPEG image"``...), ``"text"``, ``"an empty file"`` or ``"binary data"``.
    For messages such as ``x.jpg: not a gallery (.npz) file (it is a JPEG image)``; an
    unreadable file is ``"unreadable"``."""
    import zipfile

    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError:
        return "unreadable"
    if not head:
        return "an empty file"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (OSError, zipfile.BadZipFile, EOFError):
            return "a damaged zip archive"
        if any(name.endswith("data.pkl") for name in names):
            return "a PyTorch checkpoint"
        if names and all(name.endswith(".npy") for name in names):
            return "a NumPy .npz archive"
        return "a zip archive"
    for magic, offset, kind in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return kind
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 4:  # not just a character cut at the 512th byte
            return "binary data"
    return "text"


def not_a(path: str | Path, what: str, kind: str | None = None, cls: type = MfrError) -> MfrError:
    """``<path>: not <what> (it is <kind>)``: the one error (of class ``cls``) for a file of
    the wrong kind (never advice to load it unsafely)."""
    kind = file_kind(path) if kind is None else kind
    return cls(f"{path}: not {what} (it is {kind})")


#: What a file written by ``torch.save`` looks like to :func:`file_kind` (current zip
#: format; the legacy format is a pickle stream).
TORCH_KINDS = ("a PyTorch checkpoint", "a Python pickle")


def load_torch(path: str | Path, what: str = "an mfr checkpoint (.pt)", cls: type | None = None):
    """``torch.load(path, map_location="cpu", weights_only=True)``: tensors and plain values
    only, never arbitrary objects. A file that is not a torch file by its first bytes (a
    photo, an .npz, text) is ``<path>: not <what> (it is a JPEG image)``; one the safe loader
    refuses or cannot parse is ``<path>: not a readable <what> (<reason>)``, never torch's
    advice to load it unsafely. Raises ``cls`` (default
    :class:`~mfr.errors.CheckpointError`)."""
    import torch

    from mfr.errors import CheckpointError

    cls = cls or CheckpointError
    path = Path(path)
    if not path.is_file():
        raise missing_file(path, "checkpoint", cls=cls)
    kind = file_kind(path)
    if kind not in TORCH_KINDS:
        raise not_a(path, what, kind, cls)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged or foreign file
        text = str(error)
        if "weights_only" in text or "Unsupported global" in text:
            reason = "it holds Python objects besides tensors and plain values; mfr loads none"
        else:
            lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
            reason = lines[0] if lines else type(error).__name__
        raise cls(f"{path}: not a readable {what.removeprefix('an ').removeprefix('a ')} "
                  f"({reason})") from None  # fmt: skip


def parse_yaml(text: str, where: str | Path):
    """``yaml.safe_load(text)``; a syntax error is one line ``<where>: line L, column C:
    <problem>`` (:class:`~mfr.errors.ConfigError`) instead of the parser's multi-line
    report."""
    import yaml

    from mfr.errors import ConfigError

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        problem = getattr(error, "problem", None) or getattr(error, "context", None)
        problem = " ".join(str(problem or error).split())
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ConfigError(f"{where}: {at}not valid YAML ({problem})") from None


def load_yaml(path: str | Path, what: str = "config file"):
    """The YAML document in ``path`` (strict UTF-8 via :func:`read_text`); errors as in
    :func:`parse_yaml` and :func:`read_text`."""
    return parse_yaml(read_text(path, what), path)
