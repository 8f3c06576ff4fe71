"""mfr.nets: networks (backbones, UNet, CycleGAN) and the shared image normalisation."""

from mfr.nets.backbones import BACKBONES, build_backbone

__all__ = ["BACKBONES", "build_backbone"]
