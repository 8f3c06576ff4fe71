"""`mfr train` end to end on a tiny self-made dataset: outputs, resume, clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from _train_data import make_dataset, tiny_overrides

from mfr.cli import main
from mfr.embedders.checkpoint import load_embedding_model, read_checkpoint
from mfr.errors import CheckpointError, ConfigError, MfrError
from mfr.train.config import TrainConfig, apply_overrides
from mfr.train.recognizer import train


def _cli(data, out, *extra, **options) -> int:
    args = ["train", "--out", str(out)]
    for item in tiny_overrides(data, **options):
        args += ["--set", item]
    return run_cli(args + list(extra))


def run_cli(args: list[str]) -> int:
    """``mfr ARGS`` -> exit status."""
    return main(args)


def _config(data, **options) -> TrainConfig:
    return apply_overrides(TrainConfig(), tiny_overrides(data, **options))


def test_cli_trains_and_writes_metrics_and_checkpoints(tmp_path, capsys):
    data = make_dataset(tmp_path / "data")
    assert _cli(data, tmp_path / "run", loss="dcr") == 0
    records = [
        json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in records] == [2, 4, 6]
    assert all(r["loss"] > 0 and r["images_per_s"] > 0 for r in records)
    final = read_checkpoint(tmp_path / "run/final.pt")
    assert final["format"] == "mfr-recognizer" and final["step"] == 6
    assert (final["backbone"], final["embedding_dim"], final["input_size"]) == (
        "resnet_tiny",
        16,
        16,
    )
    assert final["loss"] == "dcr" and "centers" in str(list(final["loss_state"]))
    assert final["config"]["steps"] == 6 and final["num_classes"] == 6
    assert (tmp_path / "run/last.pt").is_file()
    assert "done: 6 steps" in capsys.readouterr().out


def test_learning_rate_drops_tenfold_after_half_and_three_quarters_of_steps(tmp_path):
    data = make_dataset(tmp_path / "data")
    train(_config(data, steps=8, log_every=1, checkpoint_every=0), tmp_path / "run", log=print)
    lrs = [json.loads(x)["lr"] for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert lrs == pytest.approx([1e-3] * 4 + [1e-4] * 2 + [1e-5] * 2)


def test_resume_after_interruption_is_bit_identical(tmp_path):
    data = make_dataset(tmp_path / "data")
    config = _config(data, loss="dcr", steps=6, flip=0.5, dropout=0.3)
    train(config, tmp_path / "straight", log=lambda _: None)
    train(config, tmp_path / "split", log=lambda _: None, stop_at=3)
    assert read_checkpoint(tmp_path / "split/last.pt")["step"] == 3
    assert not (tmp_path / "split/final.pt").exists()
    train(config, tmp_path / "split", resume=True, log=lambda _: None)
    a = read_checkpoint(tmp_path / "straight/final.pt")
    b = read_checkpoint(tmp_path / "split/final.pt")
    for part in ("model", "loss_state"):
        assert a[part].keys() == b[part].keys()
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key} differs"
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])


def test_cli_refuses_to_overwrite_a_run_without_resume(tmp_path):
    data = make_dataset(tmp_path / "data")
    assert _cli(data, tmp_path / "run", steps=2) == 0
    assert _cli(data, tmp_path / "run", steps=2) == 2


def test_resume_with_another_backbone_names_the_checkpoint(tmp_path):
    data = make_dataset(tmp_path / "data")
    train(_config(data, steps=2), tmp_path / "run", log=lambda _: None)
    with pytest.raises(CheckpointError, match=r"last\.pt: checkpoint has backbone 'resnet_tiny'"):
        train(_config(data, steps=4, backbone="resnet18"), tmp_path / "run", resume=True)


def test_one_identity_is_a_clear_error(tmp_path, capsys):
    data = make_dataset(tmp_path / "data", identities=1)
    assert _cli(data, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert "mfr: error:" in err and "at least 2 identities, found 1" in err


def test_dcr_without_masked_images_is_a_clear_error(tmp_path):
    data = make_dataset(tmp_path / "data", masked=0)
    with pytest.raises(MfrError, match="loss 'dcr' needs masked images"):
        train(_config(data, loss="dcr"), tmp_path / "run")
    with pytest.raises(MfrError, match="domains: full drops them"):
        train(_config(make_dataset(tmp_path / "d2"), loss="dcr", domains="full"), tmp_path / "r")


def test_exclude_list_and_full_domain_filter(tmp_path):
    data = make_dataset(tmp_path / "data", identities=6)
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("# leakage guard\nperson_00\nperson_01  # also\n\n")
    train(_config(data, exclude=str(exclude), domains="full", steps=2), tmp_path / "run")
    checkpoint = read_checkpoint(tmp_path / "run/final.pt")
    assert checkpoint["classes"] == [f"person_{i:02d}" for i in range(2, 6)]


def test_softmax_training_learns_the_tiny_identities(tmp_path):
    data = make_dataset(tmp_path / "data", identities=4, per_identity=6)
    config = _config(data, p=4, k=3, steps=20, log_every=20, checkpoint_every=0, lr=1e-2)
    last = train(config, tmp_path / "run", log=lambda _: None)
    assert last["train_accuracy"] >= 0.75  # chance is 0.25


def test_embedding_model_from_checkpoint_embeds_and_matches_training_net(tmp_path):
    data = make_dataset(tmp_path / "data")
    train(_config(data, steps=2), tmp_path / "run", log=lambda _: None)
    model, meta = load_embedding_model(tmp_path / "run/final.pt")
    assert not model.training
    assert meta["backbone"] == "resnet_tiny" and meta["input_size"] == 16
    assert meta["threshold"] is None and meta["config"]["steps"] == 2
    out = model(torch.zeros(2, 3, 16, 16))
    assert out.shape == (2, 16)


def test_periodic_validation_runs_mfr_eval_and_logs_its_figures(tmp_path):
    data = make_dataset(tmp_path / "data")
    val = make_dataset(tmp_path / "val", identities=4, per_identity=3, seed=1)
    config = _config(data, steps=4, val_data=str(val), val_every=2)
    train(config, tmp_path / "run", log=lambda _: None)
    lines = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    vals = [r for r in lines if "val" in r]
    assert [r["step"] for r in vals] == [2, 4]
    assert 0 <= vals[-1]["val"]["rank1"] <= 100 and vals[-1]["val"]["num_probes"] == 8
    assert (tmp_path / "run/val/step-4.json").is_file()


def test_unreadable_training_image_is_replaced_with_a_warning_naming_it(tmp_path):
    import numpy as np

    from mfr.data.loader import FaceImageDataset

    data = make_dataset(tmp_path / "data", identities=2, per_identity=2, masked=0)
    bad = data / "person_00" / "0.png"
    bad.write_bytes(b"broken")
    paths = sorted(data.rglob("*.png"))
    labels = np.array([0 if "person_00" in str(p) else 1 for p in paths])
    dataset = FaceImageDataset(paths, labels, np.zeros(len(paths), np.uint8), 16)
    with pytest.warns(UserWarning, match=r"0\.png"):
        image, label, _ = dataset[(paths.index(bad), False)]
    assert image.shape == (3, 16, 16) and label == 0
    (data / "person_00" / "1.png").write_bytes(b"")
    with pytest.raises(MfrError, match="no readable image"), pytest.warns(UserWarning):
        dataset[paths.index(bad)]


def test_resume_drops_metrics_logged_after_the_checkpoint(tmp_path):
    data = make_dataset(tmp_path / "data")
    config = _config(data, steps=6, log_every=1, checkpoint_every=2)
    train(config, tmp_path / "run", log=lambda _: None)
    # pretend the run died after logging step 5 with last.pt from step 4
    from mfr.train.checkpoint import save_checkpoint

    state = read_checkpoint(tmp_path / "run/last.pt")
    state["step"] = 4
    save_checkpoint(tmp_path / "run/last.pt", **{k: v for k, v in state.items() if k != "format"})
    train(config, tmp_path / "run", resume=True, log=lambda _: None)
    steps = [
        json.loads(x)["step"] for x in (tmp_path / "run/metrics.jsonl").read_text().split("\n") if x
    ]
    assert steps == [1, 2, 3, 4, 5, 6]


def _states(path):
    checkpoint = read_checkpoint(path)
    return checkpoint["model"], checkpoint["loss_state"]


def test_head_warmup_leaves_the_backbone_unchanged_then_fine_tunes_it(tmp_path):
    data = make_dataset(tmp_path / "data")
    init = tmp_path / "init"
    train(_config(data, steps=2, checkpoint_every=0), init, log=lambda _: None)
    options = dict(init=str(init / "final.pt"), steps=6, head_warmup_steps=3, head_lr=1e-2)
    config = _config(data, checkpoint_every=0, **options)
    start_backbone, _ = _states(init / "final.pt")
    train(config, tmp_path / "early", log=lambda _: None, stop_at=1)
    train(config, tmp_path / "warm", log=lambda _: None, stop_at=3)
    early_backbone, early_head = _states(tmp_path / "early/last.pt")
    warm_backbone, warm_head = _states(tmp_path / "warm/last.pt")
    for key, value in start_backbone.items():  # weights and BatchNorm buffers alike
        assert torch.equal(value, early_backbone[key]), f"backbone {key} changed at step 1"
        assert torch.equal(value, warm_backbone[key]), f"backbone {key} changed in warm-up"
    assert not torch.equal(warm_head["fc.weight"], early_head["fc.weight"])  # the head learns
    train(config, tmp_path / "warm", resume=True, log=lambda _: None)
    tuned_backbone, _ = _states(tmp_path / "warm/final.pt")
    changed = [k for k in start_backbone if not torch.equal(start_backbone[k], tuned_backbone[k])]
    assert changed, "the backbone never trained after the warm-up"


def test_head_lr_is_the_learning_rate_of_the_loss_parameters_only(tmp_path):
    data = make_dataset(tmp_path / "data")
    config = _config(data, steps=2, log_every=1, checkpoint_every=0, head_lr=0.5)
    train(config, tmp_path / "run", log=lambda _: None)
    optimizer = read_checkpoint(tmp_path / "run/final.pt")["optimizer"]
    backbone_group, head_group = optimizer["param_groups"]
    assert (backbone_group["initial_lr"], head_group["initial_lr"]) == (1e-3, 0.5)
    assert head_group["lr"] / backbone_group["lr"] == pytest.approx(500)  # both decay alike
    loss_state = read_checkpoint(tmp_path / "run/final.pt")["loss_state"]
    assert len(head_group["params"]) == sum(1 for k in loss_state if k.startswith("fc."))


def test_grad_clip_bounds_the_global_gradient_norm_at_every_optimizer_step(tmp_path, monkeypatch):
    data = make_dataset(tmp_path / "data")
    seen = []
    original_step = torch.optim.Adam.step

    def recording_step(self, *args, **kwargs):
        grads = [p.grad for group in self.param_groups for p in group["params"]
                 if p.grad is not None]  # fmt: skip
        seen.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    train(_config(data, steps=3, checkpoint_every=0), tmp_path / "free", log=lambda _: None)
    unclipped, seen[:] = list(seen), []
    limit = min(unclipped) / 10
    train(_config(data, steps=3, checkpoint_every=0, grad_clip=limit), tmp_path / "clipped",
          log=lambda _: None)  # fmt: skip
    assert len(seen) == 3 and all(norm <= limit * 1.001 for norm in seen)
    assert seen[0] == pytest.approx(limit, rel=1e-3)  # rescaled to the limit, not zeroed


def test_grad_clip_must_not_be_negative(tmp_path):
    with pytest.raises(ConfigError, match="grad_clip"):
        _config(tmp_path, grad_clip=-1.0)
