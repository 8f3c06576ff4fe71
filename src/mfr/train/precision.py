"""Whether bf16 autocast is worth using on the device at hand.

On a CPU without native bf16 (no AVX-512-BF16 or AMX), PyTorch emulates bf16 matrix products,
and autocast makes training several times *slower* than float32 (seen on a 2-core AMD EPYC:
a 150-step ResNet-18 run that takes ~2 min in float32 had not logged step 25 after 7 min).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def native_bf16(device_type: str) -> bool:
    """True when ``device_type`` ("cpu", "cuda") computes bf16 natively: CUDA devices that
    support it, CPUs whose oneDNN build reports bf16 support."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def use_bf16(requested: bool, device_type: str, log: Callable[[str], None] = print) -> bool:
    """``requested`` unless the device lacks native bf16, in which case float32 is used and
    one line says so (the run's results then match a float32 run)."""
    if requested and not native_bf16(device_type):
        log(f"bf16 requested, but this {device_type} has no native bf16: training in float32")
        return False
    return requested
