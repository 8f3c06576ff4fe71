"""The landmarks sidecar of an aligned dataset: ``ROOT/landmarks.npz``.

One file per dataset holds ``paths`` (str, relative to ROOT, POSIX separators) and
``landmarks`` (float32, N x 68 x 2, x/y pixel coordinates in the aligned image), plus
``size`` (the aligned image side). Downstream steps read landmarks here and never re-detect.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from mfr.errors import MfrError
from mfr.io import atomic_write

SIDECAR = "landmarks.npz"


def save_landmarks(root: str | Path, landmarks: dict[str, np.ndarray], size: int) -> Path:
    """Write the sidecar atomically; ``landmarks`` maps relative path -> (68, 2) array."""
    root = Path(root)
    paths = sorted(landmarks)
    array = (
        np.stack([np.asarray(landmarks[p], dtype=np.float32) for p in paths])
        if paths
        else np.zeros((0, 68, 2), np.float32)
    )
    target = root / SIDECAR
    with atomic_write(target, "wb") as handle:
        np.savez(handle, paths=np.array(paths, dtype=str), landmarks=array, size=np.int32(size))
    return target


def load_landmarks(root: str | Path) -> tuple[dict[str, np.ndarray], int]:
    """Read the sidecar: (relative path -> (68, 2) float32 array, aligned image size)."""
    target = Path(root) / SIDECAR
    if not target.is_file():
        raise MfrError(f"{target}: no landmarks sidecar; run `mfr align` to make one")
    from mfr.io import file_kind, not_a

    kind = file_kind(target)
    if kind not in ("a NumPy .npz archive", "a damaged zip archive"):  # no pickle to np.load
        raise not_a(target, "a landmarks sidecar (.npz)", kind)
    try:
        with np.load(target, allow_pickle=False) as data:
            paths, array, size = data["paths"], data["landmarks"], int(data["size"])
    except Exception as error:
        raise MfrError(f"{target}: unreadable landmarks sidecar ({error})") from error
    if array.ndim != 3 or array.shape[1:] != (68, 2) or len(paths) != len(array):
        raise MfrError(f"{target}: landmarks must be N x 68 x 2, got {array.shape}")
    if size < 1:
        raise MfrError(f"{target}: aligned image size must be positive, got {size}")
    for i, path in enumerate(paths.tolist()):
        problem = _path_problem(str(path))
        if problem:
            raise MfrError(f"{target}: entry {i} {str(path)!r}: {problem}")
    return {str(p): array[i] for i, p in enumerate(paths)}, size


def _path_problem(path: str) -> str | None:
    """Why a sidecar path could reach outside its dataset folder (None when it cannot)."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute():
        return "paths must be relative to the dataset folder"
    if any(part in ("..", ".", "") for part in path.split("/")):
        return "paths must not hold '..', '.' or empty parts"
    return None
