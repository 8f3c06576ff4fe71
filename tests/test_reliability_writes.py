"""Every command that writes, against outputs that cannot be written (issue 18, faults 1-3).

Three ways an output cannot be written, each of which works when the tests run as root
(chmod does not stop root):

- ``file``: the output lies under an existing regular file (``blocker/sub/OUT``);
- ``read-only``: a read-only folder, simulated at the OS level: creating, writing, renaming or
  deleting anything in it raises ``PermissionError`` (EACCES), as the kernel does;
- ``full``: a full disk: every write to a file in the output folder raises ``OSError``
  (ENOSPC), as the kernel does.

Each must end in one line ``mfr: error: <path>: cannot write (<reason>)``, exit 2, and leave
every file as it was: nothing half-written, no temp file.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import io
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from _train_data import make_dataset as make_train_dataset
from _train_data import tiny_overrides
from gallery_helpers import face_like, run_mfr, tiny_onnx, write_png

from mfr.io import atomic_write, remove_stale_temps

# ----------------------------------------------------------------------------- the world


def _identities(root: Path, rng, identities: int = 3) -> Path:
    """ROOT/id<i>/<n>.png (2 full faces) and ROOT/id<i>/masked/0.png, 112 px crops."""
    for i in range(identities):
        for n in range(2):
            write_png(root / f"id{i}" / f"{n}.png", face_like(rng, i))
        image = face_like(rng, i)
        image[60:] = (90, 140, 200)
        write_png(root / f"id{i}" / "masked" / "0.png", image)
    return root


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Inputs for every writing command, made once: a dataset, a tiny ONNX model, its
    embeddings, a gallery, a checkpoint, training data and an aligned dataset (real face)."""
    from _masking_faces import grace_hopper_path

    from mfr.align.batch import align_folder
    from mfr.api import FaceRecognizer
    from mfr.eval.embeddings import save_embeddings
    from mfr.nets.backbones import build_backbone
    from mfr.train.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("world")
    rng = np.random.default_rng(0)
    w = {"root": root, "data": _identities(root / "data", rng)}
    w["model"] = tiny_onnx(root / "tiny.onnx", threshold=0.5)
    recognizer = FaceRecognizer.load(w["model"])
    paths = sorted(w["data"].rglob("*.png"))
    w["emb"] = root / "emb.npz"
    save_embeddings(
        w["emb"],
        recognizer.embed(paths),
        np.array([p.relative_to(w["data"]).parts[0] for p in paths]),
        np.array([int("masked" in p.parts) for p in paths], np.uint8),
        np.array([str(p) for p in paths]),
    )
    w["pairs"] = root / "pairs.csv"  # 10 folds' worth: each probe with each full face
    rows = [(a, b, int(paths[a].parts[-3] == paths[b].parts[-2]))
            for a in range(len(paths)) if "masked" in paths[a].parts
            for b in range(len(paths)) if "masked" not in paths[b].parts]  # fmt: skip
    w["pairs"].write_text("a,b,same\n" + "".join(f"{a},{b},{s}\n" for a, b, s in rows))
    code, _, err = _run(None, "enroll", root / "g.npz", w["data"], "--model", w["model"])
    assert code == 0, err
    w["gallery"] = root / "g.npz"
    torch_net = build_backbone("resnet_tiny", embedding_dim=8, input_size=16).eval()
    w["ckpt"] = root / "m.pt"
    save_checkpoint(w["ckpt"], backbone="resnet_tiny", embedding_dim=8, input_size=16,
                    head=torch_net.head_name, model=torch_net.state_dict(), loss="softmax",
                    step=0)  # fmt: skip
    w["train"] = make_train_dataset(root / "train", identities=3, per_identity=4, masked=0)
    w["mfr2"] = root / "mfr2"  # the benchmark pairs `mfr data pairs` converts
    w["mfr2"].mkdir()
    (w["mfr2"] / "pairs.txt").write_text("Ann 1 2\nAnn 1 Bob 1\n")
    w["mfr2_emb"] = root / "mfr2.npz"
    names = ["Ann/Ann_0001.png", "Ann/Ann_0002.png", "Bob/Bob_0001.png"]
    np.savez(w["mfr2_emb"], embeddings=np.ones((3, 4), np.float32),
             identities=np.array(["Ann", "Ann", "Bob"]), domains=np.array([1, 0, 0], np.uint8),
             paths=np.array(names))  # fmt: skip
    w["photos"] = root / "photos"
    (w["photos"] / "Grace").mkdir(parents=True)
    shutil.copy(grace_hopper_path(), w["photos"] / "Grace" / "1.jpg")
    w["aligned"] = root / "aligned"
    align_folder(w["photos"], w["aligned"], workers=1, progress=False)
    assert (w["aligned"] / "landmarks.npz").is_file()
    return w


