"""``mfr gan train`` / ``mfr gan generate`` end to end on tiny self-made data."""

import csv

import numpy as np
import pytest
import torch
from _iamgan_data import make_full_faces, make_masked_faces, run_cli
from PIL import Image

from mfr.nets.unet import MaskSegmenter
from mfr.train.segmenter import save_segmenter

TINY = [
    "size=16",
    "ngf=4",
    "n_blocks=1",
    "ndf=4",
    "d_layers=2",
    "steps=3",
    "batch_size=2",
    "classifier_width=8",
    "classifier_dim=8",
    "threads=1",
    "f_exclude=",
    "sample_every=3",
]


@pytest.fixture
def gan_run(tmp_path):
    torch.manual_seed(0)
    seg = tmp_path / "seg.pt"
    save_segmenter(MaskSegmenter(size=16, base=4, depth=2), seg)
    full = make_full_faces(tmp_path / "full")
    masked = make_masked_faces(tmp_path / "masked")
    np.savez(full / "landmarks.npz", paths=np.array(["x"]))
    out = tmp_path / "run"
    sets = [*TINY, f"segmenter={seg}", f"f_root={full}", f"m_root={masked}", f"out={out}"]
    args = ["gan", "train"] + [a for s in sets for a in ("--set", s)]
    assert run_cli(args) == 0
    return full, out


def test_gan_train_writes_checkpoint_and_fig5_sample_grid(gan_run):
    _, out = gan_run
    assert (out / "last.pt").is_file() and (out / "history.json").is_file()
    grid = np.asarray(Image.open(out / "samples" / "latest.png"))
    # rows input / generated / S map, 6 samples of 16 px (shown x8)
    assert grid.shape == (3 * 128, 6 * 128, 3)


def test_gan_generate_writes_the_mfr_mask_layout_and_resumes(gan_run, tmp_path, capsys):
    full, out = gan_run
    dst = tmp_path / "twins"
    assert (
        run_cli(["gan", "generate", "--model", out / "last.pt", full, dst, "--batch-size", 4]) == 0
    )
    sources = sorted(full.glob("*/*.png"))
    for src in sources:
        identity = src.parent.name
        assert (dst / identity / src.name).read_bytes() == src.read_bytes()
        twin = np.asarray(Image.open(dst / identity / "masked" / src.name))
        assert twin.shape == (24, 24, 3)  # the source resolution
        label = np.asarray(Image.open(dst / "_labels" / identity / f"{src.stem}.png"))
        assert label.shape == (24, 24) and label.dtype == np.uint8
        assert set(np.unique(label)) <= {0, 255}
    with open(dst / "manifest.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * len(sources)
    assert {r["domain"] for r in rows if "/masked/" in r["path"]} == {"1"}
    assert {r["domain"] for r in rows if "/masked/" not in r["path"]} == {"0"}
    assert all(r["identity"] == r["path"].split("/")[0] for r in rows)
    assert (dst / "landmarks.npz").read_bytes() == (full / "landmarks.npz").read_bytes()
    assert "generated 9" in capsys.readouterr().out

    assert run_cli(["gan", "generate", "--model", out / "last.pt", full, dst]) == 0
    assert "generated 0, kept 9 existing" in capsys.readouterr().out


def test_gan_generate_min_images_leaves_out_small_identities(gan_run, tmp_path):
    full, out = gan_run
    (full / "person_0" / "person_0_0000.png").unlink()  # person_0 now has 2 images
    dst = tmp_path / "twins"
    assert (
        run_cli(["gan", "generate", "--model", out / "last.pt", full, dst, "--min-images", 3]) == 0
    )
    assert not (dst / "person_0").exists()
    assert len(list(dst.glob("*/masked/*.png"))) == 6


def test_gan_generate_rejects_a_segmenter_checkpoint(tmp_path, capsys):
    seg = tmp_path / "seg.pt"
    save_segmenter(MaskSegmenter(size=16, base=4, depth=2), seg)
    make_full_faces(tmp_path / "full")
    assert run_cli(["gan", "generate", "--model", seg, tmp_path / "full", tmp_path / "o"]) == 2
    err = capsys.readouterr().err
    assert "seg.pt" in err and "not an IAMGAN checkpoint" in err and "Traceback" not in err


def test_gan_train_resume_with_changed_network_is_refused(gan_run, capsys):
    full, out = gan_run
    sets = [*TINY, "ngf=8", f"f_root={full}", f"out={out}", "variant=no_ip"]
    args = ["gan", "train", "--resume"] + [a for s in sets for a in ("--set", s)]
    assert run_cli(args) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "ngf" in err


def test_gan_train_rejects_unknown_variant(capsys):
    assert run_cli(["gan", "train", "--set", "variant=bogus"]) == 2
    assert "variant must be one of" in capsys.readouterr().err


def test_gan_train_names_a_missing_full_face_folder(tmp_path, capsys):
    seg = tmp_path / "seg.pt"
    save_segmenter(MaskSegmenter(size=16, base=4, depth=2), seg)
    sets = [*TINY, f"segmenter={seg}", f"f_root={tmp_path / 'nowhere'}"]
    assert run_cli(["gan", "train"] + [a for s in sets for a in ("--set", s)]) == 2
    err = capsys.readouterr().err
    assert "nowhere: dataset folder not found" in err and "Traceback" not in err


def test_gan_generate_writes_the_one_twin_manifest_of_the_layout(gan_run, tmp_path):
    """The manifest is ``mfr.data.layout.write_twin_manifest``'s (the one ``mfr mask`` writes):
    each full face followed by its masked twin, sorted by full-face path."""
    from mfr.data.layout import twin_finished, write_twin_manifest

    full, out = gan_run
    dst = tmp_path / "twins"
    assert run_cli(["gan", "generate", "--model", out / "last.pt", full, dst]) == 0
    relpaths = [p.relative_to(full).as_posix() for p in sorted(full.glob("*/*.png"))]
    assert all(twin_finished(dst, rel) for rel in relpaths)
    expected = write_twin_manifest(tmp_path / "expected", relpaths)
    assert (dst / "manifest.csv").read_text() == expected.read_text()


def test_gan_generate_leaves_out_the_excluded_identities(gan_run, tmp_path):
    from mfr.train.gan_generate import generate_dataset

    full, out = gan_run
    identities = sorted(p.name for p in full.iterdir() if p.is_dir())
    left_out = identities[0]
    dst = tmp_path / "twins"
    counts = generate_dataset(out / "last.pt", full, dst, progress=False, exclude=[left_out])
    assert not (dst / left_out).exists()
    for identity in identities[1:]:
        assert sorted(p.name for p in (dst / identity / "masked").iterdir()) == sorted(
            p.name for p in (full / identity).glob("*.png")
        )
    assert counts["generated"] == sum(len(list((full / i).glob("*.png"))) for i in identities[1:])
