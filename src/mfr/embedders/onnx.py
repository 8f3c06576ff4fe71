"""Embeddings from an ONNX export of an mfr recognizer (see ``mfr.export``), via onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mfr.errors import CheckpointError
from mfr.eval.embeddings import l2_normalise

BATCH = 64


def resize_crops(images: list[np.ndarray], size: int) -> np.ndarray:
    """Aligned RGB uint8 crops -> N x size x size x 3 (area filter when shrinking)."""
    import cv2

    out = np.empty((len(images), size, size, 3), np.uint8)
    for i, image in enumerate(images):
        if image.shape[:2] == (size, size):
            out[i] = image
        else:
            shrink = min(image.shape[:2]) > size
            out[i] = cv2.resize(
                image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            )
    return out


class OnnxEmbedder:
    """An ONNX embedding model; reads input size, dim and threshold from its metadata.

    Raises ``CheckpointError`` for a missing or unreadable file, or an ONNX graph without
    mfr's metadata."""

    def __init__(self, path: str | Path, threads: int | None = None, normalize: bool = True):
        import onnxruntime as ort

        self.path = Path(path)
        self.normalize = normalize
        if not self.path.is_file():
            from mfr.io import missing_file

            raise missing_file(self.path, "ONNX model", cls=CheckpointError)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:
            raise CheckpointError(f"{self.path}: unreadable ONNX model ({error})") from error
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("mfr.format") != "mfr-embedder":
            raise CheckpointError(f"{self.path}: not an mfr ONNX export (no mfr metadata)")
        if meta.get("mfr.normalisation", "rgb/127.5-1") != "rgb/127.5-1":
            raise CheckpointError(f"{self.path}: unknown normalisation {meta['mfr.normalisation']}")
        self.input_size = int(meta["mfr.input_size"])
        self.dim = int(meta["mfr.embedding_dim"])
        self.threshold = float(meta["mfr.threshold"]) if "mfr.threshold" in meta else None
        self.operating_point = meta.get("mfr.operating_point")
        self.name = f"onnx:{self.path.name}:{meta.get('mfr.backbone', 'unknown')}"
        self.input_name = self.session.get_inputs()[0].name

    def embed(self, images: list[np.ndarray], aligned: bool = True) -> np.ndarray:
        """RGB uint8 images -> float32 (N, dim), L2-normalised unless ``normalize=False``
        (like a checkpoint's); raw photos are aligned first."""
        if not aligned:
            from mfr.embedders.faces import align_photo

            images = [align_photo(image).crop for image in images]
        out = np.zeros((len(images), self.dim), np.float32)
        for start in range(0, len(images), BATCH):
            batch = resize_crops(images[start : start + BATCH], self.input_size)
            tensor = batch.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0
            out[start : start + len(batch)] = self.session.run(None, {self.input_name: tensor})[0]
        return l2_normalise(out) if self.normalize else out
