"""Periodic validation of the recognizer trainer, in memory.

The current backbone embeds ``val_data`` (an identity folder or manifest with masked probes
and full-face gallery images) and the embeddings are scored where they are, with the
functions behind ``mfr eval`` (:mod:`mfr.eval.retrieval`, :mod:`mfr.eval.pairs`,
:mod:`mfr.eval.verification`, :mod:`mfr.eval.report`): the masked-probe-versus-full-gallery
retrieval (CMC Rank-k, mAP) and 10-fold verification on generated masked-vs-full pairs (seed
0, as ``mfr eval`` draws them). Only the report is written (``OUT/val/step-N.json``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mfr.errors import MfrError
from mfr.io import atomic_write, ensure_folder

# the figures logged to metrics.jsonl and returned to the trainer
VAL_KEYS = ("rank1", "rank5", "mAP", "accuracy", "accuracy_std", "num_probes", "num_pairs")
PAIRS_PER_FOLD = 10_000  # mfr eval's default
PAIRS_SEED = 0


def validate(
    backbone: nn.Module, data: str | Path, input_size: int, device, folder: Path, step: int
) -> dict[str, Any]:
    """Embed the dataset ``data`` at ``input_size`` px with ``backbone`` (eval mode, restored
    afterwards), score it in memory and write ``folder/step-<step>.json`` (the full report,
    :func:`validation_report`). Returns the :data:`VAL_KEYS` figures (percentages 0-100 and
    counts). Raises :class:`MfrError` when ``data`` cannot be read or holds nothing to
    evaluate."""
    from mfr.data.dataset import load_index

    index = load_index(data)
    was_training = backbone.training
    backbone.eval()
    try:
        features = embed_files(backbone, index.paths, input_size, device)
    finally:
        backbone.train(was_training)
    report = validation_report(
        features, index.identities, index.domains, [str(p) for p in index.paths], str(data)
    )
    with atomic_write(ensure_folder(folder) / f"step-{step}.json", "w") as handle:
        json.dump(report, handle, indent=2)
        handle.write("\n")
    return {key: report.get(key) for key in VAL_KEYS}


def validation_report(
    embeddings: np.ndarray,
    identities: Sequence[str],
    domains: Sequence[int],
    paths: Sequence[str],
    source: str,
) -> dict[str, Any]:
    """The ``mfr eval`` report (:func:`mfr.eval.report.build_report`: percentages 0-100) of
    float (N, D) ``embeddings`` with their identities, domains (0 = full, 1 = masked) and
    paths, the pairs generated from the data. Raises :class:`MfrError` naming ``source`` for
    invalid embeddings or when neither retrieval nor verification can be computed."""
    from mfr.eval.embeddings import FULL, MASKED, l2_normalise, validate_embeddings
    from mfr.eval.pairs import generate_pairs, pair_kinds
    from mfr.eval.report import build_report
    from mfr.eval.retrieval import evaluate_retrieval
    from mfr.eval.verification import pair_similarities, verification_metrics

    emb = validate_embeddings(
        embeddings,
        np.asarray(identities, dtype=str),
        np.asarray(domains, dtype=np.uint8),
        np.asarray(paths, dtype=str),
        source,
    )
    notes: list[str] = []
    num_probes = int(np.count_nonzero(emb.domains == MASKED))
    num_gallery = int(np.count_nonzero(emb.domains == FULL))
    retrieval = None
    if num_probes and num_gallery:
        retrieval = evaluate_retrieval(emb)
        if retrieval.skipped_probes:
            notes.append(f"{retrieval.skipped_probes} of {num_probes} masked probes skipped: "
                         "their identity has no full-face gallery image")  # fmt: skip
        if retrieval.num_probes == 0:
            notes.append("retrieval not computed: no probe identity has a gallery image")
            retrieval = None
    else:
        notes.append(f"retrieval not computed: {num_probes} masked probes and {num_gallery} "
                     "full-face gallery images (both are needed)")  # fmt: skip
    generated = generate_pairs(emb.identities, emb.domains, PAIRS_PER_FOLD, seed=PAIRS_SEED)
    pairs = generated.pairs
    if generated.shrunk:
        notes.append(generated.note())
    verification = None
    if len(pairs) >= 10:
        sims = pair_similarities(l2_normalise(emb.embeddings), pairs.a, pairs.b)
        verification = verification_metrics(sims, pairs.same)
    else:
        notes.append(f"verification not computed: {len(pairs)} pairs (10 folds need at least 10)")
    if retrieval is None and verification is None:
        raise MfrError(f"{source}: nothing to evaluate ({'; '.join(notes)})")
    extra = {
        "num_embeddings": len(emb),
        "num_masked": num_probes,
        "embedding_dim": emb.dim,
        "num_identities": int(len(np.unique(emb.identities))),
        "pairs_source": "generated",
        "seed": PAIRS_SEED,
        "matched_pairs_per_fold": generated.matched_per_fold,
        "pair_kinds": pair_kinds(pairs, emb.domains),
        "notes": notes,
    }
    return build_report(retrieval, verification, num_probes, num_gallery, extra)


@torch.no_grad()
def embed_files(
    model: nn.Module, paths, input_size: int, device, batch_size: int = 128, workers: int = 0
) -> np.ndarray:
    """L2-normalised float32 (N, D) embeddings of image files with an eval-mode model, decoded
    by the training data loader (the same decoding and scaling as training) and run through
    ``mfr.embedders.network.embed_batches``."""
    from mfr.data.loader import FaceImageDataset, check_batch, make_eval_loader
    from mfr.embedders.network import embed_batches

    n = len(paths)
    dataset = FaceImageDataset(paths, np.zeros(n, np.int64), np.zeros(n, np.uint8), input_size)
    loader = map(check_batch, make_eval_loader(dataset, batch_size, workers))
    return embed_batches(model, (images for images, _, _ in loader), device=device)
