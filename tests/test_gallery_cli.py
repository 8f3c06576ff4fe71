"""`mfr enroll / identify / verify / gallery`: end to end on tiny inputs, and bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gallery_helpers import face_like, run_mfr, tiny_onnx, write_png

from mfr.gallery.store import Gallery


def make_dataset(root, rng, identities=5, full=2, masked=2):
    """ROOT/<id>/<n>.png full faces and ROOT/<id>/masked/<n>.png with the lower half masked."""
    for i in range(identities):
        for n in range(full):
            write_png(root / f"id{i}" / f"{n}.png", face_like(rng, i))
        for n in range(masked):
            image = face_like(rng, i)
            image[60:] = (90, 140, 200)
            write_png(root / f"id{i}" / "masked" / f"{n}.png", image)
    return root


@pytest.fixture
def setup(tmp_path, rng):
    model = tiny_onnx(tmp_path / "tiny.onnx", threshold=0.5)
    data = make_dataset(tmp_path / "data", rng)
    gallery = tmp_path / "g.npz"
    return model, data, gallery


def enrolled(setup, capsys):
    model, data, gallery = setup
    code, out, err = run_mfr(capsys, "enroll", gallery, data, "--model", model)
    assert code == 0, err
    return out


def test_enroll_a_dataset_takes_full_faces_only_and_records_the_model(setup, capsys):
    model, _, gallery = setup
    assert "enrolled 10 images of 5 identities" in enrolled(setup, capsys)
    store = Gallery.load(gallery)
    assert store.identity_counts() == {f"id{i}": 2 for i in range(5)}
    assert not any("masked" in p for p in store.paths)
    assert store.model.spec == str(model.resolve()) and store.model.dim == 16


def test_enrolling_the_same_photos_again_adds_nothing(setup, capsys):
    _, data, gallery = setup
    enrolled(setup, capsys)
    code, out, err = run_mfr(capsys, "enroll", gallery, data)  # model taken from the gallery
    assert code == 0 and "already enrolled" in err and "nothing new" in out
    assert len(Gallery.load(gallery)) == 10


def test_identify_json_lists_top_k_and_rank1_matches_eval(setup, capsys, tmp_path):
    from mfr.api import FaceRecognizer
    from mfr.eval.embeddings import load_embeddings, save_embeddings
    from mfr.eval.retrieval import evaluate_retrieval

    model, data, gallery = setup
    enrolled(setup, capsys)
    probes = sorted(data.glob("*/masked/*.png"))
    code, out, err = run_mfr(capsys, "identify", gallery, *probes, "--k", "3", "--json")
    assert code == 0, err
    results = json.loads(out)["results"]
    assert len(results) == len(probes) and all(len(r["matches"]) == 3 for r in results)
    scores = [m["score"] for m in results[0]["matches"]]
    assert scores == sorted(scores, reverse=True)
    cli_rank1 = np.mean([r["matches"][0]["identity"] == r["photo"].split("/")[-3] for r in results])
    # the same model's embeddings of the same images, through the evaluation code
    full = sorted(p for p in data.glob("*/*.png"))
    recognizer = FaceRecognizer.load(model)
    emb = tmp_path / "emb.npz"
    paths = full + probes
    save_embeddings(
        emb,
        recognizer.embed(paths),
        np.array(
            [p.parent.name if p.parent.name != "masked" else p.parent.parent.name for p in paths]
        ),
        np.array([0] * len(full) + [1] * len(probes), np.uint8),
        np.array([str(p) for p in paths]),
    )
    assert cli_rank1 == pytest.approx(evaluate_retrieval(load_embeddings(emb)).rank(1))


def test_identify_table_and_faiss_give_the_same_ranking(setup, capsys):
    _, data, gallery = setup
    enrolled(setup, capsys)
    probes = sorted(data.glob("*/masked/*.png"))
    exact = json.loads(run_mfr(capsys, "identify", gallery, *probes, "--json")[1])
    faiss = json.loads(run_mfr(capsys, "identify", gallery, *probes, "--json", "--faiss")[1])
    for e, f in zip(exact["results"], faiss["results"], strict=True):
        assert [m["identity"] for m in e["matches"]] == [m["identity"] for m in f["matches"]]
    code, out, _ = run_mfr(capsys, "identify", gallery, probes[0], "--k", "2")
    top = [m["identity"] for m in exact["results"][0]["matches"][:2]]
    assert code == 0 and "identity" in out and all(name in out for name in top)


def test_gallery_list_remove_rename(setup, capsys):
    _, _, gallery = setup
    enrolled(setup, capsys)
    code, out, _ = run_mfr(capsys, "gallery", "list", gallery, "--json")
    assert json.loads(out)["identities"] == {f"id{i}": 2 for i in range(5)}
    assert run_mfr(capsys, "gallery", "rename", gallery, "id1", "ann")[0] == 0
    assert run_mfr(capsys, "gallery", "remove", gallery, "id2")[0] == 0
    store = Gallery.load(gallery)
    assert set(store.identity_counts()) == {"id0", "ann", "id3", "id4"}
    first = int(store.ids[0])
    assert run_mfr(capsys, "gallery", "remove", gallery, "--entry", first)[0] == 0
    assert len(Gallery.load(gallery)) == 7
    code, _, err = run_mfr(capsys, "gallery", "remove", gallery, "nobody")
    assert code == 2 and "no identity 'nobody'" in err
    code, out, _ = run_mfr(capsys, "gallery", "list", gallery)
    assert "4 identities, 7 images" in out


def test_single_photo_enrolment_needs_a_name(setup, capsys):
    _, data, gallery = setup
    photo = data / "id0" / "0.png"
    code, _, err = run_mfr(capsys, "enroll", gallery, photo, "--model", setup[0])
    assert code == 2 and "needs --name" in err
    code, out, _ = run_mfr(capsys, "enroll", gallery, photo, "--model", setup[0], "--name", "Zoe")
    assert code == 0 and Gallery.load(gallery).identity_counts() == {"Zoe": 1}


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mfr: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_bad_photos_give_one_clear_message_each_and_leave_the_gallery_intact(
    setup, capsys, tmp_path
):
    model, data, gallery = setup
    enrolled(setup, capsys)
    before = gallery.read_bytes()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    blank = write_png(tmp_path / "blank.png", np.full((150, 200, 3), 128, np.uint8))
    for photo, reason in [(broken, "broken.jpg"), (blank, "blank.png: no face found")]:
        for args in (["enroll", gallery, photo, "--name", "x"], ["identify", gallery, photo]):
            code, _, err = run_mfr(capsys, *args)
            assert code == 2 and reason in one_error_line(err)
        assert gallery.read_bytes() == before
    # in a batch: each bad file is a logged skip, then a count; good files still go through
    good = data / "id0" / "masked" / "0.png"
    code, out, err = run_mfr(capsys, "identify", gallery, good, broken, blank, "--json")
    assert code == 0
    assert "skipped 2 of 3 images" in err and "broken.jpg" in err and "no face found" in err
    assert [r["photo"] for r in json.loads(out)["results"]] == [str(good)]
    assert len(json.loads(out)["skipped"]) == 2


def test_several_faces_take_the_largest_and_say_so(setup, capsys, tmp_path, data_dir):
    import cv2

    from mfr.data.images import read_image

    model, _, gallery = setup
    lfw = sorted((data_dir / "lfw" / "images").glob("*/*.jpg"))[:2]
    left, right = (read_image(p) for p in lfw)
    right = cv2.resize(right, (180, 180))
    canvas = np.full((250, 450, 3), 255, np.uint8)
    canvas[:, :250], canvas[35:215, 260:440] = left, right
    group = write_png(tmp_path / "group.png", canvas)
    code, out, err = run_mfr(capsys, "enroll", gallery, group, "--model", model, "--name", "A")
    assert code == 0, err
    assert "group.png: 2 faces found, using the largest" in err


def test_gallery_of_another_model_or_size_is_refused_and_left_intact(setup, capsys, tmp_path):
    model, data, gallery = setup
    enrolled(setup, capsys)
    before = gallery.read_bytes()
    photo = data / "id0" / "masked" / "0.png"
    other = tiny_onnx(tmp_path / "other.onnx", seed=7)
    wider = tiny_onnx(tmp_path / "wider.onnx", dim=32)
    for spec, reason in [(other, "gallery was enrolled with model"), (wider, "16-d embeddings")]:
        for args in (["enroll", gallery, photo, "--name", "x"], ["identify", gallery, photo]):
            code, _, err = run_mfr(capsys, *args, "--model", spec)
            assert code == 2 and reason in one_error_line(err)
    assert gallery.read_bytes() == before


def test_corrupt_gallery_is_one_clear_error_and_left_untouched(setup, capsys):
    model, data, gallery = setup
    gallery.write_bytes(b"PK\x03\x04garbage")  # a zip's first bytes, then nothing usable
    photo = data / "id0" / "0.png"
    for args in (
        ["enroll", gallery, photo, "--name", "x", "--model", model],
        ["identify", gallery, photo],
        ["gallery", "list", gallery],
        ["gallery", "rename", gallery, "a", "b"],
    ):
        code, _, err = run_mfr(capsys, *args)
        assert code == 2 and "corrupt or unreadable gallery file" in one_error_line(err)
    assert gallery.read_bytes() == b"PK\x03\x04garbage"


def test_verify_prints_similarity_and_decision(setup, capsys):
    model, data, _ = setup
    a, b = data / "id0" / "0.png", data / "id0" / "masked" / "0.png"
    code, out, _ = run_mfr(capsys, "verify", a, b, "--model", model, "--json")
    result = json.loads(out)
    assert code == 0 and result["threshold"] == 0.5
    assert result["same"] == (result["similarity"] > 0.5)
    code, out, _ = run_mfr(capsys, "verify", a, b, "--model", model, "--threshold", "-1")
    assert code == 0 and out.startswith("same person: similarity")
