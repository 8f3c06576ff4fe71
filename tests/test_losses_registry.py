"""The registry: options, errors, state round-trips and finite gradients on odd batches."""

from __future__ import annotations

import pytest
import torch

from mfr.errors import ConfigError
from mfr.losses import LOSSES, build_loss, loss_options

NAMES = list(LOSSES)


def test_registry_names_the_seven_losses():
    assert set(LOSSES) == {
        "softmax",
        "triplet",
        "center",
        "sphereface",
        "cosface",
        "arcface",
        "dcr",
    }


def test_documented_defaults():
    assert loss_options("cosface") == {"scale": 64.0, "margin": 0.35}
    assert loss_options("arcface") == {"scale": 64.0, "margin": 0.5, "easy_margin": False}
    assert loss_options("triplet")["margin"] == 0.3
    assert loss_options("center")["weight"] == 0.01
    sphere = loss_options("sphereface")
    assert (sphere["margin"], sphere["base"], sphere["lambda_min"]) == (4, 1000.0, 5.0)
    dcr = loss_options("dcr")
    assert (dcr["alpha_s"], dcr["alpha_c"], dcr["gamma"], dcr["beta"]) == (0.7, 0.5, 0.75, 0.5)
    assert dcr["use_single"] and dcr["use_cross"]


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("cosface", {"marign": 0.3}, "unknown option 'marign'"),
        ("dcr", {"alpha": 0.1}, "unknown option 'alpha'"),
        ("softmax", {"scale": 1.0}, "unknown option 'scale'"),
        ("arcface", {"scale": "64"}, "option 'scale' must be a number"),
        ("arcface", {"scale": 0}, "option 'scale' must be > 0"),
        ("dcr", {"beta": 1.5}, "option 'beta' must be in [0, 1]"),
        ("dcr", {"use_cross": "no"}, "option 'use_cross' must be true or false"),
        ("sphereface", {"margin": 2.5}, "option 'margin' must be an integer"),
        ("triplet", {"margin": -1}, "option 'margin' must be >= 0"),
        ("center", {"weight": float("nan")}, "option 'weight' must be finite"),
    ],
)
def test_bad_options_raise_config_error_naming_the_option(name, options, message):
    with pytest.raises(ConfigError) as err:
        build_loss(name, 4, 8, **options)
    assert message in str(err.value) and repr(name) in str(err.value)


def test_unknown_loss_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown loss 'focal'.*softmax.*dcr"):
        build_loss("focal", 4, 8)
    with pytest.raises(ConfigError, match="num_classes must be a positive integer"):
        build_loss("softmax", 0, 8)


def _batch(seed, n=12, classes=4, dim=8):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    return torch.randn(n, dim, generator=g), labels, (torch.arange(n) // (n // 2)) % 2


def _run(loss, net, opt, seeds):
    values = []
    for seed in seeds:
        x, labels, domains = _batch(seed)
        value = loss(net(x), labels, domains)
        opt.zero_grad()
        value.backward()
        opt.step()
        values.append(value.detach())
    return torch.stack(values)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_resume_is_bit_identical(name):
    def fresh():
        torch.manual_seed(1)
        net, loss = torch.nn.Linear(8, 8), build_loss(name, 4, 8)
        return net, loss, torch.optim.Adam([*net.parameters(), *loss.parameters()], lr=1e-2)

    net, loss, opt = fresh()
    straight = _run(loss, net, opt, range(6))
    final = {**net.state_dict(), **{f"loss.{k}": v for k, v in loss.state_dict().items()}}

    net, loss, opt = fresh()
    _run(loss, net, opt, range(3))
    saved = [m.state_dict() for m in (net, loss, opt)]
    saved = torch.load(_roundtrip(saved), weights_only=True)
    net, loss, opt = fresh()
    torch.manual_seed(123)  # a different RNG state must not matter
    build_loss(name, 4, 8)
    for module, state in zip((net, loss, opt), saved, strict=True):
        module.load_state_dict(state)
    resumed = _run(loss, net, opt, range(3, 6))
    assert torch.equal(resumed, straight[3:])
    got = {**net.state_dict(), **{f"loss.{k}": v for k, v in loss.state_dict().items()}}
    assert got.keys() == final.keys()
    assert all(torch.equal(got[k], final[k]) for k in final)


def _roundtrip(obj):
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return buffer


ODD_BATCHES = {
    "one-identity": (torch.zeros(6, dtype=torch.long), torch.tensor([0, 1, 0, 1, 0, 1])),
    "one-domain": (torch.tensor([0, 0, 1, 1, 2, 2]), torch.zeros(6, dtype=torch.long)),
    "one-sample": (torch.tensor([2]), torch.tensor([1])),
    "all-singletons": (torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 0, 1])),
}


@pytest.mark.parametrize("batch", list(ODD_BATCHES))
@pytest.mark.parametrize("name", NAMES)
def test_gradients_are_finite_on_degenerate_batches(name, batch):
    labels, domains = ODD_BATCHES[batch]
    loss = build_loss(name, 4, 8)
    for features in (torch.randn(len(labels), 8), torch.ones(len(labels), 8)):  # ones: ties
        for _ in range(2):  # the second call sees initialised centres
            x = features.clone().requires_grad_()
            value = loss(x, labels, domains)
            value.backward()
            assert torch.isfinite(value), (name, batch)
            assert torch.isfinite(x.grad).all(), (name, batch)
            grads = [p.grad for p in loss.parameters() if p.grad is not None]
            assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", NAMES)
def test_losses_run_under_bf16_autocast_with_float32_result(name):
    loss = build_loss(name, 4, 8)
    x, labels, domains = _batch(0)
    x.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(x @ torch.eye(8), labels, domains)  # bf16 features, as a backbone gives
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert torch.isfinite(x.grad).all()


def test_each_loss_carries_its_table_label_and_the_ranges_of_its_own_options():
    from mfr.experiments.cells import LOSS_LABELS

    assert LOSS_LABELS == {
        "softmax": "Softmax", "triplet": "Softmax+Triplet", "center": "Center Loss",
        "sphereface": "SphereFace", "cosface": "CosFace", "arcface": "ArcFace", "dcr": "DCR",
    }  # fmt: skip
    for name, loss in LOSSES.items():
        assert loss.label, name
        assert set(loss.option_ranges) <= set(loss_options(name)), name
