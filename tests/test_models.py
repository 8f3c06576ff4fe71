"""Named models and default decisions: the registry, the default model, dlib's threshold, and
a model without a threshold refusing to decide."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _train_data import make_dataset, tiny_overrides
from gallery_helpers import face_like, run_mfr, write_png

from mfr.api import FaceRecognizer
from mfr.data.images import read_image
from mfr.embedders import registry
from mfr.errors import MfrError


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A 2-step tiny recognizer checkpoint (no threshold)."""
    from mfr.train.config import TrainConfig, apply_overrides
    from mfr.train.recognizer import train

    root = tmp_path_factory.mktemp("tiny")
    data = make_dataset(root / "data")
    config = apply_overrides(TrainConfig(), tiny_overrides(data, steps=2, checkpoint_every=0))
    train(config, root / "run", log=lambda _: None)
    return root / "run" / "final.pt"


def _install(checkpoint, threshold, name="mfr-masked"):
    record = {"steps": 2, "seed": 0, "commit": "abc1234", "data": ["tiny"],
              "heldout": {"rank1": 50.0, "mAP": 40.0, "probes": 4}}  # fmt: skip
    if threshold is not None:
        record |= {"threshold": threshold, "operating_point": "best accuracy on 8 test pairs"}
    return registry.install(name, checkpoint, record)


def test_without_installed_models_the_default_is_dlib_resnet_and_says_why():
    resolved = registry.resolve(None)
    assert resolved.spec == "dlib-resnet" and resolved.source == "dlib-resnet"
    assert "no mfr-masked installed" in resolved.note
    assert resolved.threshold == registry.BUILTIN["dlib-resnet"]
    recognizer = FaceRecognizer.load()
    assert recognizer.model.spec == "dlib-resnet"
    assert recognizer.threshold == registry.BUILTIN["dlib-resnet"].value
    assert recognizer.operating_point == registry.BUILTIN["dlib-resnet"].operating_point
    # dlib's rule needs the raw descriptors' lengths: the embedder must not normalise
    assert recognizer.distance_rule == 0.6 and recognizer.embedder.normalize is False
    first, second = recognizer.embed_many(
        [face_like(np.random.default_rng(0), 0), face_like(np.random.default_rng(1), 1)],
        aligned=True, raw=True,
    ).embeddings  # fmt: skip
    la, lb = np.linalg.norm(first), np.linalg.norm(second)
    assert not np.isclose(la, 1.0)
    decision = recognizer.decide(face_like(np.random.default_rng(0), 0),
                                 face_like(np.random.default_rng(1), 1), aligned=True)  # fmt: skip
    assert decision.threshold == pytest.approx((la**2 + lb**2 - 0.36) / (2 * la * lb), abs=1e-5)


def test_installed_model_resolves_by_name_and_becomes_the_default(tiny_checkpoint, model_home):
    installed = _install(tiny_checkpoint, 0.25)
    assert installed.folder == model_home / "models" / "mfr-masked"
    assert (installed.folder / "model.pt").read_bytes() == tiny_checkpoint.read_bytes()
    by_name = FaceRecognizer.load("mfr-masked")
    default = FaceRecognizer.load()
    for recognizer in (by_name, default):
        assert recognizer.model.spec == "mfr-masked"
        assert (recognizer.threshold, recognizer.operating_point) == (
            0.25,
            "best accuracy on 8 test pairs",
        )
    assert "default: the best installed model" in default.note
    assert by_name.model.fingerprint == FaceRecognizer.load(str(tiny_checkpoint)).model.fingerprint


