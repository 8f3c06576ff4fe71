"""The verification threshold stored with a model, and its calibration.

Two faces are judged the same person when the cosine similarity of their embeddings is
greater than the threshold. Where it is kept:

- an mfr checkpoint (``.pt``): its ``threshold`` key;
- an ONNX export or a built-in model: a sidecar JSON, ``<model>.threshold.json`` beside the
  ``.onnx`` file, ``<model home>/dlib.threshold.json`` for dlib (the model home is
  ``mfr.embedders.registry.model_home()``). An ONNX export also carries the checkpoint's
  threshold in its metadata (the sidecar wins).
- an installed model (``mfr model build``): its ``model.json`` (and its checkpoint's key).

Without a calibration of their own, the built-in models use the thresholds in
``mfr.embedders.registry.BUILTIN`` (dlib: dlib's documented distance rule at its descriptors'
real length).

Calibration picks, on pairs of an embeddings file made with the same model, the threshold
``mfr eval`` would pick for one fold (``mfr.eval.verification.best_threshold``: the accuracy-
maximising midpoint between consecutive distinct similarities, ties to the lowest), applied
to all pairs at once. Without a pairs file the pairs are every matched (masked, full) pair
and as many unmatched ones drawn with a fixed seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mfr.errors import MfrError
from mfr.io import atomic_write


def check_threshold(value, where: str = "threshold") -> float:
    """``value`` as a float when it is a cosine similarity in [-1, 1]; else ``MfrError``
    ``<where> <value>: ...``. A threshold outside the range (or NaN, with which every
    comparison is false) would decide every pair the same way without a word."""
    import math

    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or not -1.0 <= number <= 1.0:
        raise MfrError(
            f"{where} {value!r}: a threshold is a cosine similarity, a number in [-1, 1] "
            "(pairs above it are the same person)"
        )
    return number


def sidecar_path(spec: str) -> Path:
    """Where the threshold of a dlib or ONNX model is kept."""
    from mfr.embedders import BUILTIN_MODELS
    from mfr.embedders.registry import model_home

    if spec in BUILTIN_MODELS:
        return model_home() / f"{spec}.threshold.json"
    return Path(spec).with_suffix(".threshold.json")


def read_sidecar(spec: str, fingerprint: str) -> tuple[float, str] | None:
    """``(threshold, operating point)`` from the sidecar when it was calibrated for these
    weights, else None."""
    path = sidecar_path(spec)
    if not path.is_file():
        return None
    from mfr.io import read_text

    text = read_text(path, "threshold file")
    try:
        record = json.loads(text)
        value = record["threshold"]
    except Exception as error:
        raise MfrError(f"{path}: unreadable threshold file ({error})") from error
    threshold = check_threshold(value, f"{path}: threshold")
    if record.get("fingerprint") != fingerprint:
        return None
    return threshold, operating_point(record)


def operating_point(record: dict) -> str:
    """How a calibration record's threshold was chosen, in words."""
    accuracy = record.get("accuracy")
    where = f" of {record['source']}" if record.get("source") else ""
    if accuracy is None:
        return f"calibrated with `mfr verify --calibrate`{where}"
    return (
        f"best accuracy ({100 * float(accuracy):.2f} %) on {record.get('num_pairs', '?')} "
        f"pairs{where}"
    )


def calibration_pairs(identities: np.ndarray, domains: np.ndarray, seed: int = 0) -> np.ndarray:
    """All matched (masked, full) pairs and as many unmatched ones drawn at random: (P, 3)
    rows ``a, b, same`` (indices into the embeddings file)."""
    identities, domains = np.asarray(identities), np.asarray(domains)
    masked, full = np.flatnonzero(domains == 1), np.flatnonzero(domains == 0)
    if len(masked) == 0 or len(full) == 0:
        raise MfrError("calibration needs masked (domain 1) and full (domain 0) images")
    a, b = np.meshgrid(masked, full, indexing="ij")
    a, b = a.ravel(), b.ravel()
    same = identities[a] == identities[b]
    matched = np.stack([a[same], b[same], np.ones(same.sum(), np.int64)], 1)
    others = np.flatnonzero(~same)
    pick = np.random.default_rng(seed).choice(others, min(len(others), len(matched)), replace=False)
    unmatched = np.stack([a[pick], b[pick], np.zeros(len(pick), np.int64)], 1)
    if len(matched) == 0 or len(unmatched) == 0:
        raise MfrError("calibration needs matched and unmatched masked/full pairs")
    return np.concatenate([matched, unmatched]).astype(np.int64)