def _run(capsys, *args):
    """``mfr ARGS`` in-process (capsys may be None: output not captured)."""
    if capsys is not None:
        return run_mfr(capsys, *args)
    from mfr.cli import main

    return main([str(a) for a in args]), "", ""


# ----------------------------------------------------------------------------- faults


def _inside(path, folder: str) -> bool:
    try:
        text = os.path.abspath(os.fsdecode(path))
    except TypeError:
        return False  # a file descriptor
    return text == folder or text.startswith(folder + os.sep)


def _writes(mode: str) -> bool:
    return any(flag in mode for flag in "wax+")


@contextlib.contextmanager
def read_only(monkeypatch, folder: Path):
    """What a read-only folder does (for root too): nothing in it can be created, opened
    for writing, renamed or deleted; EACCES."""
    folder = os.path.abspath(folder)

    def deny(path):
        return PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))

    real_open, real_mkdir = os.open, os.mkdir
    real_replace, real_rename, real_unlink = os.replace, os.rename, os.unlink
    real_builtin_open = builtins.open
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def os_open(path, flags, mode=0o777, *, dir_fd=None):
        if flags & write_flags and _inside(path, folder):
            raise deny(path)
        return real_open(path, flags, mode, dir_fd=dir_fd)

    def mkdir(path, mode=0o777, *, dir_fd=None):
        if _inside(path, folder):
            if os.path.exists(path):
                raise FileExistsError(errno.EEXIST, "File exists", os.fsdecode(path))
            raise deny(path)
        return real_mkdir(path, mode, dir_fd=dir_fd)

    def replace(src, dst, **kw):
        if _inside(dst, folder) or _inside(src, folder):
            raise deny(dst)
        return real_replace(src, dst, **kw)

    def rename(src, dst, **kw):
        if _inside(dst, folder) or _inside(src, folder):
            raise deny(dst)
        return real_rename(src, dst, **kw)

    def unlink(path, **kw):
        if _inside(path, folder):
            raise deny(path)
        return real_unlink(path, **kw)

    def opener(file, mode="r", *args, **kwargs):
        if _writes(mode) and _inside(file, folder):
            raise deny(file)
        return real_builtin_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "unlink", unlink)
    monkeypatch.setattr(builtins, "open", opener)
    monkeypatch.setattr(io, "open", opener)
    yield
    monkeypatch.undo()


class _FullDiskFile:
    """A writable file on a full disk: every write fails with ENOSPC."""

    def __init__(self, handle):
        self._handle = handle

    def write(self, *_):
        raise OSError(errno.ENOSPC, "No space left on device")

    writelines = write

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()

    def __iter__(self):
        return iter(self._handle)


@contextlib.contextmanager
def full_disk(monkeypatch, folder: Path):
    """A full disk under ``folder``: files can be created (inodes are left) but no byte can
    be written to them; ENOSPC."""
    folder = os.path.abspath(folder)
    real_fdopen, real_builtin_open = os.fdopen, builtins.open

    def fdopen(fd, mode="r", *args, **kwargs):
        handle = real_fdopen(fd, mode, *args, **kwargs)
        where = os.readlink(f"/proc/self/fd/{fd}")
        return _FullDiskFile(handle) if _writes(mode) and _inside(where, folder) else handle

    def opener(file, mode="r", *args, **kwargs):
        handle = real_builtin_open(file, mode, *args, **kwargs)
        return _FullDiskFile(handle) if _writes(mode) and _inside(file, folder) else handle

    monkeypatch.setattr(os, "fdopen", fdopen)
    monkeypatch.setattr(builtins, "open", opener)
    monkeypatch.setattr(io, "open", opener)
    yield
    monkeypatch.undo()


def _snapshot(root: Path) -> dict[str, tuple]:
    """Every file under ``root`` with its mode and content hash (lock files left out)."""
    out = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.name.endswith(".lock"):
            data = path.read_bytes()
            out[str(path)] = (stat.S_IMODE(path.stat().st_mode), hashlib.sha1(data).hexdigest())
    return out


# ----------------------------------------------------------------------------- commands