def test_cli_reports_the_default_model_and_its_operating_point(
    tiny_checkpoint, tmp_path, capsys, rng
):
    _install(tiny_checkpoint, -1.0)
    a = write_png(tmp_path / "set" / "p0" / "a.png", face_like(rng, 0))
    b = write_png(tmp_path / "set" / "p1" / "b.png", face_like(rng, 1))
    code, out, err = run_mfr(capsys, "verify", a, b, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["model"] == "mfr-masked" and result["threshold"] == -1.0
    assert result["same"] is (result["similarity"] > -1.0) is True
    assert result["operating_point"] == "best accuracy on 8 test pairs"
    assert "model: mfr-masked (default: the best installed model" in err
    code, out, err = run_mfr(capsys, "verify", a, b)
    assert code == 0 and "operating point: best accuracy on 8 test pairs" in out
    code, out, err = run_mfr(capsys, "embed", tmp_path / "set", "--out", tmp_path / "e.npz")
    assert code == 0 and "model: mfr-masked (default" in err


def test_model_list_shows_provenance_and_the_default(tiny_checkpoint, capsys):
    code, out, _ = run_mfr(capsys, "model", "list", "--json")
    assert code == 0 and json.loads(out)["default"] == "dlib-resnet"
    _install(tiny_checkpoint, 0.3)
    code, out, _ = run_mfr(capsys, "model", "list", "--json")
    listing = json.loads(out)
    assert listing["default"] == "mfr-masked"
    (model,) = listing["installed"]
    assert (model["name"], model["commit"], model["steps"]) == ("mfr-masked", "abc1234", 2)
    assert set(listing["builtin"]) == {"dlib", "dlib-resnet"}
    code, out, _ = run_mfr(capsys, "model", "list")
    assert "mfr-masked (default): built" in out and "Rank-1 50.0" in out


def test_model_without_a_threshold_refuses_to_decide(tiny_checkpoint, tmp_path, capsys, rng):
    _install(tiny_checkpoint, None, name="no-threshold")
    recognizer = FaceRecognizer.load("no-threshold")
    assert recognizer.threshold is None and recognizer.operating_point is None
    with pytest.raises(MfrError, match="refuses to decide"):
        recognizer.verify(face_like(rng, 0), face_like(rng, 1))
    a = write_png(tmp_path / "a.png", face_like(rng, 0))
    code, out, err = run_mfr(capsys, "verify", a, a, "--model", "no-threshold", "--json")
    assert code == 2 and out == ""
    assert err.strip().splitlines()[-1].startswith("mfr: error: no-threshold: no calibrated")
    code, out, _ = run_mfr(capsys, "verify", a, a, "--model", "no-threshold", "--threshold", "0")
    assert code == 0 and "same person" in out and "given by the caller" in out


def test_unknown_model_name_is_one_clear_error(capsys, tmp_path, rng):
    with pytest.raises(MfrError, match="nope: no such model file or installed model"):
        FaceRecognizer.load("nope")
    a = write_png(tmp_path / "a.png", face_like(rng, 0))
    code, _, err = run_mfr(capsys, "verify", a, a, "--model", "nope")
    assert code == 2 and "mfr: error: nope: no such model" in err


def test_install_refuses_builtin_names(tiny_checkpoint):
    with pytest.raises(MfrError, match="not built-in"):
        registry.install("dlib", tiny_checkpoint, {})


def _lfw(data_dir, name, number):
    return data_dir / "lfw" / "images" / name / f"{name}_{number:04d}.jpg"


# (name, number) pairs from LFW pairs.csv fold 1, and the Powell vs Blair
LFW_PAIRS = [
    (("Colin_Powell", 1), ("Tony_Blair", 1), False),
    (("Abel_Pacheco", 1), ("Abel_Pacheco", 4), True),
    (("Jacques_Rogge", 1), ("Jacques_Rogge", 9), True),
    (("Juan_Pablo_Montoya", 1), ("Juan_Pablo_Montoya", 8), True),  # short descriptors
    (("Noah_Wyle", 2), ("Noah_Wyle", 3), True),
    (("Abdel_Madi_Shabneh", 1), ("Dean_Barker", 1), False),
    (("Leon_LaPorte", 1), ("Tommy_Thompson", 5), False),
]


def test_dlib_decides_by_dlibs_distance_rule_at_the_descriptors_real_length(data_dir):
    """dlib's documented rule: same person when the raw descriptors are < 0.6 apart."""
    from mfr.embedders.dlib import DlibEmbedder
    from mfr.embedders.faces import prepare_face

    recognizer = FaceRecognizer.load("dlib")
    assert recognizer.threshold == pytest.approx(1 - 0.36 / (2 * registry.DLIB_LENGTH**2))
    assert "Euclidean distance < 0.6" in recognizer.operating_point
    raw = DlibEmbedder()
    for (name_a, n_a), (name_b, n_b), same in LFW_PAIRS:
        a, b = _lfw(data_dir, name_a, n_a), _lfw(data_dir, name_b, n_b)
        crops = [prepare_face(read_image(p), aligned=False, where=str(p)).crop for p in (a, b)]
        first, second = raw.embed(crops, aligned=True)
        distance = float(np.linalg.norm(first - second))
        decision = recognizer.decide(a, b, aligned=False)
        assert decision.same is (distance < 0.6) is same, f"{a.name} vs {b.name}: {distance}"
        # the threshold is the cosine at which these two descriptors are 0.6 apart
        la, lb = np.linalg.norm(first), np.linalg.norm(second)
        cosine_at_rule = (la**2 + lb**2 - 0.36) / (2 * la * lb)
        assert decision.threshold == pytest.approx(cosine_at_rule, abs=1e-5)
        assert decision.similarity == pytest.approx(first @ second / (la * lb), abs=1e-5)
    assert recognizer.verify(*(_lfw(data_dir, *p) for p in LFW_PAIRS[0][:2]))[1] is False


def test_model_build_trains_calibrates_and_installs_a_model_every_command_then_uses(
    data_dir, tmp_path, capsys, model_home
):
    """`mfr model build` end to end on 8 LFW identities (3 photos each, 2 held out)."""
    people = tmp_path / "people"
    names = ["Colin_Powell", "Tony_Blair", "Gerhard_Schroeder", "Jacques_Chirac",
             "Ariel_Sharon", "Hugo_Chavez", "Jean_Chretien", "John_Ashcroft"]  # fmt: skip
    for name in names:
        (people / name).mkdir(parents=True)
        for number in (1, 2, 3):
            (people / name / f"{name}_{number:04d}.jpg").symlink_to(_lfw(data_dir, name, number))
    args = ["model", "build", "--data", people, "--steps", "3", "--warmup", "1", "--heldout",
            "2", "--work", tmp_path / "work", "--runs", tmp_path / "runs", "--set", "p=3",
            "--set", "k=2", "--set", "workers=0", "--set", "log_every=1"]  # fmt: skip
    code, out, err = run_mfr(capsys, *args)
    assert code == 0, err
    assert "head warm-up: backbone frozen for steps 1-1" in err
    record = json.loads((model_home / "models" / "mfr-masked" / "model.json").read_text())
    heldout = set(record["heldout_identities"])
    assert len(heldout) == 2 and heldout < set(names)
    assert (record["steps"], record["head_warmup_steps"], record["seed"]) == (3, 1, 0)
    assert record["training_images"]["identities"] == 6  # the held-out two never trained on
    assert record["data"] == [str(people)] and record["commit"]
    assert "held-out identities" in record["operating_point"]
    figures = record["heldout"]
    assert figures["probes"] == 4 and figures["calibration_pairs"] == 8  # 2 ids x 2 probes
    recognizer = FaceRecognizer.load()
    assert recognizer.model.spec == "mfr-masked"
    assert recognizer.threshold == pytest.approx(record["threshold"])
    assert f"threshold {record['threshold']:.4f}" in out


def test_far_threshold_accepts_the_given_fraction_of_impostor_pairs(rng):
    from mfr.experiments.model_build import far_threshold

    unit = rng.normal(size=(60, 8))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    identities = np.repeat(np.arange(20), 3)
    threshold, count = far_threshold(unit, identities, far=0.05)
    impostors = [float(unit[i] @ unit[j]) for i in range(60) for j in range(i + 1, 60)
                 if identities[i] != identities[j]]  # fmt: skip
    assert count == len(impostors) == 60 * 59 // 2 - 20 * 3
    accepted = np.mean(np.array(impostors) > threshold)
    assert accepted == pytest.approx(0.05, abs=1 / count)


def test_far_threshold_leaves_out_impostor_pairs_of_two_masked_faces(rng):
    from mfr.experiments.model_build import far_threshold

    unit = rng.normal(size=(60, 8))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    identities = np.repeat(np.arange(20), 3)
    domains = np.tile([0, 1, 1], 20)
    threshold, count = far_threshold(unit, identities, domains, far=0.05)
    impostors = [float(unit[i] @ unit[j]) for i in range(60) for j in range(i + 1, 60)
                 if identities[i] != identities[j] and not (domains[i] and domains[j])]  # fmt: skip
    assert count == len(impostors)
    accepted = np.mean(np.array(impostors) > threshold)
    assert accepted == pytest.approx(0.05, abs=1 / count)
