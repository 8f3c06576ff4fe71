"""Named models: what ``--model NAME`` and ``FaceRecognizer.load()`` resolve to.

A model is named by a spec: a built-in name (``dlib``, ``dlib-resnet``: no file, no
training), the name of a model installed under the model home (``mfr model build`` installs
``mfr-masked`` there), or a path to a checkpoint (``.pt``) or an ONNX export (``.onnx``).

The model home is ``$MFR_HOME`` when set, else the user cache folder
(``platformdirs.user_cache_dir("mfr")``, e.g. ``~/.cache/mfr`` on Linux). An installed model
is a folder ``<home>/models/<name>/`` holding ``model.pt`` and ``model.json`` (its threshold,
operating point and provenance: data, steps, seed, commit, held-out figures).

With no spec, the default is the best installed model — ``mfr-masked`` when it is installed —
else the best model that needs no training, ``dlib-resnet`` (dlib's weights read through
mfr's fixed chip box: mfr2-dev Rank-1 79.7 against plain dlib's 74.3, docs/results.md).
Every resolution says which model it chose and why (``Resolved.note``).

Each model carries its verification threshold (cosine similarity of L2-normalised
embeddings; same person when above it) with its operating point named. Built-in thresholds
are constants measured once by ``benchmarks/builtin_thresholds.py`` (see ``BUILTIN``).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from mfr.errors import MfrError
from mfr.io import atomic_write

DEFAULT_NAME = "mfr-masked"  # what `mfr model build` installs, and the default once installed
FALLBACK = "dlib-resnet"  # the best model that needs no training
MODEL_FILE, RECORD_FILE = "model.pt", "model.json"

#: dlib's documented rule (dlib.net face_recognition.py): the same person when the Euclidean
#: distance of two raw descriptors is below 0.6. dlib's descriptors are not unit length: on
#: the 807 LFW photos of pairs.csv fold 1 (dlib's own pipeline) their length is 1.27-1.70
#: (5-95 %: 1.33-1.54), mean 1.43 (benchmarks/verify_lfw_pairs.py --model dlib --dlib-rule).
#: Two descriptors of that length are 0.6 apart exactly when their cosine similarity is
#: 1 - 0.6**2 / (2 L**2) = 0.912.
DLIB_DISTANCE = 0.6
DLIB_LENGTH = 1.43
DLIB_THRESHOLD = 1.0 - DLIB_DISTANCE**2 / (2 * DLIB_LENGTH**2)


@dataclass(frozen=True)
class Threshold:
    """A verification threshold (cosine similarity) and the operating point it was set at."""

    value: float
    operating_point: str
    #: decided by the Euclidean distance of the raw embeddings (below it: same), at their real
    #: lengths; ``value`` is the same rule at the typical length (for normalised embeddings)
    distance: float | None = None


BUILTIN: dict[str, Threshold] = {
    "dlib": Threshold(
        DLIB_THRESHOLD,
        f"dlib's rule: Euclidean distance < {DLIB_DISTANCE} between the raw descriptors, at "
        f"their real lengths (gallery scores: at dlib's mean length {DLIB_LENGTH})",
        distance=DLIB_DISTANCE,
    ),
    # dlib's weights, so dlib's documented rule. Not the best-accuracy threshold on held-out
    # masked-vs-full pairs (0.8817, 89.9 % on 2,640 pairs of 100 LFW/CelebA identities,
    # benchmarks/builtin_thresholds.py): masked pairs are less similar, and at that threshold
    # Colin Powell and Tony Blair's full faces (0.8992) are "the same person"
    "dlib-resnet": Threshold(
        DLIB_THRESHOLD,
        f"dlib's rule (the same weights): Euclidean distance < {DLIB_DISTANCE} between the raw "
        f"descriptors, at their real lengths (gallery scores: at the mean length {DLIB_LENGTH})",
        distance=DLIB_DISTANCE,
    ),
}


def model_home() -> Path:
    """``$MFR_HOME``, else the user cache folder for mfr."""
    value = os.environ.get("MFR_HOME")
    if value:
        return Path(value).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("mfr", appauthor=False))


@dataclass
class InstalledModel:
    """A model installed under the model home."""

    name: str
    folder: Path
    record: dict = field(default_factory=dict)

    @property
    def checkpoint(self) -> Path:
        return self.folder / MODEL_FILE

    @property
    def threshold(self) -> Threshold | None:
        value = self.record.get("threshold")
        if value is None:
            return None
        return Threshold(float(value), str(self.record.get("operating_point") or "unnamed"))


def _read_installed(folder: Path) -> InstalledModel | None:
    record_path, checkpoint = folder / RECORD_FILE, folder / MODEL_FILE
    if not (record_path.is_file() and checkpoint.is_file()):
        return None
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError) as error:
        raise MfrError(f"{record_path}: unreadable model record ({error})") from error
    return InstalledModel(folder.name, folder, record)


def installed_models() -> list[InstalledModel]:
    """Every complete model folder under the model home, by name."""
    root = model_home() / "models"
    if not root.is_dir():
        return []
    found = (_read_installed(p) for p in sorted(root.iterdir()) if p.is_dir())
    return [m for m in found if m is not None]


def find_installed(name: str) -> InstalledModel | None:
    folder = model_home() / "models" / name
    return _read_installed(folder) if folder.is_dir() else None


def valid_name(name: str) -> bool:
    return bool(name) and name not in BUILTIN and all(c.isalnum() or c in "-_." for c in name)


def install(name: str, checkpoint: str | Path, record: dict) -> InstalledModel:
    """Copy ``checkpoint`` and write ``record`` as the installed model ``name`` (atomically:
    a model is visible only once both files are complete)."""
    if not valid_name(name) or name.startswith("."):
        raise MfrError(f"{name!r}: a model name is letters, digits, '-', '_' or '.', not built-in")
    folder = model_home() / "models" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RECORD_FILE).unlink(missing_ok=True)  # not visible while the weights change
    with atomic_write(folder / MODEL_FILE, "wb") as handle, open(checkpoint, "rb") as source:
        shutil.copyfileobj(source, handle)
    with atomic_write(folder / RECORD_FILE, "w") as handle:
        json.dump(record, handle, indent=2)
    return InstalledModel(name, folder, record)


def set_threshold(name: str, threshold: float, operating_point: str) -> Path:
    """Replace an installed model's threshold (``mfr verify --calibrate``); returns its record."""
    model = find_installed(name)
    if model is None:
        raise MfrError(f"{name}: no such installed model")
    record = {**model.record, "threshold": float(threshold), "operating_point": operating_point}
    target = model.folder / RECORD_FILE
    with atomic_write(target, "w") as handle:
        json.dump(record, handle, indent=2)
    return target


