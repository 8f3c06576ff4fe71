import json

import numpy as np
import pytest
import torch
from _iamgan_data import make_mask_seg, run_cli
from PIL import Image

from mfr.train.segmenter import dice_loss, mask_metrics, seg_loss


def naive_metrics(pred, target):
    inter = union = correct = total = 0
    per_image = []
    for p_img, t_img in zip(pred, target, strict=True):
        i = u = 0
        for p, t in zip(p_img.ravel(), t_img.ravel(), strict=True):
            i += int(p == 1 and t == 1)
            u += int(p == 1 or t == 1)
            correct += int(p == t)
            total += 1
        inter, union = inter + i, union + u
        per_image.append(i / u if u else 1.0)
    return inter / union, float(np.mean(per_image)), correct / total


def test_mask_metrics_match_a_naive_pixel_count(rng):
    pred = (rng.random((5, 7, 9)) < 0.4).astype(np.uint8)
    target = (rng.random((5, 7, 9)) < 0.3).astype(np.uint8)
    pred[4] = target[4] = 0  # an empty image counts as IoU 1 in the per-image mean
    metrics = mask_metrics(pred, target)
    iou, mean_iou, acc = naive_metrics(pred, target)
    assert metrics["iou"] == pytest.approx(iou)
    assert metrics["mean_image_iou"] == pytest.approx(mean_iou)
    assert metrics["pixel_accuracy"] == pytest.approx(acc)


def test_seg_loss_is_bce_plus_weighted_dice():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 1, 4, 4), (torch.rand(2, 1, 4, 4) > 0.5).float()
    p = torch.sigmoid(logits)
    bce = -(target * p.log() + (1 - target) * (1 - p).log()).mean()
    dice = torch.stack(
        [
            1 - (2 * (p[i] * target[i]).sum() + 1) / (p[i].sum() + target[i].sum() + 1)
            for i in (0, 1)
        ]
    ).mean()
    assert dice_loss(logits, target).item() == pytest.approx(dice.item(), rel=1e-5)
    assert seg_loss(logits, target, 0.5).item() == pytest.approx(
        (bce + 0.5 * dice).item(), rel=1e-5
    )


@pytest.fixture
def seg_run(tmp_path):
    data = make_mask_seg(tmp_path / "mask-seg")
    out = tmp_path / "run"
    args = ["seg", "train", "--set", f"data={data}", "--set", f"out={out}", "--set", "size=16"]
    args += ["--set", "base_channels=4", "--set", "depth=2", "--set", "epochs=2"]
    assert run_cli([*args, "--set", "batch_size=4", "--set", "threads=1"]) == 0
    return data, out


def test_seg_train_eval_predict_end_to_end(seg_run, tmp_path, capsys):
    data, out = seg_run
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    report = tmp_path / "metrics.json"
    assert (
        run_cli(
            [
                "seg",
                "eval",
                "--model",
                str(out / "best.pt"),
                "--data",
                str(data),
                "--json",
                str(report),
            ]
        )
        == 0
    )
    metrics = json.loads(report.read_text())
    assert metrics["images"] == 4 and 0 <= metrics["iou"] <= 1
    assert "mask IoU" in capsys.readouterr().out

    dst = tmp_path / "pred"
    assert (
        run_cli(
            [
                "seg",
                "predict",
                "--model",
                str(out / "best.pt"),
                str(data / "test" / "images"),
                str(dst),
            ]
        )
        == 0
    )
    labels = sorted(dst.glob("*.png"))
    assert len(labels) == 4
    label = np.asarray(Image.open(labels[0]))
    assert label.shape == (32, 32) and set(np.unique(label)) <= {0, 255}


def test_seg_train_resume_continues_to_more_epochs(seg_run, capsys):
    data, out = seg_run
    args = ["seg", "train", "--set", f"data={data}", "--set", f"out={out}", "--set", "size=16"]
    args += ["--set", "base_channels=4", "--set", "depth=2", "--set", "epochs=3"]
    assert run_cli([*args, "--set", "batch_size=4", "--set", "threads=1", "--resume"]) == 0
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]


def test_seg_eval_rejects_a_checkpoint_of_another_model(tmp_path, capsys):
    bogus = tmp_path / "other.pt"
    torch.save({"format": "mfr-recognizer", "state_dict": {}}, bogus)
    assert run_cli(["seg", "eval", "--model", str(bogus)]) == 2
    err = capsys.readouterr().err
    assert "other.pt" in err and "not a segmenter checkpoint" in err and "Traceback" not in err


def test_seg_train_rejects_unknown_option(tmp_path, capsys):
    assert run_cli(["seg", "train", "--set", "epochz=3"]) == 2
    assert "unknown option(s) epochz" in capsys.readouterr().err


def test_recolor_repaints_only_the_mask_region_with_its_shading(rng):
    from mfr.train.segmenter import recolor_mask

    image = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    mask = np.zeros((6, 6), np.uint8)
    mask[3:, 1:5] = 1
    out = recolor_mask(image, mask, np.array([200.0, 10.0, 50.0]))
    assert np.array_equal(out[mask == 0], image[mask == 0])
    lum = image[mask == 1].astype(np.float32).mean(1)
    expected = np.clip(lum[:, None] / lum.mean() * np.array([200.0, 10.0, 50.0]), 0, 255)
    assert np.array_equal(out[mask == 1], expected.astype(np.uint8))


def test_zoom_crops_image_and_mask_alike(rng):
    from mfr.train.segmenter import augment_pairs

    image = np.zeros((2, 16, 16, 3), np.uint8)
    mask = np.zeros((2, 16, 16), np.uint8)
    image[:, 8:, :, 0], mask[:, 8:] = 255, 1  # mask = the red lower half
    out_img, out_mask = augment_pairs(image, mask, rng, recolor=0.0, zoom=0.5)
    assert out_img.shape == image.shape and out_mask.shape == mask.shape
    clear = (out_img[..., 0] < 20) | (out_img[..., 0] > 235)  # away from the blended edge row
    assert clear.mean() > 0.85
    assert np.array_equal((out_img[..., 0] > 127)[clear], out_mask.astype(bool)[clear])
