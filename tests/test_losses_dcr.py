"""DCR against a literal, loop-by-loop reading of the paper's eqs. 8-12 and the design contract."""

from __future__ import annotations

import pytest
import torch

from mfr.losses import DCRLoss, build_loss


class NaiveDCR:
    """Eqs. 8-12 with Python loops over samples and a dict of centres {(identity, domain): C}."""

    def __init__(self, alpha_s=0.7, alpha_c=0.5, gamma=0.75, beta=0.5, single=True, cross=True):
        self.alpha_s, self.alpha_c, self.gamma, self.beta = alpha_s, alpha_c, gamma, beta
        self.single, self.cross = single, cross
        self.centers: dict[tuple[int, int], torch.Tensor] = {}

    def __call__(self, features, labels, domains):
        n = features.shape[0]
        f = [features[i] / features[i].norm() for i in range(n)]
        lab = [int(v) for v in labels]
        dom = [int(v) for v in domains]
        groups: dict[tuple[int, int], list[int]] = {}
        for i in range(n):
            groups.setdefault((lab[i], dom[i]), []).append(i)

        def batch_mean(idx):
            return sum(f[i].detach() for i in idx) / len(idx)

        # (1) centres never seen before start at the batch mean of their identity and domain.
        for key, idx in groups.items():
            if key not in self.centers:
                self.centers[key] = batch_mean(idx)
        C = self.centers

        # (2) eqs. 8-11, one sample at a time.
        total = features.new_zeros(())
        for i in range(n):
            li, xi = lab[i], dom[i]
            ls = features.new_zeros(())
            negatives = [j for j in range(n) if dom[j] == xi and lab[j] != li]
            if self.single and negatives:
                d_intra = (C[li, xi] - f[i]).norm()
                d_inter = min((C[li, xi] - f[j]).norm() for j in negatives)
                ls = torch.clamp(d_intra + self.alpha_s - d_inter, min=0)
            lc = features.new_zeros(())
            positives = [j for j in range(n) if lab[j] == li and dom[j] != xi]
            others = sorted({lab[j] for j in range(n) if lab[j] != li and (lab[j], xi) in C})
            if self.cross and positives and others:
                d_intra = max((f[i] - f[j]).norm() for j in positives)
                d_inter = min((f[i] - C[m, xi]).norm() for m in others)
                lc = torch.clamp(d_intra + self.alpha_c - d_inter, min=0)
            total = total + ls + self.gamma * lc
        loss = total / n

        # (3) eq. 12 for every centre seen in the batch.
        for key, idx in groups.items():
            C[key] = self.beta * C[key] + (1 - self.beta) * batch_mean(idx)
        return loss


def _batches(rng: torch.Generator, dim: int):
    """Consecutive batches whose identities and domains overlap in every way the contract names."""
    spec = [
        # identities 0-2 full, 0-1 masked
        ([0, 0, 1, 1, 2, 2, 0, 1], [0, 0, 0, 0, 0, 0, 1, 1]),
        # 0 both domains; 3 full only (new); 2 masked only (has a full centre from batch 1);
        # 4 masked only (new)
        ([0, 0, 3, 3, 2, 4, 4, 0], [0, 1, 0, 0, 1, 1, 1, 1]),
        # 5 new in both domains, 1 again, 3 now masked
        ([5, 5, 5, 1, 1, 3, 3, 2, 4], [0, 1, 1, 0, 1, 1, 0, 0, 0]),
        # repeat of 0 and 1 only
        ([0, 1, 0, 1, 0, 1], [0, 0, 1, 1, 1, 0]),
    ]
    for labels, domains in spec:
        feats = torch.randn(len(labels), dim, generator=rng) * 2.0
        yield feats, torch.tensor(labels), torch.tensor(domains)


@pytest.mark.parametrize(
    ("single", "cross"), [(True, True), (True, False), (False, True)], ids=["both", "Ls", "Lc"]
)
def test_dcr_matches_literal_equations_over_consecutive_calls(single, cross):
    rng = torch.Generator().manual_seed(0)
    dim, params = 3, dict(alpha_s=0.7, alpha_c=0.5, gamma=0.75, beta=0.5)
    fast = DCRLoss(6, dim, **params, use_single=single, use_cross=cross)
    naive = NaiveDCR(**params, single=single, cross=cross)
    active = 0
    for feats, labels, domains in _batches(rng, dim):
        x_fast = feats.clone().requires_grad_()
        x_naive = feats.double().requires_grad_()
        got = fast(x_fast, labels, domains)
        want = naive(x_naive, labels, domains)
        got.backward()
        want.backward()
        torch.testing.assert_close(got.double(), want.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(x_fast.grad.double(), x_naive.grad, rtol=1e-4, atol=1e-6)
        active += int((x_naive.grad.abs().sum(1) > 0).sum())
        # centres and flags after the eq. 12 update
        for (ident, dom), centre in naive.centers.items():
            torch.testing.assert_close(fast.centers[ident, dom].double(), centre, atol=1e-6, rtol=0)
        want_flags = torch.zeros(6, 2, dtype=torch.bool)
        for ident, dom in naive.centers:
            want_flags[ident, dom] = True
        assert torch.equal(fast.initialized, want_flags)
    assert active > 0  # the hinges were active somewhere, so the comparison had teeth


def test_dcr_hand_worked_example():
    # A full (1,0), A masked (0,1), B full (0,1), B masked (1,0); centres = the features.
    # Single: |C - f_i| = 0, nearest other identity sqrt(2) > 0.7 -> 0.
    # Cross for every sample: farthest other-domain twin sqrt(2) + 0.5 - nearest other-identity
    # same-domain centre sqrt(2) = 0.5; total = mean(0.75 * 0.5) = 0.375.
    feats = torch.tensor([[1.0, 0], [0, 1], [0, 1], [1, 0]])
    labels, domains = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])
    loss = DCRLoss(2, 2)
    assert loss(feats, labels, domains).item() == pytest.approx(0.375, abs=1e-6)
    assert loss(feats * 5, labels, domains).item() == pytest.approx(0.375, abs=1e-6)


