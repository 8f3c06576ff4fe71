"""Recognition losses: softmax, triplet, center, SphereFace, CosFace, ArcFace and DCR.

Every loss is built by name with :func:`build_loss` and called as
``loss(features, labels, domains) -> scalar``; see ``docs/losses.md``.
"""

from mfr.losses._base import RecognitionLoss
from mfr.losses.arcface import ArcFaceLoss
from mfr.losses.center import CenterLoss
from mfr.losses.cosface import CosFaceLoss
from mfr.losses.dcr import DCRLoss, SoftmaxDCRLoss
from mfr.losses.registry import LOSSES, build_loss, loss_options
from mfr.losses.softmax import SoftmaxLoss
from mfr.losses.sphereface import SphereFaceLoss
from mfr.losses.triplet import TripletLoss

__all__ = [
    "LOSSES",
    "ArcFaceLoss",
    "CenterLoss",
    "CosFaceLoss",
    "DCRLoss",
    "RecognitionLoss",
    "SoftmaxDCRLoss",
    "SoftmaxLoss",
    "SphereFaceLoss",
    "TripletLoss",
    "build_loss",
    "loss_options",
]