@dataclass(frozen=True)
class Resolved:
    """What a model spec names: ``spec`` for the gallery and reports, ``source`` for the
    embedder loader (a built-in name or a file), its stored threshold, and ``note`` (which
    model, and why it was chosen)."""

    spec: str
    source: str
    threshold: Threshold | None
    note: str


def default_model() -> str:
    """The name the default resolves to now (``mfr-masked`` if installed, else the fallback)."""
    return DEFAULT_NAME if find_installed(DEFAULT_NAME) is not None else FALLBACK


def resolve(spec: str | Path | None = None) -> Resolved:
    """Resolve a spec (see the module docstring); None is the default model.

    Raises ``MfrError`` for a name that is neither built-in, installed nor an existing file.
    """
    if spec is None or str(spec) == "":
        name = default_model()
        if name == DEFAULT_NAME:
            why = f"default: the best installed model ({model_home() / 'models' / name})"
        else:
            why = (
                f"default: no {DEFAULT_NAME} installed (`mfr model build`), so the best model "
                "that needs no training: dlib's weights on mfr's aligned chip"
            )
        resolved = resolve(name)
        return Resolved(resolved.spec, resolved.source, resolved.threshold, why)
    spec = str(spec)
    if spec in BUILTIN:
        return Resolved(spec, spec, BUILTIN[spec], "built-in model")
    model = find_installed(spec) if valid_name(spec) and "/" not in spec else None
    if model is not None:
        return Resolved(spec, str(model.checkpoint), model.threshold, f"installed {model.folder}")
    path = Path(spec).expanduser()
    if path.is_file():
        return Resolved(str(path.resolve()), str(path.resolve()), None, "model file")
    names = ", ".join([*BUILTIN, *(m.name for m in installed_models())])
    raise MfrError(
        f"{spec}: no such model file or installed model (models: {names}; or give a .pt or "
        ".onnx file; `mfr model build` installs mfr-masked)"
    )
