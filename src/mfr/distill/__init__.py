"""Teacher-guided training: distil a full-face descriptor into the masked-face recognizer."""

from mfr.distill.losses import DistillationLoss, embedding_matching, relational_matching
from mfr.distill.teacher import TeacherCache, full_twin_path, teacher_fingerprint

__all__ = [
    "DistillationLoss",
    "TeacherCache",
    "embedding_matching",
    "full_twin_path",
    "relational_matching",
    "teacher_fingerprint",
]
