"""Embeddings from an ``mfr train`` checkpoint (``mfr embed SRC --model run/final.pt``), or
from dlib's weights in the ``dlib-resnet`` backbone (``--model dlib-resnet``, no training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def dlib_resnet_model():
    """dlib's descriptor weights in the ``dlib-resnet`` backbone, with checkpoint metadata."""
    from mfr.align.dlib_models import model_path
    from mfr.nets.backbones import DLIB_RESNET, build_backbone

    model = build_backbone(DLIB_RESNET, embedding_dim=128, input_size=112)
    model.load_dlib_weights(model_path("descriptor"))
    metadata = {"backbone": DLIB_RESNET, "embedding_dim": 128, "input_size": 112,
                "head": model.head_name, "loss": "none", "step": 0, "threshold": None,
                "operating_point": None}  # fmt: skip
    return model.eval(), metadata


class CheckpointEmbedder:
    """A trained recognizer: aligned RGB uint8 faces -> L2-normalised float32 (N, D).

    Images are resized to the checkpoint's input size; ``flip=True`` adds the embedding of
    the mirrored image before normalising (flip averaging). ``normalize=False`` returns the
    network's raw embeddings (dlib's weights give ~1.43-long descriptors; dlib's distance
    rule needs their real length).
    """

    def __init__(
        self,
        path: str | Path,
        device: str = "cpu",
        batch_size: int = 64,
        flip: bool = False,
        normalize: bool = True,
    ):
        from mfr.train.checkpoint import load_embedding_model

        self.path = Path(path)
        if str(path) == "dlib-resnet":  # no file: dlib's weights, untrained
            self.model, self.metadata = dlib_resnet_model()
        else:
            self.model, self.metadata = load_embedding_model(self.path)
        self.device = torch.device(device)
        self.model.to(self.device)
        self.batch_size = int(batch_size)
        self.flip = flip
        self.normalize = normalize
        self.input_size = int(self.metadata["input_size"])
        self.dim = int(self.metadata["embedding_dim"])
        self.name = f"{self.path.name} ({self.metadata['backbone']}, {self.metadata['loss']})"
        self.threshold = self.metadata.get("threshold")
        self.operating_point = self.metadata.get("operating_point")

    @torch.no_grad()
    def embed(self, images: list[np.ndarray], aligned: bool = True) -> np.ndarray:
        """Embed aligned faces (``aligned=False`` is not supported: align them first)."""
        from mfr.data.images import resize_square
        from mfr.errors import MfrError
        from mfr.nets.preprocess import images_to_tensor

        if not aligned:
            raise MfrError(
                f"{self.path}: a checkpoint embedder needs aligned faces; run `mfr align` first"
            )
        if len(images) == 0:
            return np.zeros((0, self.dim), np.float32)
        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = [
                resize_square(im, self.input_size) for im in images[start : start + self.batch_size]
            ]
            batch = images_to_tensor(chunk).to(self.device)
            features = self.model(batch).float()
            if self.flip:
                features = features + self.model(batch.flip(3)).float()
            if self.normalize:
                features = torch.nn.functional.normalize(features, dim=1)
            out.append(features.cpu())
        return torch.cat(out).numpy().astype(np.float32, copy=False)