def test_dcr_centre_initialisation_then_eq12_momentum():
    loss = DCRLoss(3, 2, beta=0.5)
    labels, domains = torch.tensor([1, 1, 1]), torch.tensor([1, 1, 0])
    first = torch.tensor([[3.0, 0], [0, 4.0], [0, 2.0]])
    loss(first, labels, domains)
    mean1 = torch.tensor([0.5, 0.5])  # mean of (1,0) and (0,1), after normalisation
    # init to the batch mean, then beta*mean + (1-beta)*mean = mean
    torch.testing.assert_close(loss.masked_centers[1], mean1)
    torch.testing.assert_close(loss.full_centers[1], torch.tensor([0.0, 1.0]))
    assert loss.initialized.tolist() == [[False, False], [True, True], [False, False]]
    second = torch.tensor([[-1.0, 0], [-2.0, 0], [1.0, 0]])
    loss(second, labels, domains)
    torch.testing.assert_close(loss.masked_centers[1], 0.5 * mean1 + 0.5 * torch.tensor([-1.0, 0]))
    torch.testing.assert_close(loss.full_centers[1], torch.tensor([0.5, 0.5]))
    assert torch.equal(loss.centers[[0, 2]], torch.zeros(2, 2, 2))


def test_dcr_centres_are_buffers_without_gradient_and_frozen_in_eval():
    loss = DCRLoss(4, 3)
    assert list(loss.parameters()) == []
    assert {"centers", "initialized"} <= set(loss.state_dict())
    feats = torch.randn(6, 3, requires_grad=True)
    labels, domains = torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([0, 1, 0, 1, 0, 1])
    loss(feats, labels, domains).backward()
    assert not loss.centers.requires_grad
    before = loss.state_dict()
    before = {k: v.clone() for k, v in before.items()}
    loss.eval()
    loss(torch.randn(6, 3), labels, domains)
    for key, value in loss.state_dict().items():
        assert torch.equal(value, before[key])


def test_dcr_degenerate_batches_give_zero_terms_and_finite_gradients():
    loss = DCRLoss(3, 4)
    # one identity, both domains: no negatives for Ls, no other-identity centre for Lc
    feats = torch.randn(4, 4, requires_grad=True)
    value = loss(feats, torch.zeros(4, dtype=torch.long), torch.tensor([0, 1, 0, 1]))
    value.backward()
    assert value.item() == 0.0 and torch.isfinite(feats.grad).all()
    # one domain only: the cross term is 0, so the result equals the single-domain ablation
    feats = torch.randn(6, 4)
    labels, domains = torch.tensor([0, 0, 1, 1, 2, 2]), torch.zeros(6, dtype=torch.long)
    both, single_only = DCRLoss(3, 4), DCRLoss(3, 4, use_cross=False)
    assert both(feats, labels, domains).item() == single_only(feats, labels, domains).item()
    # duplicated features (zero distances) keep gradients finite
    feats = torch.ones(4, 4, requires_grad=True)
    value = DCRLoss(2, 4)(feats, torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1]))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(feats.grad).all()


def test_softmax_dcr_is_cross_entropy_plus_weighted_dcr_and_needs_both_domains():
    torch.manual_seed(0)
    joint = build_loss("dcr", 3, 4, weight=0.5, alpha_s=0.6)
    assert joint.requires_both_domains and DCRLoss.requires_both_domains
    assert not build_loss("softmax", 3, 4).requires_both_domains
    feats = torch.randn(6, 4)
    labels, domains = torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([0, 1, 0, 1, 0, 1])
    reference = DCRLoss(3, 4, alpha_s=0.6)
    ce = torch.nn.functional.cross_entropy(joint.softmax.fc(feats), labels)
    want = ce + 0.5 * reference(feats, labels, domains)
    torch.testing.assert_close(joint(feats, labels, domains), want)
    # a batch with no masked sample still works (cross term 0)
    assert torch.isfinite(joint(feats, labels, torch.zeros(6, dtype=torch.long)))