def read_pairs(path: str | Path, num_embeddings: int | None = None) -> np.ndarray:
    """A pairs CSV (header ``a,b,same``) as an (P, 3) int64 array, read by ``mfr eval``'s
    reader (:func:`mfr.eval.pairs.read_pairs`: ``same`` must be 0 or 1, indices in range)."""
    from mfr.eval.pairs import read_pairs as read_pairs_csv

    pairs = read_pairs_csv(path, num_embeddings=num_embeddings)
    if len(pairs.a) == 0:
        raise MfrError(f"{path}: the pairs file holds no pairs")
    return np.stack([pairs.a, pairs.b, pairs.same.astype(np.int64)], 1)


def calibrate(
    embeddings_file: str | Path, pairs_file: str | Path | None = None, dim: int | None = None
) -> dict:
    """Calibrate on an embeddings file: ``{threshold, accuracy, num_pairs}``. ``dim`` is the
    model's embedding size: an embeddings file of another size was made by another model."""
    from mfr.eval.embeddings import l2_normalise, load_embeddings
    from mfr.eval.verification import best_threshold

    data = load_embeddings(embeddings_file)
    if dim is not None and data.dim != dim:
        raise MfrError(
            f"{embeddings_file}: holds {data.dim}-d embeddings, but the model gives {dim}-d; "
            "embed with this model first (`mfr embed SRC --model MODEL --out EMB.npz`)"
        )
    embeddings, identities, domains = data.embeddings, data.identities, data.domains
    if pairs_file:
        pairs = read_pairs(pairs_file, num_embeddings=len(embeddings))
    else:
        pairs = calibration_pairs(identities, domains)
    if pairs[:, 2].min() == pairs[:, 2].max():
        kind = "matched" if pairs[0, 2] else "unmatched"
        where = pairs_file or embeddings_file
        raise MfrError(f"{where}: only {kind} pairs; calibration needs both kinds")
    unit = l2_normalise(embeddings)
    similarities = np.einsum("ij,ij->i", unit[pairs[:, 0]], unit[pairs[:, 1]])
    threshold, accuracy = best_threshold(similarities, pairs[:, 2])
    threshold = float(np.clip(threshold, -1.0, 1.0))  # beyond every pair: the same decisions
    return {"threshold": threshold, "accuracy": accuracy, "num_pairs": int(len(pairs))}


def store_threshold(spec: str, fingerprint: str, record: dict) -> Path:
    """Keep a calibrated threshold with the model (checkpoint key or sidecar); returns where."""
    from mfr.embedders import BUILTIN_MODELS

    check_threshold(record["threshold"], "calibrated threshold")
    if spec not in BUILTIN_MODELS and Path(spec).suffix not in {".onnx"}:
        from mfr.embedders.checkpoint import read_checkpoint
        from mfr.io import atomic_save_torch

        checkpoint = read_checkpoint(spec)
        checkpoint["threshold"] = float(record["threshold"])
        checkpoint["operating_point"] = operating_point(record)
        atomic_save_torch(checkpoint, spec)
        return Path(spec)
    target = sidecar_path(spec)
    with atomic_write(target, "w") as handle:
        json.dump({**record, "fingerprint": fingerprint, "similarity": "cosine"}, handle, indent=2)
    return target


def calibrate_model(
    spec: str,
    fingerprint: str,
    embeddings_file: str | Path,
    pairs_file: str | Path | None = None,
    dim: int | None = None,
) -> tuple[dict, Path]:
    """``mfr verify --calibrate``: :func:`calibrate` on an embeddings file made with the model
    ``spec`` (of ``dim``-d embeddings and weights ``fingerprint``), then keep the threshold
    with the model: an installed model's record (``mfr.embedders.registry.set_threshold``),
    else :func:`store_threshold`. Returns ``(record, where it was stored)``; the record
    holds ``threshold``, ``accuracy``, ``num_pairs`` and ``source`` (the embeddings file)."""
    from mfr.embedders.registry import find_installed, set_threshold

    record = calibrate(embeddings_file, pairs_file, dim=dim)
    record["source"] = str(embeddings_file)
    if find_installed(spec) is not None:
        return record, set_threshold(spec, record["threshold"], operating_point(record))
    return record, store_threshold(spec, fingerprint, record)
