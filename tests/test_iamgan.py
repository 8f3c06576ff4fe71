"""IAMGAN: loss terms vs eqs. 1-7, what each optimiser may touch, schedules, pool, resume."""

import copy

import pytest
import torch
from _iamgan_data import make_full_faces, make_masked_faces

from mfr.nets.unet import MaskSegmenter
from mfr.train.iamgan import (
    GanOptions,
    IAMGANModel,
    cls_loss,
    cycle_loss,
    lambda_ip_at,
    lr_at,
    lsgan_d_loss,
    lsgan_g_loss,
    rec_loss,
)
from mfr.train.image_pool import ImagePool


def tiny_opts(**kw) -> GanOptions:
    base = dict(
        size=16,
        ngf=4,
        n_blocks=1,
        ndf=4,
        d_layers=2,
        steps=10,
        batch_size=2,
        classifier_width=8,
        classifier_dim=8,
        pool_size=3,
        threads=1,
    )
    base.update(kw)
    return GanOptions(**base)


def tiny_model(variant="full", **kw) -> IAMGANModel:
    torch.manual_seed(0)
    seg = MaskSegmenter(size=16, base=4, depth=2)
    model = IAMGANModel(tiny_opts(variant=variant, **kw), num_classes=3, segmenter=seg)
    f, m = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    model.set_input(f, torch.tensor([0, 2]), m)
    return model


