"""Distributed data parallel under ``torchrun``: process group set-up, rank and device.

``torchrun --nproc_per_node N -m mfr.cli train ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`setup` then joins the process group (NCCL when the device is CUDA,
gloo on CPU). Without those variables everything runs in one process. Only rank 0 logs and
writes checkpoints (:attr:`DistInfo.is_main`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def choose_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> this rank's CUDA device when there is one, else the CPU."""
    from mfr.errors import ConfigError

    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' was asked for, but no CUDA device is available")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def setup(device: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun; return rank, world size and device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = choose_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if chosen.type == "cuda":
            torch.cuda.set_device(chosen)
        dist.init_process_group(
            backend="nccl" if chosen.type == "cuda" else "gloo", rank=rank, world_size=world_size
        )
    return DistInfo(rank, world_size, local_rank, chosen)


def cleanup(info: DistInfo) -> None:
    """Leave the process group (when :func:`setup` joined one)."""
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.barrier()


def broadcast_module_state(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every rank (e.g. loss centres, BN statistics)."""
    if not (info.distributed and dist.is_initialized()):
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=0)
