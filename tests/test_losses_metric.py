"""Softmax, batch-hard triplet and center loss against naive per-sample recomputations."""

from __future__ import annotations

import pytest
import torch

from mfr.losses import build_loss
from mfr.losses.triplet import batch_hard_triplet


def _pk_batch(seed=0, p=4, k=3, dim=5):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(p).repeat_interleave(k)
    return torch.randn(p * k, dim, generator=g), labels, torch.zeros(p * k, dtype=torch.long)


def _naive_softmax_ce(feats, labels, weight, bias):
    total = 0.0
    for x, y in zip(feats, labels, strict=True):
        z = torch.stack([x @ w + b for w, b in zip(weight, bias, strict=True)])
        total = total - torch.log(torch.exp(z[int(y)]) / torch.exp(z).sum())
    return total / len(labels)


def _naive_batch_hard(feats, labels, margin, normalize=True):
    """Hermans et al.: per anchor, hardest positive and hardest negative, hinge, mean."""
    f = [x / x.norm() if normalize else x for x in feats]
    terms = []
    for a in range(len(f)):
        pos = [(f[a] - f[p]).norm() for p in range(len(f)) if p != a and labels[p] == labels[a]]
        neg = [(f[a] - f[n]).norm() for n in range(len(f)) if labels[n] != labels[a]]
        if pos and neg:
            terms.append(torch.clamp(max(pos) - min(neg) + margin, min=0))
    return sum(terms) / len(terms) if terms else torch.zeros(())


def test_softmax_matches_naive_cross_entropy():
    feats, labels, domains = _pk_batch()
    loss = build_loss("softmax", 4, 5)
    x = feats.clone().requires_grad_()
    got = loss(x, labels, domains)
    got.backward()
    xd = feats.double().requires_grad_()
    w, b = loss.fc.weight.detach().double(), loss.fc.bias.detach().double()
    want = _naive_softmax_ce(xd, labels, w, b)
    want.backward()
    torch.testing.assert_close(got.double(), want.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(x.grad.double(), xd.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(loss.logits(feats), feats @ loss.fc.weight.t() + loss.fc.bias)


@pytest.mark.parametrize("normalize", [True, False])
def test_batch_hard_triplet_matches_naive_loop(normalize):
    feats, labels, _ = _pk_batch(1)
    labels[-1] = 9  # an anchor without positive is left out of the mean
    x = feats.clone().requires_grad_()
    got = batch_hard_triplet(x, labels, 0.3, normalize)
    got.backward()
    xd = feats.double().requires_grad_()
    want = _naive_batch_hard(xd, labels, 0.3, normalize)
    want.backward()
    assert want.item() > 0
    torch.testing.assert_close(got.double(), want.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x.grad.double(), xd.grad, rtol=1e-4, atol=1e-6)


def test_batch_hard_triplet_matches_pytorch_metric_learning():
    pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
    from pytorch_metric_learning.miners import BatchHardMiner
    from pytorch_metric_learning.reducers import MeanReducer

    feats, labels, _ = _pk_batch(2, p=6, k=4, dim=8)
    oracle = pml_losses.TripletMarginLoss(margin=0.3, reducer=MeanReducer())
    miner = BatchHardMiner()
    x1, x2 = feats.clone().requires_grad_(), feats.clone().requires_grad_()
    got = batch_hard_triplet(x1, labels, 0.3)
    want = oracle(x2, labels, miner(x2, labels))
    got.backward()
    want.backward()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-6)


def test_triplet_loss_is_softmax_plus_weighted_batch_hard():
    feats, labels, domains = _pk_batch(3)
    loss = build_loss("triplet", 4, 5, margin=0.5, weight=2.0)
    ce = torch.nn.functional.cross_entropy(loss.logits(feats), labels)
    want = ce + 2.0 * _naive_batch_hard(feats, labels, 0.5)
    torch.testing.assert_close(loss(feats, labels, domains), want, rtol=1e-5, atol=1e-6)
    # one identity only: no negatives, the triplet term is 0
    one = torch.zeros_like(labels)
    assert batch_hard_triplet(feats, one, 0.3).item() == 0.0


def test_center_loss_matches_wen_et_al_loss_and_update_rule():
    feats, labels, domains = _pk_batch(4)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 0])  # classes 0-2 seen, 3 not
    loss = build_loss("center", 4, 5, weight=0.1, alpha=0.5)
    loss.centers.copy_(torch.randn(4, 5, generator=torch.Generator().manual_seed(9)))
    centers = loss.centers.clone().double()
    x = feats.clone().requires_grad_()
    got = loss(x, labels, domains)
    got.backward()
    xd = feats.double().requires_grad_()
    w, b = loss.softmax.fc.weight.detach().double(), loss.softmax.fc.bias.detach().double()
    lc = sum(0.5 * (xd[i] - centers[int(y)]).pow(2).sum() for i, y in enumerate(labels))
    want = _naive_softmax_ce(xd, labels, w, b) + 0.1 * lc / len(labels)
    want.backward()
    torch.testing.assert_close(got.double(), want.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x.grad.double(), xd.grad, rtol=1e-4, atol=1e-6)
    # Wen et al. eq. 4: delta c_j = sum_{y_i=j} (c_j - x_i) / (1 + n_j); c_j -= alpha * delta
    for j in range(4):
        members = [i for i in range(len(labels)) if labels[i] == j]
        delta = sum((centers[j] - feats[i].double() for i in members), torch.zeros(5).double())
        want_c = centers[j] - 0.5 * delta / (1 + len(members))
        torch.testing.assert_close(loss.centers[j].double(), want_c, rtol=1e-5, atol=1e-6)
    assert torch.equal(loss.centers[3], centers[3].float())
    assert "centers" in loss.state_dict() and not loss.centers.requires_grad
