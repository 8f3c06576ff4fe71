"""mfr.eval: verification, retrieval (CMC/mAP), pair protocol, reports and plots;
:func:`evaluate` runs them on an embeddings file (what ``mfr eval`` prints)."""

from mfr.eval.evaluate import default_pairs_path, evaluate

__all__ = ["default_pairs_path", "evaluate"]
