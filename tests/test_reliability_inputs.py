"""Bad inputs as a new user meets them (issue 18, faults 4-16): each is one plain line
``mfr: error: <path>: <problem>`` with exit 2, or a skip that is reported and counted; names
that are not UTF-8 work; nothing is silently dropped or mixed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from _train_data import make_dataset as make_train_dataset
from _train_data import tiny_overrides
from gallery_helpers import face_like, run_mfr, tiny_model, tiny_onnx, write_png

from mfr.gallery.store import Gallery

LATIN1 = b"Jos\xe9"  # "José" in Latin-1: not UTF-8


def fsname(raw: bytes) -> str:
    """A file name as Python holds it (bytes that are not UTF-8 kept by surrogateescape)."""
    return os.fsdecode(raw)


def _identities(root: Path, rng, names=("id0", "id1", "id2"), full=2, masked=1) -> Path:
    for i, name in enumerate(names):
        for n in range(full):
            write_png(root / name / f"{n}.png", face_like(rng, i))
        for n in range(masked):
            image = face_like(rng, i)
            image[60:] = (90, 140, 200)
            write_png(root / name / "masked" / f"{n}.png", image)
    return root


@pytest.fixture
def setup(tmp_path, rng):
    model = tiny_onnx(tmp_path / "tiny.onnx", threshold=0.5)
    data = _identities(tmp_path / "data", rng)
    return model, data


def _last_line(err: str) -> str:
    assert "Traceback" not in err, err
    return err.strip().splitlines()[-1]


def _embeddings(path: Path, model: Path, data: Path) -> Path:
    from mfr.api import FaceRecognizer
    from mfr.eval.embeddings import save_embeddings

    paths = sorted(data.rglob("*.png"))
    save_embeddings(
        path,
        FaceRecognizer.load(model).embed(paths),
        np.array([p.relative_to(data).parts[0] for p in paths]),
        np.array([int("masked" in p.parts) for p in paths], np.uint8),
        np.array([str(p) for p in paths]),
    )
    return path


# ----------------------------------------------------------------------------- 4. text


def _latin1(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("latin-1"))
    return path


def _mfr2(root: Path, rng, labels: str) -> Path:
    for identity, count in (("Ann", 2), ("Bob", 2)):
        for n in range(1, count + 1):
            write_png(root / identity / f"{identity}_{n:04d}.png", face_like(rng, n))
    _latin1(root / "mfr2_labels.txt", labels)
    return root


#: Every reader of a text file a user gives mfr: (name, setup(tmp, setup) -> (file, argv),
#: line of the bad byte).
def _case_pairs_eval(tmp, model, data):
    emb = _embeddings(tmp / "emb.npz", model, data)
    pairs = _latin1(tmp / "pairs.csv", "a,b,same\n0,1,1\n2,3,0 # José\n")
    return pairs, ["eval", emb, "--pairs", pairs], 3


def _case_pairs_calibrate(tmp, model, data):
    emb = _embeddings(tmp / "emb.npz", model, data)
    pairs = _latin1(tmp / "pairs.csv", "a,b,same\n0,1,1\n2,3,0 # José\n")
    return pairs, ["verify", "--calibrate", emb, "--pairs", pairs, "--model", model], 3


def _case_train_config(tmp, model, data):
    config = _latin1(tmp / "c.yaml", "# José's config\nsteps: 2\n")
    return config, ["train", "--config", config, "--out", tmp / "run"], 1


def _case_gan_config(tmp, model, data):
    config = _latin1(tmp / "g.yaml", "steps: 2\n# José\n")
    return config, ["gan", "train", "--config", config], 2


def _case_experiment_config(tmp, model, data):
    config = _latin1(tmp / "e.yaml", "\n\nname: José\n")
    return config, ["experiment", "table1", "--config", config, "--out", tmp / "x"], 3


def _case_labels_info(tmp, model, data, command="info"):
    root = _mfr2(tmp / "mfr2", np.random.default_rng(0), "Ann, 1, no-mask\nJosé, 1, N95\n")
    argv = {
        "info": ["data", "info", root],
        "enroll": ["enroll", tmp / "g.npz", root, "--model", model],
        "align": ["align", root, tmp / "al", "--workers", "1", "-q"],
    }[command]
    return root / "mfr2_labels.txt", argv, 2


def _case_exclude(tmp, model, data):
    listing = _latin1(tmp / "ex.txt", "id0\nJosé\n")
    return listing, ["embed", data, "--model", model, "--out", tmp / "e.npz",
                     "--exclude", listing], 2  # fmt: skip


def _case_mfr2_pairs(tmp, model, data):
    emb = _embeddings(tmp / "emb.npz", model, data)
    root = tmp / "mfr2"
    _latin1(root / "pairs.txt", "Ann 1 2\nJosé 1 2\n")
    return root / "pairs.txt", ["data", "pairs", "mfr2", emb, "--out", tmp / "p.csv",
                                "--root", root], 2  # fmt: skip


def _case_lfw_pairs(tmp, model, data):
    emb = _embeddings(tmp / "emb.npz", model, data)
    root = tmp / "lfw"
    (root / "images").mkdir(parents=True)
    _latin1(root / "meta" / "pairs.csv", "name,imagenum1,imagenum2\nJosé,1,2\n")
    return root / "meta" / "pairs.csv", ["data", "pairs", "lfw", emb, "--out", tmp / "p.csv",
                                         "--root", root], 2  # fmt: skip


def _case_threshold_sidecar(tmp, model, data):
    sidecar = _latin1(model.with_suffix(".threshold.json"), '{"threshold": 0.3,\n"source": "José"}')
    photo = next(data.rglob("0.png"))
    return sidecar, ["verify", photo, photo, "--model", model], 2


TEXT_READERS = {
    "eval --pairs": _case_pairs_eval,
    "verify --calibrate --pairs": _case_pairs_calibrate,
    "train --config": _case_train_config,
    "gan train --config": _case_gan_config,
    "experiment --config": _case_experiment_config,
    "data info (mfr2_labels.txt)": _case_labels_info,
    "enroll (mfr2_labels.txt)": lambda t, m, d: _case_labels_info(t, m, d, "enroll"),
    "align (mfr2_labels.txt)": lambda t, m, d: _case_labels_info(t, m, d, "align"),
    "embed --exclude": _case_exclude,
    "data pairs mfr2 (pairs.txt)": _case_mfr2_pairs,
    "data pairs lfw (pairs.csv)": _case_lfw_pairs,
    "verify (threshold sidecar)": _case_threshold_sidecar,
}


@pytest.mark.parametrize("reader", list(TEXT_READERS))
def test_every_text_reader_names_the_file_and_line_of_text_that_is_not_utf8(
    setup, tmp_path, capsys, reader
):
    model, data = setup
    bad, argv, line = TEXT_READERS[reader](tmp_path, model, data)
    before = sorted(p for p in tmp_path.rglob("*"))
    code, _, err = run_mfr(capsys, *argv)
    assert code == 2
    assert _last_line(err).startswith(f"mfr: error: {bad}: line {line}: not UTF-8 text (byte 0xe9")
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing written


def test_folder_and_file_names_that_are_not_utf8_work_in_align_mask_embed_and_eval(
    tmp_path, capsys
):
    from _masking_faces import grace_hopper_path

    photos = tmp_path / "photos"
    person = Path(os.fsdecode(bytes(photos) + b"/" + LATIN1))
    person.mkdir(parents=True)
    shutil.copy(grace_hopper_path(), person / fsname(LATIN1 + b" 1.jpg"))
    code, out, err = run_mfr(capsys, "align", photos, tmp_path / "al", "--workers", "1", "-q")
    assert code == 0 and "aligned 1 /" in out, err
    aligned = tmp_path / "al" / fsname(LATIN1) / fsname(LATIN1 + b" 1.png")
    assert aligned.is_file()
    manifest = (tmp_path / "al" / "manifest.csv").read_bytes()
    assert manifest.splitlines()[1] == LATIN1 + b"/" + LATIN1 + b" 1.png," + LATIN1 + b",0"
    code, out, err = run_mfr(capsys, "mask", tmp_path / "al", tmp_path / "m", "--quiet")
    assert code == 0 and "1 written" in out, err
    assert (tmp_path / "m" / fsname(LATIN1) / "masked" / fsname(LATIN1 + b" 1.png")).is_file()
    model = tiny_onnx(tmp_path / "tiny.onnx")
    code, out, err = run_mfr(capsys, "embed", tmp_path / "m", "--model", model, "--out",
                             tmp_path / "e.npz")  # fmt: skip
    assert code == 0 and "2 embeddings" in out, err
    from mfr.eval.embeddings import load_embeddings

    emb = load_embeddings(tmp_path / "e.npz")
    assert list(emb.identities) == [fsname(LATIN1)] * 2
    assert sorted(emb.paths) == sorted(
        [fsname(LATIN1 + b"/" + LATIN1 + b" 1.png"),
         fsname(LATIN1 + b"/masked/" + LATIN1 + b" 1.png")]
    )  # fmt: skip
    code, _, err = run_mfr(capsys, "eval", tmp_path / "e.npz", "--json", tmp_path / "r.json")
    assert code == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["rank1"] == 100.0


def test_enroll_and_identify_print_names_that_are_not_utf8(setup, tmp_path, capsys, rng):
    model, _ = setup
    data = tmp_path / "people"
    write_png(Path(os.fsdecode(bytes(data) + b"/" + LATIN1 + b"/1.png")), face_like(rng, 0))
    gallery = tmp_path / "g.npz"
    code, out, err = run_mfr(capsys, "enroll", gallery, data, "--model", model)
    assert code == 0, err
    assert Gallery.load(gallery).identity_counts() == {fsname(LATIN1): 1}
    code, out, err = run_mfr(capsys, "identify", gallery, data, "--json")
    assert code == 0, err
    assert json.loads(out)["results"][0]["matches"][0]["identity"] == fsname(LATIN1)
    code, out, err = run_mfr(capsys, "gallery", "list", gallery)
    assert code == 0 and "Jos" in out, err


def test_an_embeddings_file_with_bytes_identities_that_are_not_utf8_is_evaluated(
    setup, tmp_path, capsys
):
    from mfr.eval.embeddings import load_embeddings

    model, data = setup
    good = load_embeddings(_embeddings(tmp_path / "emb.npz", model, data))
    names = {"id0": LATIN1, "id1": b"Ann", "id2": b"Bob"}
    np.savez(
        tmp_path / "bytes.npz",
        embeddings=good.embeddings,
        identities=np.array([names[i] for i in good.identities], dtype="S"),
        domains=good.domains,
        paths=np.array([p.encode() for p in good.paths], dtype="S"),
    )
    code, _, err = run_mfr(capsys, "eval", tmp_path / "bytes.npz", "--json", tmp_path / "r.json")
    assert code == 0, err
    loaded = load_embeddings(tmp_path / "bytes.npz")
    assert fsname(LATIN1) in set(loaded.identities) and loaded.identities.dtype.kind == "U"


# ----------------------------------------------------------------------------- 5. checkpoints


def _checkpoint(path: Path, **changes) -> Path:
    from mfr.embedders.checkpoint import FORMAT, VERSION
    from mfr.nets.backbones import build_backbone

    net = build_backbone("resnet_tiny", embedding_dim=8, input_size=16).eval()
    fields = {"format": FORMAT, "version": VERSION, "backbone": "resnet_tiny",
              "embedding_dim": 8, "input_size": 16, "head": net.head_name,
              "model": net.state_dict(), "loss": "softmax", "step": 3,
              "threshold": 0.4}  # fmt: skip
    fields.update(changes)
    torch.save(fields, path)
    return path


@pytest.mark.parametrize(
    ("field", "value", "want"),
    [
        ("version", "1", "a positive integer"),
        ("model", None, "a state dict of tensors"),
        ("threshold", "high", "a cosine similarity in [-1, 1] or absent"),
        ("threshold", 2.5, "a cosine similarity in [-1, 1] or absent"),
        ("embedding_dim", -8, "a positive integer"),
        ("input_size", "16", "a positive integer"),
        ("backbone", None, "a backbone name"),
        ("step", -1, "a non-negative integer"),
        ("config", "steps=3", "a mapping of options"),
    ],
)
def test_hand_edited_checkpoint_metadata_is_one_line_naming_the_field(
    tmp_path, capsys, field, value, want
):
    ckpt = _checkpoint(tmp_path / "m.pt", **{field: value})
    for argv in (["export", ckpt, "--onnx", tmp_path / "m.onnx"],
                 ["verify", ckpt, ckpt, "--model", ckpt]):  # fmt: skip
        code, _, err = run_mfr(capsys, *argv)
        assert code == 2
        want_line = f"mfr: error: {ckpt}: field {field!r} must be {want}, got {value!r}"
        assert _last_line(err) == want_line
    assert not (tmp_path / "m.onnx").exists()


# ----------------------------------------------------------------------------- 6. mfr2 labels


@pytest.mark.parametrize("line", ["Ann; 2; N95", "Ann, two, no-mask", "../etc, 1, no-mask"])
def test_enroll_of_an_mfr2_folder_with_a_malformed_label_line_names_the_line(
    setup, tmp_path, capsys, line
):
    model, _ = setup
    root = _mfr2(tmp_path / "mfr2", np.random.default_rng(0), f"Ann, 1, no-mask\n{line}\n")
    code, _, err = run_mfr(capsys, "enroll", tmp_path / "g.npz", root, "--model", model)
    assert code == 2
    assert _last_line(err).startswith(f"mfr: error: {root / 'mfr2_labels.txt'} line 2: ")
    assert not (tmp_path / "g.npz").exists()


def test_enroll_of_an_mfr2_folder_takes_its_full_faces(setup, tmp_path, capsys):
    model, _ = setup
    root = _mfr2(tmp_path / "mfr2", np.random.default_rng(0),
                 "Ann, 1, no-mask\nAnn, 2, N95\nBob, 1, no-mask\nBob, 2, cloth\n")  # fmt: skip
    code, out, err = run_mfr(capsys, "enroll", tmp_path / "g.npz", root, "--model", model)
    assert code == 0, err
    assert Gallery.load(tmp_path / "g.npz").identity_counts() == {"Ann": 1, "Bob": 1}
    assert "2 masked images" in err


# ----------------------------------------------------------------------------- 7. calibration


def test_calibration_rejects_a_same_column_of_2_and_stores_nothing(setup, tmp_path, capsys):
    model, data = setup
    emb = _embeddings(tmp_path / "emb.npz", model, data)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("a,b,same\n0,1,1\n0,3,2\n")
    code, _, err = run_mfr(capsys, "verify", "--calibrate", emb, "--pairs", pairs, "--model", model)
    assert code == 2
    assert _last_line(err) == f"mfr: error: {pairs}: line 3: 'same' must be 0 or 1, got 2"
    assert not model.with_suffix(".threshold.json").exists()


def test_calibration_rejects_embeddings_of_another_dimension(setup, tmp_path, capsys):
    model, data = setup
    emb = tmp_path / "emb8.npz"
    from mfr.eval.embeddings import load_embeddings, save_embeddings

    good = load_embeddings(_embeddings(tmp_path / "emb.npz", model, data))
    save_embeddings(emb, good.embeddings[:, :8], good.identities, good.domains, good.paths)
    code, _, err = run_mfr(capsys, "verify", "--calibrate", emb, "--model", model)
    assert code == 2
    assert _last_line(err).startswith(
        f"mfr: error: {emb}: holds 8-d embeddings, but the model gives 16-d"
    )
    assert not model.with_suffix(".threshold.json").exists()


def test_calibrated_thresholds_are_cosine_similarities(tmp_path):
    from mfr.eval.embeddings import save_embeddings
    from mfr.gallery.threshold import calibrate

    # perfectly separable pairs whose best cut lies below every similarity: clipped to -1
    emb = np.array([[1, 0], [-1, 0.01], [1, 0.02], [-1, 0.03]], np.float32)
    path = tmp_path / "e.npz"
    save_embeddings(path, emb, np.array(["a", "a", "b", "b"]), np.array([1, 0, 1, 0], np.uint8),
                    np.array(["1", "2", "3", "4"]))  # fmt: skip
    pairs = tmp_path / "p.csv"
    pairs.write_text("a,b,same\n0,1,1\n2,3,1\n0,2,0\n1,3,0\n")  # matched pairs far apart
    record = calibrate(path, pairs)
    assert -1.0 <= record["threshold"] <= 1.0


# ----------------------------------------------------------------------------- 8. mask sidecar


def _aligned_face(tmp_path: Path) -> Path:
    """A one-image aligned dataset (a real face) made by ``mfr align``."""
    from _masking_faces import grace_hopper_path

    from mfr.align.batch import align_folder

    (tmp_path / "photos" / "Grace").mkdir(parents=True)
    shutil.copy(grace_hopper_path(), tmp_path / "photos" / "Grace" / "1.jpg")
    align_folder(tmp_path / "photos", tmp_path / "al", workers=1, progress=False)
    return tmp_path / "al"


def test_a_landmarks_sidecar_with_dotdot_paths_is_refused_before_any_read_or_write(
    tmp_path, capsys
):
    aligned = _aligned_face(tmp_path)
    secret = tmp_path / "secret"
    secret.mkdir()
    shutil.copy(aligned / "Grace" / "1.png", secret / "x.png")
    sidecar = aligned / "landmarks.npz"
    with np.load(sidecar) as data:
        arrays = dict(data)
    arrays["paths"] = np.array(["../secret/x.png"])
    np.savez(sidecar, **arrays)
    code, _, err = run_mfr(capsys, "mask", aligned, tmp_path / "m", "--quiet")
    assert code == 2
    assert _last_line(err) == (
        f"mfr: error: {sidecar}: entry 0 '../secret/x.png': paths must not hold '..', '.' "
        "or empty parts"
    )
    assert sorted(p.name for p in secret.iterdir()) == ["x.png"]
    assert not list((tmp_path / "m").rglob("*.png")) and not (tmp_path / "masked").exists()


def test_an_image_of_another_size_than_the_sidecar_says_is_a_counted_failure(tmp_path, capsys):
    from PIL import Image

    aligned = _aligned_face(tmp_path)
    image = aligned / "Grace" / "1.png"
    Image.open(image).resize((100, 100)).save(image)
    code, out, err = run_mfr(capsys, "mask", aligned, tmp_path / "m", "--quiet")
    assert code == 0
    assert "0 written" in out and "1 failed" in out
    assert "image is 100x100 px but the landmarks sidecar is for 112x112" in err
    assert not (tmp_path / "m" / "Grace" / "masked" / "1.png").exists()


# ----------------------------------------------------------------------------- 9. training


def _train(capsys, data: Path, out: Path, **extra):
    overrides = sum((["--set", s] for s in tiny_overrides(data, **extra)), [])
    return run_mfr(capsys, "train", *overrides, "--out", out)


def test_an_identity_whose_every_image_is_unreadable_is_one_line_with_loader_workers(
    tmp_path, capsys
):
    data = make_train_dataset(tmp_path / "data", identities=3, per_identity=4, masked=0)
    for image in (data / "person_01").glob("*.png"):
        image.write_bytes(b"not a png")
    code, _, err = _train(capsys, data, tmp_path / "run", workers=2, steps=3)
    assert code == 2
    last = _last_line(err)
    assert last.startswith("mfr: error: ") and "person_01" in last
    assert "unreadable, and no readable image of its identity" in last
    assert "DataLoader worker" not in err and "Original Traceback" not in err


def test_replaced_unreadable_training_images_are_counted(tmp_path, capsys):
    data = make_train_dataset(tmp_path / "data", identities=3, per_identity=4, masked=0)
    (data / "person_01" / "0.png").write_bytes(b"not a png")
    code, out, err = _train(capsys, data, tmp_path / "run", workers=2, steps=6, log_every=3)
    assert code == 0, err
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    counts = [record.get("replaced_images", 0) for record in lines]
    # every batch holds every identity's 4 images (p=3, k=4): one replacement per step
    assert counts == [3, 6]
    assert "replaced 6 reads of 1 unreadable images" in out


# ----------------------------------------------------------------------------- 10. NaN


def _nan_onnx(path: Path) -> Path:
    from mfr.export import export_onnx

    model = tiny_model(0)
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    meta = {"input_size": 32, "embedding_dim": 16, "backbone": "tiny", "threshold": 0.5}
    return export_onnx(model, meta, path)


def test_a_model_that_outputs_nan_is_one_line_in_verify_enroll_embed_and_the_api(
    setup, tmp_path, capsys
):
    from mfr.api import FaceRecognizer
    from mfr.errors import MfrError

    _, data = setup
    model = _nan_onnx(tmp_path / "nan.onnx")
    photo = data / "id0" / "0.png"
    want = f"mfr: error: {model}: the model gives NaN or infinite embeddings"
    code, out, err = run_mfr(capsys, "verify", photo, data / "id1" / "0.png", "--model", model)
    assert code == 2 and out == "" and _last_line(err).startswith(want)
    code, _, err = run_mfr(capsys, "enroll", tmp_path / "g.npz", data, "--model", model)
    assert code == 2 and _last_line(err).startswith(want)
    assert not (tmp_path / "g.npz").exists()
    code, _, err = run_mfr(capsys, "embed", data, "--model", model, "--out", tmp_path / "e.npz")
    assert code == 2 and _last_line(err).startswith(f"mfr: error: {model}: the model gives NaN")
    assert not (tmp_path / "e.npz").exists()
    with pytest.raises(MfrError, match="NaN or infinite"):
        FaceRecognizer.load(model).embed([photo])


# ----------------------------------------------------------------------------- 11. tiny images


def test_embed_skips_images_too_small_to_hold_a_face(setup, tmp_path, capsys, rng):
    from mfr.eval.embeddings import load_embeddings

    model, data = setup
    write_png(data / "id0" / "dot.png", rng.integers(0, 256, (1, 1, 3), np.uint8))
    write_png(data / "id0" / "strip.png", rng.integers(0, 256, (3, 2000, 3), np.uint8))
    code, out, err = run_mfr(capsys, "embed", data, "--model", model, "--out", tmp_path / "e.npz")
    assert code == 0 and "2 bad files skipped" in out, err
    assert f"{data / 'id0' / 'dot.png'}: image too small (1x1 px, need 16)" in err
    assert f"{data / 'id0' / 'strip.png'}: image too small (2000x3 px, need 16)" in err
    assert not any("dot" in p or "strip" in p for p in load_embeddings(tmp_path / "e.npz").paths)
    code, _, err = run_mfr(capsys, "verify", data / "id0" / "dot.png", data / "id0" / "0.png",
                           "--model", model, "--aligned")  # fmt: skip
    assert code == 2 and "image too small (1x1 px, need 16)" in _last_line(err)


# ----------------------------------------------------------------------------- 12. one walk


def test_enroll_identify_embed_and_data_info_take_and_skip_the_same_files(
    setup, tmp_path, capsys, rng
):
    from PIL import Image

    model, _ = setup
    folder = tmp_path / "people" / "Al"
    folder.mkdir(parents=True)
    for n, suffix in enumerate((".png", ".gif", ".ppm", ".pgm", ".JPG", ".avif", ".webp")):
        image = Image.fromarray(face_like(rng, 0))
        (image.convert("L") if suffix == ".pgm" else image).save(folder / f"{n}{suffix}")
    (folder / "broken.png").symlink_to(tmp_path / "gone.png")
    (folder / "notes.txt").write_text("not a photo")
    (folder / "._0.png").write_bytes(b"macOS resource fork")
    (folder / "IMG_1.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    taken = 7
    code, out, err = run_mfr(capsys, "enroll", tmp_path / "g.npz", folder, "--name", "Al",
                             "--model", model)  # fmt: skip
    assert code == 0, err
    assert f"enrolled {taken} images" in out
    assert f"skipped: {folder / 'broken.png'}: broken symbolic link" in err
    assert f"skipped: {folder / 'notes.txt'}: not an image file (suffix .txt)" in err
    assert f"skipped: {folder / '._0.png'}: hidden file" in err
    assert f"skipped: {folder / 'IMG_1.HEIC'}: HEIC/HEIF photos are not supported" in err
    assert "skipped 4 files" in err
    code, out, err = run_mfr(capsys, "identify", tmp_path / "g.npz", folder, "--json")
    assert code == 0, err
    assert len(json.loads(out)["results"]) == taken and "skipped 4 files" in err
    code, out, err = run_mfr(capsys, "data", "info", tmp_path / "people", "--json", "--no-decode")
    info = json.loads(out)
    assert info["images"] == taken and info["non_image_files_skipped"] == 4
    code, out, err = run_mfr(capsys, "embed", tmp_path / "people", "--model", model, "--out",
                             tmp_path / "e.npz", "--aligned")  # fmt: skip
    assert code == 0 and f"{taken} embeddings" in out, err
    assert "skipped 4 files that are not images" in err


def test_a_manifest_naming_files_with_commas_quotes_and_newlines_round_trips(tmp_path, rng):
    from mfr.data.dataset import load_index, write_manifest

    names = ["Al, B/1.png", 'Cy "C"/2.png', "Di\nD/3.png"]
    for name in names:
        write_png(tmp_path / name, face_like(rng, 0))
    walked = load_index(tmp_path, use_manifest=False)
    write_manifest(tmp_path, walked)
    index = load_index(tmp_path)
    assert index.kind == "manifest" and sorted(index.relative_paths()) == sorted(names)
    assert sorted(set(index.identities)) == sorted(n.split("/")[0] for n in names)


def test_identities_differing_in_case_or_spaces_within_one_enrolment_are_told(
    setup, tmp_path, capsys, rng
):
    model, _ = setup
    for name in ("Al", "al", "Bo "):
        write_png(tmp_path / "d" / name / "1.png", face_like(rng, len(name)))
    code, _, err = run_mfr(capsys, "enroll", tmp_path / "g.npz", tmp_path / "d", "--model", model)
    assert code == 0, err
    assert "'al' differs from the enrolled 'Al' only in case" in err
    assert "note: folder 'Bo ' enrolled as 'Bo'" in err
    assert Gallery.load(tmp_path / "g.npz").identity_counts() == {"Al": 1, "Bo": 1, "al": 1}


# ----------------------------------------------------------------------------- 13. names


def test_a_name_with_stray_spaces_is_the_same_identity_and_not_enrolled_twice(
    setup, tmp_path, capsys
):
    model, data = setup
    photo = data / "id0" / "0.png"
    gallery = tmp_path / "g.npz"
    for name in ("Al ", "Al", " Al\u00a0", "Al"):
        code, _, err = run_mfr(capsys, "enroll", gallery, photo, "--name", name, "--model", model)
        assert code == 0, err
    assert Gallery.load(gallery).identity_counts() == {"Al": 1}


def test_the_same_photo_under_a_second_name_or_a_case_variant_is_warned_about(
    setup, tmp_path, capsys
):
    model, data = setup
    photo = data / "id0" / "0.png"
    gallery = tmp_path / "g.npz"
    run_mfr(capsys, "enroll", gallery, photo, "--name", "Al", "--model", model)
    code, _, err = run_mfr(capsys, "enroll", gallery, photo, "--name", "Bo")
    assert code == 0 and f"warning: {photo}: already enrolled as Al; now also as Bo" in err
    code, _, err = run_mfr(capsys, "enroll", gallery, data / "id0" / "1.png", "--name", "al")
    assert code == 0 and "'al' differs from the enrolled 'Al' only in case" in err


def test_an_enrolment_that_ran_meanwhile_is_not_duplicated(setup, tmp_path, capsys, monkeypatch):
    """Two enrolments of the same photos: the second one's embedding finishes after the first
    one saved; the check under the lock sees the saved gallery and adds nothing twice."""
    import mfr.commands.gallery as commands

    model, data = setup
    gallery = tmp_path / "g.npz"
    real_embed = commands._embed

    def embed_while_another_enrols(recognizer, paths, aligned):
        result = real_embed(recognizer, paths, aligned)
        monkeypatch.setattr(commands, "_embed", real_embed)
        code, _, _ = run_mfr(capsys, "enroll", gallery, data, "--model", model)  # the other run
        assert code == 0
        return result

    monkeypatch.setattr(commands, "_embed", embed_while_another_enrols)
    code, out, err = run_mfr(capsys, "enroll", gallery, data, "--model", model)
    assert code == 0, err
    store = Gallery.load(gallery)
    assert len(store) == 6 and len(set(store.paths.tolist())) == 6
    assert "nothing new" in out


# ----------------------------------------------------------------------------- 14. resume


def test_embed_does_not_resume_a_partial_run_of_replaced_weights_and_resumes_by_any_path(
    setup, tmp_path, capsys, monkeypatch
):
    from mfr.embedders import embed_dataset
    from mfr.embedders import load_embedder as real_load
    from mfr.eval.embeddings import load_embeddings

    _, data = setup
    model = tiny_onnx(tmp_path / "m.onnx", seed=1)
    quiet = {"progress": False, "log": lambda m: None, "batch_size": 2, "aligned": True}

    def interrupted(spec, **kw):
        embedder = real_load(spec, **kw)
        calls = []

        def embed(images, aligned=True):
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return type(embedder).embed(embedder, images, aligned)

        embedder.embed = embed
        return embedder

    out = tmp_path / "e.npz"
    monkeypatch.setattr("mfr.embedders.load_embedder", interrupted)
    with pytest.raises(KeyboardInterrupt):
        embed_dataset(data, str(model), out, **quiet)
    monkeypatch.setattr("mfr.embedders.load_embedder", real_load)
    assert (tmp_path / "e.npz.partial.npz").is_file()
    tiny_onnx(model, seed=2)  # other weights under the same name
    summary = embed_dataset(data, str(model), out, **quiet)
    assert not summary["resumed"]
    fresh = tmp_path / "fresh.npz"
    embed_dataset(data, str(model), fresh, **quiet)
    np.testing.assert_array_equal(load_embeddings(out).embeddings,
                                  load_embeddings(fresh).embeddings)  # fmt: skip

    out.unlink()
    monkeypatch.setattr("mfr.embedders.load_embedder", interrupted)
    with pytest.raises(KeyboardInterrupt):
        embed_dataset(data, str(model.resolve()), out, **quiet)
    monkeypatch.setattr("mfr.embedders.load_embedder", real_load)
    monkeypatch.chdir(tmp_path)
    assert embed_dataset(data, "m.onnx", out, **quiet)["resumed"]


# ----------------------------------------------------------------------------- 15. ONNX


def test_onnx_and_checkpoint_embeddings_of_the_same_weights_are_both_normalised(
    setup, tmp_path, capsys
):
    from mfr.eval.embeddings import load_embeddings

    _, data = setup
    ckpt = _checkpoint(tmp_path / "m.pt")
    code, _, err = run_mfr(capsys, "export", ckpt, "--onnx", tmp_path / "m.onnx")
    assert code == 0, err
    runs = {}
    for model in (ckpt, tmp_path / "m.onnx"):
        out = tmp_path / f"{model.suffix[1:]}.npz"
        code, _, err = run_mfr(capsys, "embed", data, "--model", model, "--out", out, "--aligned")
        assert code == 0, err
        runs[model.suffix] = load_embeddings(out).embeddings
        np.testing.assert_allclose(np.linalg.norm(runs[model.suffix], axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(runs[".onnx"], runs[".pt"], atol=1e-4)


# ----------------------------------------------------------------------------- 16. identify


def test_identify_where_every_photo_is_bad_exits_2(setup, tmp_path, capsys):
    model, data = setup
    code, _, err = run_mfr(capsys, "enroll", tmp_path / "g.npz", data, "--model", model)
    assert code == 0, err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"")
    (bad / "b.jpg").write_bytes(b"not a jpeg")
    for as_json in ([], ["--json"]):
        code, out, err = run_mfr(capsys, "identify", tmp_path / "g.npz", bad, *as_json)
        assert code == 2 and out == ""
        want = f"mfr: error: {bad}: none of the 2 photos could be used (see above)"
        assert _last_line(err) == want
        assert "skipped 2 of 2 images" in err
