"""``mfr.FaceRecognizer``: embed, verify and identify faces with one trained model.

    rec = FaceRecognizer.load("runs/best.pt")              # or "model.onnx", or "dlib"
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
from mfr.errors import MfrError
from mfr.gallery.faces import prepare_face
from mfr.gallery.search import GallerySearch, Match
from mfr.gallery.store import Gallery, ModelInfo, normalise

ImageLike = str | Path | np.ndarray


@dataclass
class EmbedResult:
    """Embeddings of the images that could be used, and the ones skipped (with why)."""

    embeddings: np.ndarray
    kept: list[int]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class FaceRecognizer:
    """One embedding model with its verification threshold; see the module docstring."""

    def __init__(self, embedder, model: ModelInfo, threshold: float | None = None):
        self.embedder = embedder
        self.model = model
        self.threshold = threshold

    @classmethod
    def load(cls, model: str | Path = "dlib", threshold: float | None = None) -> FaceRecognizer:
        """Load a checkpoint (``.pt``), an ONNX export (``.onnx``) or ``"dlib"``; the
        threshold is ``threshold`` if given, else the one stored with the model."""
        from mfr.embedders import load_embedder
        from mfr.gallery.fingerprint import model_fingerprint
        from mfr.gallery.threshold import DLIB_DEFAULT, read_sidecar

        spec = str(model)
        if spec not in BUILTIN_MODELS:
            path = Path(spec).expanduser()
            if not path.is_file():
                raise MfrError(
                    f"{spec}: no such model file (use 'dlib', 'dlib-resnet', a .pt or a .onnx)"
                )
            spec = str(path.resolve())
        try:
            embedder = load_embedder(spec)
        except ImportError as error:  # an optional dependency or embedder module is missing
            raise MfrError(f"{spec}: cannot load this model ({error})") from error
        fingerprint = model_fingerprint(spec)
        info = ModelInfo(
            spec=spec, name=embedder.name, dim=int(embedder.dim), fingerprint=fingerprint
        )
        if threshold is None:
            threshold = (
                read_sidecar(spec, fingerprint)
                if spec in BUILTIN_MODELS or spec.endswith(".onnx")
                else None
            )
        if threshold is None:
            threshold = getattr(embedder, "threshold", None)
        if threshold is None and spec in BUILTIN_MODELS:  # the same weights: dlib's rule
            threshold = DLIB_DEFAULT
        return cls(embedder, info, threshold)

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
    ) -> EmbedResult:
        """Embed a batch; with ``skip_errors`` an unusable image (unreadable, no face) is
        recorded in ``skipped`` instead of raising. ``progress(n)`` is called per image."""
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
            raw = check_finite(self.embedder.embed(crops, aligned=True), self.model.spec, names)
            embeddings = normalise(raw)
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
        """(cosine similarity, same person?): same when similarity > the threshold."""
        threshold = self.threshold if threshold is None else threshold
        if threshold is None:
            raise MfrError(
                f"{self.model.spec}: no calibrated threshold; run `mfr verify --calibrate EMB.npz "
                "--model MODEL` or pass a threshold"
            )
        first, second = self.embed([a, b], aligned=aligned)
        similarity = float(first @ second)
        return similarity, similarity > threshold

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
