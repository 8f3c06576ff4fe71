"""DDP: two gloo processes on CPU train in lock-step and end with identical weights."""

from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp
from _train_data import make_dataset, tiny_overrides

from mfr.train.config import TrainConfig, apply_overrides


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, data: str, out: str, dump: str) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    torch.set_num_threads(1)
    from mfr.train.recognizer import train

    config = apply_overrides(TrainConfig(), tiny_overrides(data, loss="dcr", steps=4, p=2))

    def keep(backbone, loss):
        torch.save(
            {"params": {k: v.detach().clone() for k, v in backbone.named_parameters()},
             "loss": {k: v.detach().clone() for k, v in loss.named_parameters()}},
            f"{dump}/rank{rank}.pt",
        )  # fmt: skip

    train(config, out, log=lambda _: None, on_finish=keep)


def test_two_gloo_ranks_hold_identical_weights_after_steps(tmp_path):
    data = make_dataset(tmp_path / "data", identities=8)
    port = _free_port()
    args = (2, port, str(data), str(tmp_path / "run"), str(tmp_path))
    mp.spawn(_worker, args=args, nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for part in ("params", "loss"):
        assert ranks[0][part].keys() == ranks[1][part].keys() and ranks[0][part]
        for key in ranks[0][part]:
            assert torch.equal(ranks[0][part][key], ranks[1][part][key]), f"{part}.{key}"
    # only rank 0 wrote the run folder's outputs
    from mfr.embedders.checkpoint import read_checkpoint

    final = read_checkpoint(tmp_path / "run/final.pt")
    assert final["step"] == 4
    assert torch.equal(final["model"]["head.3.weight"], ranks[0]["params"]["head.3.weight"])
    lines = (tmp_path / "run/metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # steps 2 and 4, written once (rank 0)
