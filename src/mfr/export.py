"""Export an embedding model to ONNX with a dynamic batch dimension and mfr metadata.

The graph maps ``input`` float32 (batch, 3, H, W) RGB in [-1, 1] (``(pixel / 127.5) - 1``) to
``embedding`` float32 (batch, D). ``metadata_props`` carry ``mfr.format`` (``mfr-embedder``),
``mfr.input_size``, ``mfr.embedding_dim``, ``mfr.normalisation`` (``rgb/127.5-1``),
``mfr.backbone``, ``mfr.fingerprint`` (the source weights' hash, so that a gallery enrolled
with the checkpoint also opens with its export) and, when calibrated, ``mfr.threshold``.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

from mfr.errors import CheckpointError
from mfr.io import atomic_write

NORMALISATION = "rgb/127.5-1"
OPSET = 17


@contextlib.contextmanager
def _export_errors(metadata: dict):
    """An operator the ONNX exporter cannot write becomes one plain CheckpointError."""
    import torch

    try:
        yield
    except torch.onnx.errors.OnnxExporterError as error:
        reason = str(error).strip().splitlines()[0]
        backbone = metadata.get("backbone", "model")
        raise CheckpointError(
            f"{backbone}: cannot export to ONNX opset {OPSET} ({reason})"
        ) from None


def export_onnx(model, metadata: dict, out: str | Path, fingerprint: str | None = None) -> Path:
    """Write ``model`` (eval mode, NCHW [-1, 1] -> (B, D)) to ``out`` as ONNX.

    ``metadata`` needs ``input_size`` and ``embedding_dim``; ``backbone`` and ``threshold``
    are copied when present. Uses the TorchScript exporter (``dynamo=False``), which needs no
    package beyond torch and onnx.
    """
    import onnx
    import torch

    size = int(metadata["input_size"])
    model = model.eval()
    dummy = torch.zeros(2, 3, size, size)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad(), _export_errors(metadata):
        warnings.simplefilter("ignore")  # the legacy exporter warns that it is deprecated
        torch.onnx.export(
            model,
            (dummy,),
            buffer,
            dynamo=False,
            input_names=["input"],
            output_names=["embedding"],
            dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=OPSET,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    dim = int(metadata["embedding_dim"])
    out_dim = proto.graph.output[0].type.tensor_type.shape.dim[-1].dim_value
    if out_dim and out_dim != dim:
        raise CheckpointError(f"model gives {out_dim}-d embeddings, metadata says {dim}")
    props = {
        "mfr.format": "mfr-embedder",
        "mfr.input_size": str(size),
        "mfr.embedding_dim": str(dim),
        "mfr.normalisation": NORMALISATION,
        "mfr.backbone": str(metadata.get("backbone", "unknown")),
    }
    if fingerprint:
        props["mfr.fingerprint"] = fingerprint
    if metadata.get("threshold") is not None:
        props["mfr.threshold"] = repr(float(metadata["threshold"]))
        if metadata.get("operating_point"):
            props["mfr.operating_point"] = str(metadata["operating_point"])
    onnx.helper.set_model_props(proto, props)
    onnx.checker.check_model(proto)
    out = Path(out)
    with atomic_write(out, "wb") as handle:
        handle.write(proto.SerializeToString())
    return out


def export_checkpoint(checkpoint: str | Path, out: str | Path) -> Path:
    """Export an mfr recognizer checkpoint (see ``mfr.embedders.checkpoint``) to ONNX."""
    from mfr.embedders.checkpoint import load_embedding_model
    from mfr.embedders.fingerprint import checkpoint_fingerprint

    model, metadata = load_embedding_model(checkpoint)
    return export_onnx(model, metadata, out, fingerprint=checkpoint_fingerprint(checkpoint))