def snapshot(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------- loss terms vs the equations


def test_lsgan_terms_match_the_least_squares_formulas():
    real, fake = torch.tensor([[0.2, 1.5], [0.9, -0.3]]), torch.tensor([[0.1, -0.4], [2.0, 0.5]])
    d_naive = 0.5 * (
        sum((x - 1) ** 2 for x in real.ravel()) / 4 + sum(x**2 for x in fake.ravel()) / 4
    )
    g_naive = sum((x - 1) ** 2 for x in fake.ravel()) / 4
    assert lsgan_d_loss(real, fake).item() == pytest.approx(float(d_naive))
    assert lsgan_g_loss(fake).item() == pytest.approx(float(g_naive))


def test_cycle_and_rec_losses_are_masked_l1_means(rng):
    f, fm = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    keep = (torch.rand(2, 1, 4, 4) > 0.5).float()
    total = 0.0
    for n in range(2):
        for c in range(3):
            for y in range(4):
                for x in range(4):
                    s = keep[n, 0, y, x].item()
                    total += abs(f[n, c, y, x].item() * s - fm[n, c, y, x].item() * s)
    assert rec_loss(f, fm, keep).item() == pytest.approx(total / 96, rel=1e-5)
    assert cycle_loss(fm, f).item() == pytest.approx((fm - f).abs().sum().item() / 96, rel=1e-5)


def test_cls_loss_is_cross_entropy_of_c_on_the_out_of_mask_region():
    torch.manual_seed(0)
    c = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    x, keep = torch.randn(2, 3, 4, 4), (torch.rand(2, 1, 4, 4) > 0.5).float()
    labels = torch.tensor([1, 4])
    probs = torch.softmax(c(x * keep), 1)
    naive = -(probs[0, 1].log() + probs[1, 4].log()) / 2
    assert cls_loss(c, x, keep, labels).item() == pytest.approx(naive.item(), rel=1e-5)


def test_generator_loss_is_eq_7_recomputed_from_the_networks():
    model = tiny_model()
    model.forward()
    lam = 0.37
    got = model.generator_loss(lam)
    f, m, fm = model.real_F, model.real_M, model.fake_M
    keep = model.S.keep_map(fm)  # S(f_m): 0 on the mask, 1 elsewhere
    l_mfg = (
        ((model.D_M(fm) - 1) ** 2).mean()
        + ((model.D_F(model.G_MF(m)) - 1) ** 2).mean()
        + 10 * ((model.G_MF(fm) - f).abs().mean() + (model.G_FM(model.G_MF(m)) - m).abs().mean())
    )
    l_cls_g = torch.nn.functional.cross_entropy(model.C(fm * keep), model.labels)
    l_rec = (f * keep - fm * keep).abs().mean()
    assert got.item() == pytest.approx((l_mfg + lam * (l_cls_g + l_rec)).item(), rel=1e-5)


def test_bf16_generator_loss_stays_close_to_fp32_and_keeps_images_fp32(monkeypatch):
    # exercise the bf16 path even on a CPU without native bf16 (mfr falls back there)
    monkeypatch.setattr("mfr.train.precision.native_bf16", lambda device: True)
    fp32, bf16 = tiny_model(), tiny_model(bf16=True)
    bf16.G_FM.load_state_dict(fp32.G_FM.state_dict())
    bf16.G_MF.load_state_dict(fp32.G_MF.state_dict())
    for model in (fp32, bf16):
        model.forward()
    assert bf16.fake_M.dtype == bf16.keep.dtype == torch.float32
    with fp32.autocast():
        expected = fp32.generator_loss(1.0)
    with bf16.autocast():
        got = bf16.generator_loss(1.0)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(expected.item(), rel=0.05)
    before = snapshot(bf16.S)
    losses = bf16.optimize_parameters(5)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert same(before, snapshot(bf16.S))


@pytest.mark.parametrize(
    "variant, terms", [("no_ip", set()), ("no_rec", {"cls_G"}), ("no_cls", {"rec"})]
)
def test_ablation_variants_drop_their_terms(variant, terms):
    model = tiny_model(variant)
    model.forward()
    model.generator_loss(1.0)
    assert {"cls_G", "rec"} & set(model.losses) == terms
    assert (model.C is None) == (variant in ("no_ip", "no_cls"))


# ----------------------------------------------------------------- who may change what


def test_segmenter_gets_no_gradient_and_never_changes():
    model = tiny_model()
    before = snapshot(model.S)
    for step in range(3):
        model.optimize_parameters(step + 5)  # lambda2 > 0
    assert same(before, snapshot(model.S))
    assert all(p.grad is None and not p.requires_grad for p in model.S.parameters())
    assert not model.S.training
    s_params = {id(p) for p in model.S.parameters()}
    for opt in (model.optimizer_G, model.optimizer_D, model.optimizer_C):
        assert not s_params & {id(p) for g in opt.param_groups for p in g["params"]}


def test_generator_step_leaves_c_unchanged_and_gives_it_no_gradient():
    model = tiny_model()
    model.forward()
    c_before, g_before = snapshot(model.C), snapshot(model.G_FM)
    model.optimize_generators(lambda_ip=1.0)
    assert same(c_before, snapshot(model.C))
    assert all(p.grad is None for p in model.C.parameters())
    assert len(model.optimizer_C.state) == 0  # no Adam moments from L_cls^G
    assert not same(g_before, snapshot(model.G_FM))


def test_c_learns_from_l_cls_c_only_and_sends_nothing_to_the_generators():
    model = tiny_model()
    model.forward()
    expected = torch.autograd.grad(
        cls_loss(model.C, model.real_F, model.keep, model.labels), list(model.C.parameters())
    )
    model.optimizer_G.zero_grad(set_to_none=True)
    g_before = snapshot(model.G_FM)
    model.optimize_classifier()
    for p, g in zip(model.C.parameters(), expected, strict=True):
        assert torch.allclose(p.grad, g, atol=1e-7)
    assert all(p.grad is None for p in model.G_FM.parameters())
    assert same(g_before, snapshot(model.G_FM))


def test_generator_gradient_is_that_of_the_generator_loss_alone():
    model = tiny_model()
    reference = copy.deepcopy(model)
    model.forward()
    reference.forward()
    params = list(reference.G_FM.parameters()) + list(reference.G_MF.parameters())
    expected = torch.autograd.grad(reference.generator_loss(0.5), params, allow_unused=True)
    model.optimize_generators(0.5)
    got = list(model.G_FM.parameters()) + list(model.G_MF.parameters())
    for p, g in zip(got, expected, strict=True):
        assert torch.allclose(p.grad, g, atol=1e-6)


def test_discriminator_step_touches_only_the_discriminators():
    model = tiny_model()
    model.forward()
    g_before, c_before, d_before = snapshot(model.G_FM), snapshot(model.C), snapshot(model.D_M)
    model.optimize_discriminators()
    assert same(g_before, snapshot(model.G_FM)) and same(c_before, snapshot(model.C))
    assert not same(d_before, snapshot(model.D_M))


# ----------------------------------------------------------------- schedules and the pool


def test_lambda2_ramps_linearly_over_the_first_fifth():
    opts = GanOptions(steps=500_000)
    assert lambda_ip_at(0, opts) == 0.0
    assert lambda_ip_at(50_000, opts) == pytest.approx(0.5)
    assert lambda_ip_at(100_000, opts) == 1.0
    assert lambda_ip_at(400_000, opts) == 1.0


def test_learning_rate_is_constant_then_decays_linearly_to_zero_after_70_percent():
    opts = GanOptions(steps=500_000, lr=2e-4)
    assert lr_at(0, opts) == lr_at(349_999, opts) == 2e-4
    assert lr_at(350_000, opts) == pytest.approx(2e-4)
    assert lr_at(425_000, opts) == pytest.approx(1e-4)
    assert lr_at(500_000, opts) == 0.0
    model = tiny_model()
    model.optimize_parameters(9)  # steps=10: decay starts at 7, lr(9) = lr * 1/3
    assert model.optimizer_G.param_groups[0]["lr"] == pytest.approx(2e-4 / 3)
    assert model.optimizer_C.param_groups[0]["lr"] == pytest.approx(2e-4 / 3)


def test_image_pool_fills_then_swaps_and_restores_its_state():
    pool = ImagePool(size=2, seed=0)
    a, b = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    assert torch.equal(pool.query(torch.cat([a, b])), torch.cat([a, b]))
    state = pool.state_dict()
    clone = ImagePool(size=2, seed=99)
    clone.load_state_dict(state)
    batch = torch.full((4, 1, 2, 2), 7.0)
    out1, out2 = pool.query(batch), clone.query(batch)
    assert torch.equal(out1, out2)
    assert all(float(x.max()) in (0.0, 1.0, 7.0) for x in out1)
    assert ImagePool(size=0).query(batch) is batch


# ----------------------------------------------------------------- resume


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    from mfr.train.gan_run import train_gan
    from mfr.train.segmenter import save_segmenter

    torch.manual_seed(0)
    seg_path = tmp_path / "seg.pt"
    save_segmenter(MaskSegmenter(size=16, base=4, depth=2), seg_path)
    full = make_full_faces(tmp_path / "full")
    masked = make_masked_faces(tmp_path / "masked")
    common = dict(
        steps=6,
        segmenter=str(seg_path),
        f_root=str(full),
        f_exclude="",
        m_root=str(masked),
        sample_every=2,
        checkpoint_every=100,
        log_every=1,
    )
    straight = train_gan(tiny_opts(**common, out=str(tmp_path / "a")), progress=False)
    train_gan(tiny_opts(**common, out=str(tmp_path / "b")), progress=False, stop_at=3)
    resumed = train_gan(tiny_opts(**common, out=str(tmp_path / "b")), resume=True, progress=False)
    a, b = straight["model"].state_dict(), resumed["model"].state_dict()
    for name in ("G_FM", "G_MF", "D_F", "D_M", "C"):
        assert same(a[name], b[name]), name
    assert straight["history"] == resumed["history"]
    assert (tmp_path / "b" / "samples" / "step_0000006.png").is_file()


def test_classifier_can_be_a_recognizer_backbone_and_stays_fixed_in_the_generator_step():
    model = tiny_model(classifier="resnet_tiny")
    assert type(model.C).__name__ == "BackboneClassifier"
    model.forward()
    before = snapshot(model.C)  # includes batch-norm running statistics
    model.optimize_generators(1.0)
    assert same(before, snapshot(model.C))
    model.optimize_classifier()
    assert not same(before, snapshot(model.C))
