"""Reliability round 2, a fresh user's faults: user thresholds, output folders inside their
input, gallery entry removal, files of the wrong kind, YAML errors, Ctrl-C, mask's early
errors, and the words for a folder or a broken link where a file was expected."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from gallery_helpers import face_like, run_mfr, tiny_onnx, write_png

from mfr.errors import MfrError
from mfr.gallery.store import Gallery

UNSAFE_ADVICE = ("allow_pickle", "weights_only", "unsafe", "trust")


def _identities(root: Path, rng, names=("Ann", "Bob"), full=2) -> Path:
    for i, name in enumerate(names):
        for n in range(full):
            write_png(root / name / f"{n}.png", face_like(rng, i))
    return root


@pytest.fixture
def setup(tmp_path, rng):
    model = tiny_onnx(tmp_path / "tiny.onnx", threshold=0.5)
    data = _identities(tmp_path / "people", rng)
    return model, data


def _one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# ----------------------------------------------------------------------------- 1. thresholds


@pytest.mark.parametrize("value", ["nan", "5", "-1.5", "inf"])
def test_verify_refuses_a_threshold_that_is_not_a_cosine_similarity(setup, capsys, value):
    model, data = setup
    a, b = data / "Ann" / "0.png", data / "Bob" / "0.png"
    code, out, err = run_mfr(capsys, "verify", a, b, "--model", model, "--threshold", value)
    assert code == 2 and out == ""
    line = _one_line(err)
    assert line.startswith("mfr: error: --threshold ") and "a number in [-1, 1]" in line


def test_the_api_refuses_a_threshold_outside_minus_one_to_one_and_takes_the_ends(setup):
    from mfr.api import FaceRecognizer

    model, data = setup
    a, b = data / "Ann" / "0.png", data / "Ann" / "1.png"
    for bad in (float("nan"), 5.0, -1.01, "high", True):
        with pytest.raises(MfrError, match=r"threshold .*a number in \[-1, 1\]"):
            FaceRecognizer.load(model, threshold=bad)
    recognizer = FaceRecognizer.load(model, threshold=-1.0)
    assert recognizer.threshold == -1.0
    similarity, same = recognizer.verify(a, b)
    assert same == (similarity > -1.0)
    with pytest.raises(MfrError, match=r"threshold nan"):
        recognizer.verify(a, b, threshold=float("nan"))
    assert recognizer.verify(a, b, threshold=1.0)[1] is False


# ----------------------------------------------------------------------------- 2. folders


def test_align_refuses_an_output_folder_inside_or_holding_its_input(setup, capsys):
    _, data = setup
    before = _tree(data)
    code, _, err = run_mfr(capsys, "align", data, data / "sub", "--quiet")
    assert code == 2
    assert "the output folder is inside the input folder" in _one_line(err)
    inner = data / "Ann"
    code, _, err = run_mfr(capsys, "align", inner, data, "--quiet")
    assert code == 2 and "the output folder holds the input folder" in _one_line(err)
    code, _, err = run_mfr(capsys, "align", data, data, "--quiet")
    assert code == 2 and "the output folder is the input folder" in _one_line(err)
    assert _tree(data) == before and not (data / "sub").exists()


def test_align_refuses_an_output_reached_through_a_symlink_into_the_input(setup, capsys):
    _, data = setup
    link = data.parent / "link"
    link.symlink_to(data)
    code, _, err = run_mfr(capsys, "align", data, link / "aligned", "--quiet")
    assert code == 2 and "is inside the input folder" in _one_line(err)
    assert not (data / "aligned").exists()


def test_mask_and_gan_generate_refuse_an_output_folder_inside_their_input(tmp_path, capsys):
    from _masking_faces import grace_hopper_path

    from mfr.align.batch import align_folder

    (tmp_path / "photos" / "Grace").mkdir(parents=True)
    shutil.copy(grace_hopper_path(), tmp_path / "photos" / "Grace" / "1.jpg")
    aligned = tmp_path / "lat-112"
    align_folder(tmp_path / "photos", aligned, workers=1, progress=False)
    before = _tree(aligned)
    code, _, err = run_mfr(capsys, "mask", aligned, aligned / "m", "--quiet")
    assert code == 2 and "the output folder is inside the input folder" in _one_line(err)
    code, _, err = run_mfr(capsys, "gan", "generate", aligned, aligned / "g", "--model", "x.pt")
    assert code == 2 and "the output folder is inside the input folder" in _one_line(err)
    assert _tree(aligned) == before


def test_seg_predict_refuses_an_output_folder_inside_its_input_folder(tmp_path):
    from mfr.train.seg_predict import predict_folder

    write_png(tmp_path / "imgs" / "a.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(MfrError, match="the output folder is inside the input folder"):
        predict_folder(None, tmp_path / "imgs", tmp_path / "imgs" / "labels", 4)
    assert not (tmp_path / "imgs" / "labels").exists()


def test_an_embeddings_file_written_inside_the_dataset_is_a_counted_skip_on_the_next_run(
    setup, capsys
):
    model, data = setup
    out = data / "emb.npz"
    code, first, err = run_mfr(capsys, "embed", data, "--model", model, "--out", out)
    assert code == 0, err
    code, second, err = run_mfr(capsys, "embed", data, "--model", model, "--out", out)
    assert code == 0, err
    assert "skipped 1 files that are not images" in err and "emb.npz" in err
    assert "4 embeddings" in first and "4 embeddings" in second


# ----------------------------------------------------------------------------- 3. gallery


def _enrolled(setup, tmp_path, capsys) -> tuple[Path, dict]:
    model, data = setup
    gallery = tmp_path / "g.npz"
    code, _, err = run_mfr(capsys, "enroll", gallery, data, "--model", model)
    assert code == 0, err
    code, out, _ = run_mfr(capsys, "gallery", "list", gallery, "--json")
    assert code == 0
    return gallery, json.loads(out)


def test_gallery_list_json_shows_every_entry_with_its_id_identity_and_photo(
    setup, tmp_path, capsys
):
    gallery, listing = _enrolled(setup, tmp_path, capsys)
    store = Gallery.load(gallery)
    assert listing["entries"] == [
        {"id": int(i), "identity": str(n), "path": str(p)}
        for i, n, p in zip(store.ids, store.identities, store.paths, strict=True)
    ]
    assert sorted({e["identity"] for e in listing["entries"]}) == ["Ann", "Bob"]


def test_gallery_remove_of_an_identity_with_another_identitys_entry_removes_nothing(
    setup, tmp_path, capsys
):
    gallery, listing = _enrolled(setup, tmp_path, capsys)
    bobs = [e["id"] for e in listing["entries"] if e["identity"] == "Bob"]
    anns = [e["id"] for e in listing["entries"] if e["identity"] == "Ann"]
    before = gallery.read_bytes()
    code, _, err = run_mfr(capsys, "gallery", "remove", gallery, "Ann", "--entry", bobs[0])
    assert code == 2
    assert f"entry {bobs[0]} belongs to 'Bob', not 'Ann'; nothing removed" in _one_line(err)
    code, _, err = run_mfr(capsys, "gallery", "remove", gallery, "--entry", anns[0], "--entry", 99)
    assert code == 2 and "no entry with id 99; nothing removed" in _one_line(err)
    assert gallery.read_bytes() == before
    code, out, err = run_mfr(capsys, "gallery", "remove", gallery, "Ann", "--entry", anns[0])
    assert code == 0, err
    assert "removed 1 images (1 of Ann)" in out
    store = Gallery.load(gallery)
    assert sorted(store.ids.tolist()) == sorted(anns[1:] + bobs)
    code, out, _ = run_mfr(capsys, "gallery", "remove", gallery, "--entry", bobs[1])
    assert code == 0 and "(1 of Bob)" in out


# ----------------------------------------------------------------------------- 4. file kinds


def test_a_photo_or_pickle_given_as_a_gallery_says_what_it_is_without_unsafe_advice(
    setup, tmp_path, capsys
):
    model, data = setup
    photo = data / "Ann" / "0.png"
    gallery, _ = _enrolled(setup, tmp_path, capsys)
    code, _, err = run_mfr(capsys, "identify", photo, gallery)  # arguments swapped
    assert code == 2
    assert _one_line(err) == f"mfr: error: {photo}: not a gallery (.npz) file (it is a PNG image)"
    pickled = tmp_path / "p.npz"
    pickled.write_bytes(pickle.dumps({"embeddings": [1, 2]}))
    objects = tmp_path / "o.npz"
    np.savez(objects, embeddings=np.array([{"a": 1}], dtype=object))
    for path, kind in ((pickled, "it is a Python pickle"), (objects, "holds pickled objects")):
        for args in (["gallery", "list", path], ["identify", path, photo]):
            code, _, err = run_mfr(capsys, *args)
            line = _one_line(err)
            assert code == 2 and kind in line, line
            assert not any(word in line for word in UNSAFE_ADVICE), line
    code, _, err = run_mfr(capsys, "eval", photo)
    assert code == 2
    assert _one_line(err).endswith("not an embeddings (.npz) file (it is a PNG image)")


def test_a_photo_or_foreign_pickle_given_as_a_checkpoint_says_what_it_is(setup, tmp_path, capsys):
    import argparse

    _, data = setup
    fake = tmp_path / "a.pt"
    shutil.copy(data / "Ann" / "0.png", fake)
    for args in (
        ["export", fake, "--onnx", tmp_path / "x.onnx"],
        ["verify", data / "Ann" / "0.png", data / "Ann" / "1.png", "--model", fake],
        ["embed", data, "--model", fake, "--out", tmp_path / "e.npz"],
    ):
        code, _, err = run_mfr(capsys, *args)
        assert code == 2 and "Traceback" not in err  # embed names its model first
        last = err.strip().splitlines()[-1]
        assert last.endswith("not an mfr checkpoint (.pt) (it is a PNG image)"), err
    foreign = tmp_path / "f.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "args": argparse.Namespace(a=1)}, foreign)
    code, _, err = run_mfr(capsys, "export", foreign, "--onnx", tmp_path / "x.onnx")
    line = _one_line(err)
    assert code == 2 and "holds Python objects besides tensors" in line
    assert not any(word in line for word in UNSAFE_ADVICE), line
    assert not (tmp_path / "x.onnx").exists()


# ----------------------------------------------------------------------------- 5. YAML


@pytest.mark.parametrize(
    "command",
    [
        ["train", "--config", "{c}", "--out", "{t}/run"],
        ["gan", "train", "--config", "{c}"],
        ["experiment", "table1", "--config", "{c}", "--out", "{t}/x"],
    ],
)
def test_a_yaml_syntax_error_is_one_line_with_file_line_and_column(tmp_path, capsys, command):
    config = tmp_path / "c.yaml"
    config.write_text("steps: 2\nbatch_size: [4, 8\nlr: 0.1\n")
    args = [a.format(c=config, t=tmp_path) for a in command]
    code, _, err = run_mfr(capsys, *args)
    assert code == 2
    line = _one_line(err)
    assert line.startswith(f"mfr: error: {config}: line 3, column 3: not valid YAML ("), line


def test_a_set_value_that_is_not_yaml_is_checked_as_text_not_a_traceback(capsys):
    code, _, err = run_mfr(capsys, "gan", "train", "--set", "steps=[1")
    assert code == 2 and "steps" in _one_line(err)


# ----------------------------------------------------------------------------- 6. Ctrl-C


def test_ctrl_c_in_embed_says_where_progress_is_and_the_rerun_says_it_resumed(
    setup, tmp_path, capsys, monkeypatch
):
    import mfr.embedders.dataset as embed_module

    model, data = setup
    out = tmp_path / "e.npz"
    real, calls = embed_module._decode_batch, []

    def interrupted_second_batch(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(embed_module, "_decode_batch", interrupted_second_batch)
    monkeypatch.setattr(embed_module, "SAVE_EVERY_S", 1e9)
    args = ["embed", data, "--model", model, "--out", out, "--batch-size", 2]
    code, _, err = run_mfr(capsys, *args)
    partial = out.with_name("e.npz.partial.npz")
    assert code == 130 and partial.is_file() and not out.exists()
    assert err.strip().splitlines()[-1] == (
        f"mfr: interrupted; progress saved in {partial}; run the same command again to resume"
    )
    monkeypatch.setattr(embed_module, "_decode_batch", real)
    code, stdout, err = run_mfr(capsys, *args)
    assert code == 0, err
    assert "resumed: 2 images were done by an earlier run" in stdout and "4 embeddings" in stdout


def test_ctrl_c_before_anything_is_saved_says_so_in_embed_and_enroll(
    setup, tmp_path, capsys, monkeypatch
):
    import mfr.embedders.dataset as embed_module
    from mfr.api import FaceRecognizer

    model, data = setup

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(embed_module, "_decode_batch", interrupt)
    code, _, err = run_mfr(capsys, "embed", data, "--model", model, "--out", tmp_path / "e.npz")
    assert code == 130 and err.strip().splitlines()[-1] == "mfr: interrupted; nothing written yet"
    monkeypatch.setattr(FaceRecognizer, "embed_many", interrupt)
    gallery = tmp_path / "g.npz"
    code, _, err = run_mfr(capsys, "enroll", gallery, data, "--model", model)
    assert code == 130 and not gallery.exists()
    assert err.strip().splitlines()[-1] == (
        f"mfr: interrupted; nothing enrolled, {gallery} unchanged; run the same command again"
    )


def test_ctrl_c_in_any_other_command_is_one_line_and_exit_130(setup, capsys, monkeypatch):
    from mfr.gallery import store

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(store.Gallery, "load", interrupt)
    code, _, err = run_mfr(capsys, "gallery", "list", "g.npz")
    assert code == 130
    assert _one_line(err).startswith("mfr: interrupted; no output is half-written")


# ----------------------------------------------------------------------------- 7. mask


def test_mask_early_errors_leave_no_output_folder_behind(tmp_path, capsys):
    from _masking_faces import grace_hopper_path

    from mfr.align.batch import align_folder

    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    code, _, err = run_mfr(capsys, "mask", empty, out, "--quiet")
    assert code == 2 and "no landmarks sidecar" in _one_line(err) and not out.exists()
    (tmp_path / "photos" / "Grace").mkdir(parents=True)
    shutil.copy(grace_hopper_path(), tmp_path / "photos" / "Grace" / "1.jpg")
    aligned = tmp_path / "al"
    align_folder(tmp_path / "photos", aligned, workers=1, progress=False)
    code, _, err = run_mfr(capsys, "mask", aligned, out / "deeper", "--types", "balaclava")
    assert code == 2 and "unknown mask type" in _one_line(err) and not out.exists()


def test_mask_reports_a_size_mismatch_once(tmp_path, capsys, caplog):
    import logging

    from _masking_faces import grace_hopper_path
    from PIL import Image

    from mfr.align.batch import align_folder

    (tmp_path / "photos" / "Grace").mkdir(parents=True)
    shutil.copy(grace_hopper_path(), tmp_path / "photos" / "Grace" / "1.jpg")
    aligned = tmp_path / "al"
    align_folder(tmp_path / "photos", aligned, workers=1, progress=False)
    image = aligned / "Grace" / "1.png"
    Image.open(image).resize((100, 100)).save(image)
    code, _, err = run_mfr(capsys, "mask", aligned, tmp_path / "m", "--quiet")
    assert code == 0
    assert err.count("image is 100x100 px but the landmarks sidecar is for 112x112") == 1, err
    # a warning logged by the library reaches the terminal too (logging's last-resort handler)
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING and "100x100" in r.message]
    assert not warned


def test_commands_failing_on_a_bad_input_create_no_output_folder(setup, tmp_path, capsys):
    model, data = setup
    new = tmp_path / "new"
    for args in (
        ["embed", tmp_path / "missing", "--model", model, "--out", new / "e.npz"],
        ["enroll", new / "g.npz", tmp_path / "missing", "--model", model],
        ["align", tmp_path / "missing", new / "al", "--quiet"],
    ):
        code, _, err = run_mfr(capsys, *args)
        assert code == 2 and "missing" in _one_line(err)
        assert not new.exists(), args


# ----------------------------------------------------------------------------- 8. words


def test_a_folder_or_broken_link_where_a_file_is_expected_is_called_so(setup, tmp_path, capsys):
    model, data = setup
    folder = tmp_path / "afolder"
    folder.mkdir()
    code, _, err = run_mfr(capsys, "identify", folder, data / "Ann" / "0.png")
    assert code == 2 and _one_line(err) == f"mfr: error: {folder}: is a folder, not a gallery"
    code, _, err = run_mfr(capsys, "gallery", "list", folder)
    assert code == 2 and _one_line(err) == f"mfr: error: {folder}: is a folder, not a gallery"
    emb = tmp_path / "e.npz"
    assert run_mfr(capsys, "embed", data, "--model", model, "--out", emb)[0] == 0
    code, _, err = run_mfr(capsys, "eval", emb, "--pairs", folder)
    assert code == 2 and _one_line(err) == f"mfr: error: {folder}: is a folder, not a pairs file"
    broken = tmp_path / "broken.png"
    broken.symlink_to(tmp_path / "gone.png")
    code, _, err = run_mfr(capsys, "verify", data / "Ann" / "0.png", broken, "--model", model)
    assert code == 2
    assert _one_line(err).endswith(
        f"{broken}: is a broken link (to {tmp_path / 'gone.png'}, which does not exist)"
    )


def _ignores_sigint(_) -> bool:
    import signal

    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def test_pool_workers_ignore_ctrl_c_so_only_the_main_process_reports_it():
    import multiprocessing
    import os
    import signal

    from mfr.io import worker_initializer

    context = multiprocessing.get_context("fork")
    with context.Pool(1, initializer=worker_initializer, initargs=(os.getpid,)) as pool:
        assert pool.map(_ignores_sigint, [0]) == [True]
    assert signal.getsignal(signal.SIGINT) != signal.SIG_IGN  # the caller keeps its handler


def test_a_landmarks_sidecar_that_is_a_pickle_is_named_without_unsafe_advice(tmp_path, capsys):
    (tmp_path / "al").mkdir()
    (tmp_path / "al" / "landmarks.npz").write_bytes(pickle.dumps({"paths": []}))
    code, _, err = run_mfr(capsys, "mask", tmp_path / "al", tmp_path / "m", "--quiet")
    line = _one_line(err)
    assert code == 2 and line.endswith("not a landmarks sidecar (.npz) (it is a Python pickle)")
    assert not (tmp_path / "m").exists()
