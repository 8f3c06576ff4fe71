"""``mfr.FaceRecognizer``: embed, verify and identify faces with one trained model.

    rec = FaceRecognizer.load()                  # the default model (see mfr.embedders.registry)
    rec = FaceRecognizer.load("runs/best.pt")   # or "model.onnx", "mfr-masked", "dlib"...
    rec.verify("alice.jpg", "masked.jpg")                  # (cosine similarity, same person?)
    rec.identify(["masked.jpg"], "people.npz", k=5)        # per image: ranked Match objects

Images are file paths or RGB uint8 arrays (H x W x 3). ``aligned`` says what they are: True
for aligned crops (used as they are), False for ordinary photos (the largest face is detected
and aligned), None (default) for auto: a 112 x 112 image (what ``mfr align`` writes) is taken
for an aligned crop, anything else is detected and aligned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mfr.data.images import read_image
from mfr.embedders import BUILTIN_MODELS, check_finite
from mfr.embedders.faces import prepare_face
from mfr.errors import MfrError
from mfr.eval.embeddings import l2_normalise
from mfr.gallery.search import GallerySearch, Match
from mfr.gallery.store import Gallery, ModelInfo

ImageLike = str | Path | np.ndarray


@dataclass(frozen=True)
class Decision:
    """One verification: cosine ``similarity``, ``same`` (similarity > ``threshold``), the
    ``threshold`` used and its ``operating_point``."""

    similarity: float
    same: bool
    threshold: float
    operating_point: str | None


def decision(
    first: np.ndarray,
    second: np.ndarray,
    threshold: float,
    distance_rule: float | None = None,
    operating_point: str | None = None,
) -> Decision:
    """Decide on two raw (not normalised) embeddings, as ``FaceRecognizer.decide`` does."""
    la, lb = float(np.linalg.norm(first)), float(np.linalg.norm(second))
    similarity = float(np.dot(first, second)) / max(la * lb, 1e-12)
    if distance_rule is not None:  # |a - b| < d  <=>  cos > (|a|^2 + |b|^2 - d^2) / (2|a||b|)
        threshold = (la * la + lb * lb - distance_rule**2) / max(2 * la * lb, 1e-12)
    return Decision(similarity, similarity > threshold, float(threshold), operating_point)


@dataclass
class EmbedResult:
    """Embeddings of the images that could be used, and the ones skipped (with why)."""

    embeddings: np.ndarray
    kept: list[int]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class FaceRecognizer:
    """One embedding model with its verification threshold; see the module docstring."""

    def __init__(
        self,
        embedder,
        model: ModelInfo,
        threshold: float | None = None,
        operating_point: str | None = None,
        note: str = "",
        distance_rule: float | None = None,
    ):
        from mfr.gallery.threshold import check_threshold

        self.embedder = embedder
        self.model = model
        self.threshold = None if threshold is None else check_threshold(threshold)
        #: how the threshold was set (e.g. "best accuracy on ... held-out pairs"); None
        #: when the model has no threshold
        self.operating_point = operating_point if threshold is not None else None
        #: which model this is and why it was chosen (e.g. "default: the best installed model")
        self.note = note
        #: a model decided by a distance between raw embeddings (dlib: 0.6), else None;
        #: ``threshold`` is then that rule at the model's typical embedding length (for
        #: galleries, which keep only normalised embeddings)
        self.distance_rule = distance_rule if threshold is not None else None

    def __repr__(self) -> str:
        """Which model, why, and its threshold: ``FaceRecognizer(model='mfr-masked' (default:
        ...), threshold=0.9504)``."""
        why = f" ({self.note})" if self.note else ""
        threshold = "none (refuses to decide)"
        if self.threshold is not None:
            threshold = f"{self.threshold:.4f}"
        return f"FaceRecognizer(model={self.model.spec!r}{why}, threshold={threshold})"

    @classmethod
    def load(
        cls, model: str | Path | None = None, threshold: float | None = None
    ) -> FaceRecognizer:
        """Load a model by name (``mfr-masked``, ``dlib``, ``dlib-resnet``: see
        ``mfr.embedders.registry``) or path (``.pt``, ``.onnx``); None loads the default model
        (the best installed one, else ``dlib-resnet``). The threshold is ``threshold`` if
        given, else one calibrated with ``mfr verify --calibrate`` for these weights, else the
        one the model carries; a model without one can embed and identify but not verify.
        Raises ``MfrError`` for an unknown name or an unloadable file."""
        from mfr.embedders import load_embedder
        from mfr.embedders.fingerprint import model_fingerprint
        from mfr.embedders.registry import resolve
        from mfr.gallery.threshold import check_threshold, read_sidecar

        if threshold is not None:  # before loading the model: a bad value fails at once
            threshold = check_threshold(threshold)
        resolved = resolve(model)
        source = resolved.source
        distance_rule = resolved.threshold is not None and resolved.threshold.distance
        options = {"normalize": False} if distance_rule and source != "dlib" else {}
        try:
            embedder = load_embedder(source, **options)
        except ImportError as error:  # an optional dependency or embedder module is missing
            raise MfrError(f"{resolved.spec}: cannot load this model ({error})") from error
        fingerprint = model_fingerprint(source)
        info = ModelInfo(
            spec=resolved.spec, name=embedder.name, dim=int(embedder.dim), fingerprint=fingerprint
        )
        point = None
        if threshold is not None:
            point = "given by the caller"
        elif source in BUILTIN_MODELS or source.endswith(".onnx"):
            calibrated = read_sidecar(source, fingerprint)
            if calibrated is not None:
                threshold, point = calibrated
        rule = None
        if threshold is None and resolved.threshold is not None:
            threshold, point = resolved.threshold.value, resolved.threshold.operating_point
            rule = resolved.threshold.distance
        if threshold is None and getattr(embedder, "threshold", None) is not None:
            threshold = float(embedder.threshold)
            point = getattr(embedder, "operating_point", None) or "stored with the model"
        return cls(embedder, info, threshold, point, resolved.note, rule)

    @classmethod
    def for_gallery(
        cls, gallery: str | Path, model: str | Path | None = None
    ) -> tuple[FaceRecognizer, Gallery | None]:
        """The recognizer for the gallery file ``gallery`` and the gallery as it is (None when
        the file does not exist yet): ``model`` if given, else the gallery's own model (its
        ``note`` says so), else the default model. Raises ``MfrError`` for an unreadable
        gallery or one enrolled with another model than ``model``."""
        gallery = Path(gallery)
        store = Gallery.load(gallery) if gallery.exists() else None
        if model is None and store is not None:
            recognizer = cls.load(store.model.spec)
            recognizer.note = "the gallery's model"
        else:
            recognizer = cls.load(model)
        if store is not None:
            store.check_model(recognizer.model, gallery)
        return recognizer, store

    @property
    def dim(self) -> int:
        return self.model.dim

    def _image(self, item: ImageLike, where: str) -> np.ndarray:
        return read_image(item) if isinstance(item, str | Path) else np.asarray(item)

    def embed(self, images: Sequence[ImageLike], aligned: bool | None = None) -> np.ndarray:
        """L2-normalised float32 (N, D) embeddings; raises ``MfrError`` on the first bad image."""
        result = self.embed_many(images, aligned=aligned, skip_errors=False)
        return result.embeddings

    def embed_many(
        self,
        images: Sequence[ImageLike],
        aligned: bool | None = None,
        skip_errors: bool = True,
        progress=None,
        raw: bool = False,
    ) -> EmbedResult:
        """Embed a batch; with ``skip_errors`` an unusable image (unreadable, no face) is
        recorded in ``skipped`` instead of raising. ``progress(n)`` is called per image.
        ``raw``: the model's own embeddings, not L2-normalised (dlib's are ~1.43 long)."""
        crops, kept, skipped, notes = [], [], [], []
        for i, item in enumerate(images):
            where = str(item) if isinstance(item, str | Path) else f"image {i}"
            try:
                face = prepare_face(self._image(item, where), aligned=aligned, where=where)
            except MfrError as error:
                if not skip_errors:
                    raise
                skipped.append((where, str(error)))
            else:
                crops.append(face.crop)
                kept.append(i)
                notes.extend(face.notes)
            if progress is not None:
                progress(1)
        if crops:
            names = [str(images[i]) if isinstance(images[i], str | Path) else f"image {i}"
                     for i in kept]  # fmt: skip
            embeddings = check_finite(
                self.embedder.embed(crops, aligned=True), self.model.spec, names
            ).astype(np.float32)
            embeddings = embeddings if raw else l2_normalise(embeddings)
        else:
            embeddings = np.zeros((0, self.dim), np.float32)
        return EmbedResult(embeddings, kept, skipped, notes)

    def verify(
        self,
        a: ImageLike,
        b: ImageLike,
        aligned: bool | None = None,
        threshold: float | None = None,
    ) -> tuple[float, bool]:
        """(cosine similarity, same person?): same when similarity > the threshold (see
        ``decide``). Raises ``MfrError`` when the model has no threshold."""
        decision = self.decide(a, b, aligned=aligned, threshold=threshold)
        return decision.similarity, decision.same

    def decide(
        self,
        a: ImageLike,
        b: ImageLike,
        aligned: bool | None = None,
        threshold: float | None = None,
    ) -> Decision:
        """The verification decision with the threshold it used.

        Same person when the cosine similarity is above the threshold: ``threshold`` if
        given, else the model's. A model with a distance rule (``dlib``: raw descriptors less
        than 0.6 apart) applies it at the two descriptors' real lengths: the threshold is the
        cosine at which they are exactly that far apart, ``(|a|^2 + |b|^2 - d^2) / (2|a||b|)``.
        Raises ``MfrError`` when the model has no threshold (it refuses to decide)."""
        from mfr.gallery.threshold import check_threshold

        rule = self.distance_rule if threshold is None else None
        threshold = self.threshold if threshold is None else check_threshold(threshold)
        if threshold is None:
            raise MfrError(
                f"{self.model.spec}: no calibrated threshold, so this model refuses to decide "
                "same or different; calibrate one (`mfr verify --calibrate EMB.npz --model "
                "MODEL`) or pass a threshold (--threshold)"
            )
        result = self.embed_many([a, b], aligned=aligned, skip_errors=False, raw=True)
        return decision(*result.embeddings, threshold, rule, self.operating_point)

    def open_gallery(self, gallery: Gallery | str | Path) -> Gallery:
        """Load ``gallery`` (a path or object) and check it was enrolled with this model."""
        where = gallery if isinstance(gallery, str | Path) else "gallery"
        if not isinstance(gallery, Gallery):
            gallery = Gallery.load(gallery)
        gallery.check_model(self.model, where)
        return gallery

    def identify(
        self,
        images: Sequence[ImageLike],
        gallery: Gallery | str | Path,
        k: int = 5,
        aligned: bool | None = None,
        backend: str = "exact",
    ) -> list[list[Match]]:
        """The ``k`` most similar enrolled identities of each image, best first; an
        identity's score is its best-matching enrolled image's cosine similarity."""
        gallery = self.open_gallery(gallery)
        probes = self.embed(images, aligned=aligned)
        return GallerySearch(gallery.embeddings, gallery.identities, backend).search(probes, k)