#: name -> (argv from (world, OUT folder), needs files already in OUT). Every command that writes.
COMMANDS = {
    "align": (lambda w, o: ["align", w["photos"], o / "al", "--workers", "1", "-q"], False),
    "mask": (lambda w, o: ["mask", w["aligned"], o / "m", "--quiet"], False),
    "embed": (
        lambda w, o: ["embed", w["data"], "--model", w["model"], "--out", o / "e.npz", "--aligned"],
        False,
    ),  # fmt: skip
    "eval --json": (lambda w, o: ["eval", w["emb"], "--json", o / "r.json"], False),
    "eval --plots": (
        lambda w, o: ["eval", w["emb"], "--plots", o / "plots", "--pairs", w["pairs"]],
        False,
    ),  # fmt: skip
    "enroll": (lambda w, o: ["enroll", o / "g.npz", w["data"], "--model", w["model"]], False),
    "gallery remove": (lambda w, o: ["gallery", "remove", o / "g.npz", "id0"], True),
    "gallery rename": (lambda w, o: ["gallery", "rename", o / "g.npz", "id0", "Ann"], True),
    "train": (
        lambda w, o: [
            "train",
            *sum((["--set", s] for s in tiny_overrides(w["train"], steps=2)), []),
            "--out",
            o / "run",
        ],
        False,
    ),  # fmt: skip
    "export": (lambda w, o: ["export", w["ckpt"], "--onnx", o / "m.onnx"], False),
    "data pairs": (
        lambda w, o: [
            "data",
            "pairs",
            "mfr2",
            w["mfr2_emb"],
            "--root",
            w["mfr2"],
            "--out",
            o / "p.csv",
        ],
        False,
    ),  # fmt: skip
    "verify --calibrate": (
        lambda w, o: ["verify", "--calibrate", w["emb"], "--model", o / "tiny.onnx"],
        True,
    ),  # fmt: skip
}


def _stage(world, out: Path, command: str) -> None:
    """Put what the command edits in place (a gallery, a model) into OUT."""
    out.mkdir(parents=True, exist_ok=True)
    if command.startswith("gallery"):
        shutil.copy(world["gallery"], out / "g.npz")
    if command.startswith("verify"):
        shutil.copy(world["model"], out / "tiny.onnx")


def _check_one_line(err: str, folder: Path, reason: str) -> None:
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"mfr: error: {folder}"), err
    assert f": cannot write ({reason}" in last, err


def _no_temps(root: Path) -> None:
    assert not [p for p in root.rglob("*.tmp")], "temp files left behind"


@pytest.mark.parametrize("command", [c for c, (_, staged) in COMMANDS.items() if not staged])
def test_every_writing_command_with_its_output_under_a_file_is_one_cannot_write_line(
    world, tmp_path, capsys, command
):
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file, not a folder")
    before = _snapshot(world["root"]) | _snapshot(tmp_path)
    code, _, err = _run(capsys, *COMMANDS[command][0](world, blocker / "sub"))
    assert code == 2
    _check_one_line(err, blocker, f"{blocker} is a file, not a folder)")
    assert _snapshot(world["root"]) | _snapshot(tmp_path) == before
    _no_temps(world["root"])


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_writing_command_against_a_read_only_folder_is_one_cannot_write_line(
    world, tmp_path, capsys, monkeypatch, command
):
    out = tmp_path / "ro"
    _stage(world, out, command)
    before = _snapshot(world["root"]) | _snapshot(tmp_path)
    with read_only(monkeypatch, out):
        code, _, err = _run(capsys, *COMMANDS[command][0](world, out))
    assert code == 2
    _check_one_line(err, out, "permission denied")
    assert _snapshot(world["root"]) | _snapshot(tmp_path) == before
    _no_temps(tmp_path)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_writing_command_on_a_full_disk_is_one_cannot_write_line_and_writes_nothing(
    world, tmp_path, capsys, monkeypatch, command
):
    out = tmp_path / "full"
    _stage(world, out, command)
    before = _snapshot(world["root"]) | _snapshot(tmp_path)
    with full_disk(monkeypatch, out):
        code, _, err = _run(capsys, *COMMANDS[command][0](world, out))
    assert code == 2
    _check_one_line(err, out, "no space left on the device")
    assert _snapshot(world["root"]) | _snapshot(tmp_path) == before
    _no_temps(tmp_path)


def test_an_output_file_that_is_an_existing_folder_is_one_cannot_write_line(
    world, tmp_path, capsys
):
    for argv in (
        ["embed", world["data"], "--model", world["model"], "--out", tmp_path, "--aligned"],
        ["eval", world["emb"], "--json", tmp_path],
        ["export", world["ckpt"], "--onnx", tmp_path],
        ["enroll", tmp_path, world["data"], "--model", world["model"]],
    ):
        code, _, err = _run(capsys, *argv)
        assert code == 2, argv
        assert err.strip() == f"mfr: error: {tmp_path}: cannot write (it is an existing folder)"


def test_a_folder_output_that_is_an_existing_file_is_one_cannot_write_line(world, tmp_path, capsys):
    target = tmp_path / "out"
    target.write_text("keep me")
    for argv in (
        ["align", world["photos"], target, "--workers", "1", "-q"],
        ["mask", world["aligned"], target, "--quiet"],
        ["eval", world["emb"], "--plots", target],
        [
            "train",
            *sum((["--set", s] for s in tiny_overrides(world["train"])), []),
            "--out",
            target,
        ],  # fmt: skip
    ):
        code, _, err = _run(capsys, *argv)
        assert code == 2, argv
        assert err.strip().splitlines()[-1].startswith(f"mfr: error: {target}"), err
        assert "cannot write (" in err and "Traceback" not in err
        assert target.read_text() == "keep me"


