"""Under DDP (2 gloo processes) the DCR and center-loss centres stay identical on every rank."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mfr.losses import DCRLoss, build_loss


def _rank_batch(rank: int, step: int):
    g = torch.Generator().manual_seed(100 * step + rank)
    n = 6 + rank  # unequal batch sizes across ranks
    labels = torch.randint(0, 5, (n,), generator=g)
    domains = torch.randint(0, 2, (n,), generator=g)
    return torch.randn(n, 4, generator=g), labels, domains


def _worker(rank: int, init_file: str, out: str):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    dcr, center = DCRLoss(5, 4), build_loss("center", 5, 4)
    for step in range(3):
        feats, labels, domains = _rank_batch(rank, step)
        dcr(feats, labels, domains)
        center(feats, labels, domains)
    torch.save({"dcr": dcr.state_dict(), "center": center.centers}, f"{out}.{rank}")
    dist.destroy_process_group()


def test_centres_are_identical_on_both_ranks_and_equal_a_single_process_global_batch(tmp_path):
    out = str(tmp_path / "state")
    mp.spawn(_worker, args=(str(tmp_path / "init"), out), nprocs=2, join=True)
    states = [torch.load(f"{out}.{r}", weights_only=True) for r in range(2)]
    for key in ("centers", "initialized"):
        assert torch.equal(states[0]["dcr"][key], states[1]["dcr"][key])
    assert torch.equal(states[0]["center"], states[1]["center"])

    # One process fed the concatenated batches moves its centres the same way.
    dcr, center = DCRLoss(5, 4), build_loss("center", 5, 4)
    for step in range(3):
        parts = [_rank_batch(rank, step) for rank in range(2)]
        feats, labels, domains = (torch.cat(t) for t in zip(*parts, strict=True))
        dcr(feats, labels, domains)
        center(feats, labels, domains)
    assert torch.equal(dcr.initialized, states[0]["dcr"]["initialized"])
    torch.testing.assert_close(dcr.centers, states[0]["dcr"]["centers"])
    torch.testing.assert_close(center.centers, states[0]["center"])
