"""CosFace, ArcFace and SphereFace against naive per-sample formulas and pytorch-metric-learning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mfr.losses import build_loss

pml_losses = pytest.importorskip("pytorch_metric_learning.losses")


def _inputs(seed=0, n=10, dim=6, classes=5):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, dim, generator=g) * 3
    labels = torch.randint(0, classes, (n,), generator=g)
    return feats, labels, torch.zeros(n, dtype=torch.long)


def _naive_ce(logit_rows, labels):
    """Mean over samples of -log softmax(logits)[label], one sample at a time."""
    total = 0.0
    for row, y in zip(logit_rows, labels, strict=True):
        total = total - (row[int(y)] - torch.logsumexp(row, dim=0))
    return total / len(labels)


def _cosines(x, weight):
    """cos(theta_j) between one feature and every class weight."""
    return torch.stack([x @ w / (x.norm() * w.norm()) for w in weight])


def naive_cosface(feats, labels, weight, s=64.0, m=0.35):
    rows = []
    for x, y in zip(feats, labels, strict=True):
        cos = _cosines(x, weight)
        rows.append(torch.stack([s * (c - m) if j == int(y) else s * c for j, c in enumerate(cos)]))
    return _naive_ce(rows, labels)


def naive_arcface(feats, labels, weight, s=64.0, m=0.5):
    rows = []
    for x, y in zip(feats, labels, strict=True):
        cos = _cosines(x, weight)
        out = []
        for j, c in enumerate(cos):
            if j == int(y):
                theta = torch.acos(c)
                # insightface: cos(theta + m) while theta + m < pi, else cos(theta) - m sin(m)
                c = torch.cos(theta + m) if theta + m < math.pi else c - m * math.sin(m)
            out.append(s * c)
        rows.append(torch.stack(out))
    return _naive_ce(rows, labels)


def naive_sphereface(feats, labels, weight, lam, m=4):
    rows = []
    for x, y in zip(feats, labels, strict=True):
        cos = _cosines(x, weight)
        out = []
        for j, c in enumerate(cos):
            if j == int(y):
                theta = torch.acos(c)
                k = math.floor(theta.item() * m / math.pi)
                psi = (-1) ** k * torch.cos(m * theta) - 2 * k
                c = (lam * c + psi) / (1 + lam)
            out.append(x.norm() * c)
        rows.append(torch.stack(out))
    return _naive_ce(rows, labels)


def _compare(module, naive_value, feats, labels, domains):
    x = feats.clone().requires_grad_()
    got = module(x, labels, domains)
    got.backward()
    xd = feats.double().requires_grad_()
    want = naive_value(xd)
    want.backward()
    torch.testing.assert_close(got.double(), want.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad.double(), xd.grad, rtol=1e-4, atol=1e-6)


def test_cosface_matches_naive_formula():
    feats, labels, domains = _inputs()
    loss = build_loss("cosface", 5, 6)
    w = loss.fc.weight.detach().double()
    _compare(loss, lambda x: naive_cosface(x, labels, w), feats, labels, domains)


@pytest.mark.parametrize("margin", [0.5, 2.0], ids=["m0.5", "m2.0-threshold-branch"])
def test_arcface_matches_naive_formula(margin):
    feats, labels, domains = _inputs(1)
    loss = build_loss("arcface", 5, 6, margin=margin)
    w = loss.fc.weight.detach().double()
    _compare(loss, lambda x: naive_arcface(x, labels, w, m=margin), feats, labels, domains)


def test_arcface_easy_margin_only_touches_positive_cosines():
    feats, labels, _ = _inputs(2)
    loss = build_loss("arcface", 5, 6, easy_margin=True, scale=1.0)
    cos = loss.fc(feats).detach()
    want = cos.clone()
    for i, y in enumerate(labels.tolist()):
        c = float(cos[i, y])
        want[i, y] = math.cos(math.acos(c) + 0.5) if c > 0 else c
    got = torch.nn.functional.cross_entropy(want, labels)
    torch.testing.assert_close(loss(feats, labels), got, rtol=1e-5, atol=1e-6)


def test_sphereface_matches_naive_formula_and_anneals_lambda_per_training_call():
    feats, labels, domains = _inputs(3)
    loss = build_loss("sphereface", 5, 6)
    w = loss.fc.weight.detach().double()
    for it in range(1, 4):  # Caffe margin_inner_product: it is incremented before use
        lam = max(5.0, 1000.0 * (1 + 0.12 * it) ** -1.0)
        _compare(
            loss, lambda x, lam=lam: naive_sphereface(x, labels, w, lam), feats, labels, domains
        )
        assert int(loss.iteration) == it
    assert float(loss.current_lambda()) == pytest.approx(1000 / (1 + 0.12 * 3))
    loss.iteration.fill_(10_000)
    assert float(loss.current_lambda()) == 5.0
    loss.eval()
    loss(feats, labels)
    assert int(loss.iteration) == 10_000


def _pml_weight(module):
    return module.fc.weight.detach().t().clone()


@pytest.mark.parametrize("name", ["cosface", "arcface"])
def test_cosface_and_arcface_match_pytorch_metric_learning(name):
    feats, labels, domains = _inputs(4, n=16, dim=8, classes=6)
    ours = build_loss(name, 6, 8)
    if name == "cosface":
        oracle = pml_losses.CosFaceLoss(6, 8, margin=0.35, scale=64)
    else:  # pml takes the ArcFace margin in degrees
        oracle = pml_losses.ArcFaceLoss(6, 8, margin=float(np.degrees(0.5)), scale=64)
    oracle.W.data = _pml_weight(ours)
    x1, x2 = feats.clone().requires_grad_(), feats.clone().requires_grad_()
    got, want = ours(x1, labels, domains), oracle(x2, labels)
    got.backward()
    want.backward()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-6)


def test_sphereface_without_lambda_matches_pytorch_metric_learning():
    feats, labels, domains = _inputs(5, n=16, dim=8, classes=6)
    ours = build_loss("sphereface", 6, 8, base=0.0, lambda_min=0.0)
    oracle = pml_losses.SphereFaceLoss(6, 8, margin=4, scale=1)
    oracle.W.data = _pml_weight(ours)
    x1, x2 = feats.clone().requires_grad_(), feats.clone().requires_grad_()
    got, want = ours(x1, labels, domains), oracle(x2, labels)
    got.backward()
    want.backward()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["cosface", "arcface", "sphereface"])
def test_margin_logits_are_scaled_cosines_without_margin(name):
    feats, labels, _ = _inputs(6)
    loss = build_loss(name, 5, 6)
    cos = loss.fc(feats)
    scale = feats.norm(dim=1, keepdim=True) if name == "sphereface" else 64.0
    torch.testing.assert_close(loss.logits(feats), scale * cos)