# ----------------------------------------------------------------------------- temp files


def _killed_mid_write(target: Path) -> Path:
    """Start a process that writes ``target`` through the atomic writer and kill -9 it
    mid-write; return the temp file it left."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from mfr.io import atomic_write
        with atomic_write({str(target)!r}, "wb") as handle:
            handle.write(b"x" * 1000)
            handle.flush()
            print("writing", flush=True)
            time.sleep(60)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert process.stdout.readline().strip() == b"writing"
    process.send_signal(signal.SIGKILL)
    process.wait()
    temps = list(target.parent.glob(f".{target.name}.*.tmp"))
    assert len(temps) == 1
    return temps[0]


def test_an_atomic_write_removes_stale_temps_of_its_file_unless_told_not_to(tmp_path):
    target = tmp_path / "face.png"
    stale = _killed_mid_write(target)
    with atomic_write(target, "wb", clean=False) as handle:  # a job that cleaned at start
        handle.write(b"1")
    assert stale.exists() and target.read_bytes() == b"1"
    with atomic_write(target, "wb") as handle:
        handle.write(b"2")
    assert not stale.exists() and target.read_bytes() == b"2"


def test_a_temp_file_left_by_a_killed_enrol_is_removed_by_the_next_enrol(world, tmp_path, capsys):
    gallery = tmp_path / "g.npz"
    shutil.copy(world["gallery"], gallery)
    stale = _killed_mid_write(gallery)
    code, out, err = _run(capsys, "enroll", gallery, world["data"])
    assert code == 0 and "nothing new" in out, err  # even a run that writes nothing
    assert not stale.exists() and [p.name for p in tmp_path.iterdir()] == ["g.npz"]


def test_a_temp_file_of_a_running_writer_is_left_alone(tmp_path):
    target = tmp_path / "x.bin"
    with atomic_write(target) as handle:  # this process is alive: its temp is in use
        handle.write(b"1")
        assert remove_stale_temps(tmp_path) == 0
        assert len(list(tmp_path.glob(".x.bin.*.tmp"))) == 1
    assert target.read_bytes() == b"1" and remove_stale_temps(tmp_path) == 0


def test_mask_and_train_remove_the_temps_of_a_killed_run(world, tmp_path, capsys):
    masked = tmp_path / "m"
    code, _, err = _run(capsys, "mask", world["aligned"], masked, "--quiet")
    assert code == 0, err
    twin = next(masked.glob("*/masked/*.png"))
    twin.unlink()  # the image the killed run was writing
    stale = _killed_mid_write(twin)
    legacy = twin.parent / f".{twin.name}.abcd1234.tmp"  # an earlier mfr's name, hours old
    legacy.write_bytes(b"x")
    os.utime(legacy, (0, 0))
    code, _, err = _run(capsys, "mask", world["aligned"], masked, "--quiet")
    assert code == 0, err
    assert twin.is_file() and not stale.exists() and not legacy.exists()

    run = tmp_path / "run"
    run.mkdir()
    stale = _killed_mid_write(run / "last.pt")
    overrides = sum((["--set", s] for s in tiny_overrides(world["train"], steps=2)), [])
    code, _, err = _run(capsys, "train", *overrides, "--out", run)
    assert code == 0, err
    assert not stale.exists() and not list(run.rglob("*.tmp"))


# ----------------------------------------------------------------------------- modes


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_writes_get_the_mode_the_umask_gives_and_keep_a_replaced_files_mode(tmp_path, umask):
    old = os.umask(umask)
    try:
        with atomic_write(tmp_path / "new.txt", "w") as handle:
            handle.write("x")
        plain = tmp_path / "plain.txt"
        plain.write_text("x")  # what open() gives under this umask
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "new.txt").stat().st_mode)
    assert mode == 0o666 & ~umask == stat.S_IMODE(plain.stat().st_mode)
    os.chmod(tmp_path / "new.txt", 0o640)
    with atomic_write(tmp_path / "new.txt", "w") as handle:
        handle.write("y")
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o640


def test_a_gallery_written_by_enroll_is_readable_by_the_group_under_umask_022(
    world, tmp_path, capsys
):
    old = os.umask(0o022)
    try:
        code, _, err = _run(capsys, "enroll", tmp_path / "g.npz", world["data"], "--model",
                            world["model"])  # fmt: skip
    finally:
        os.umask(old)
    assert code == 0, err
    assert stat.S_IMODE((tmp_path / "g.npz").stat().st_mode) == 0o644
