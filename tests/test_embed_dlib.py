"""dlib baseline embedder, ``mfr embed`` and ``mfr data info|pairs`` end to end."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mfr.cli import main as cli_main
from mfr.data.images import write_image
from mfr.eval.embeddings import load_embeddings


class MeanColourEmbedder:
    """A tiny deterministic embedder: per-column-third mean colours (not mirror-symmetric)."""

    name = "fake"
    dim = 9

    def __init__(self):
        self.calls = 0

    def embed(self, images, aligned=True):
        self.calls += 1
        out = []
        for image in images:
            thirds = np.array_split(image.astype(np.float32), 3, axis=1)
            out.append(np.concatenate([t.mean(axis=(0, 1)) for t in thirds]) + 1.0)
        return np.array(out, dtype=np.float32)


@pytest.fixture
def tiny_dataset(tmp_path, rng):
    root = tmp_path / "faces"
    for identity in ("ann", "bob"):  # 16 px: the smallest crop mfr embed takes
        for i in range(2):
            write_image(root / identity / f"{i}.png", rng.integers(0, 256, (16, 24, 3), np.uint8))
        write_image(
            root / identity / "masked" / "0.png", rng.integers(0, 256, (16, 24, 3), np.uint8)
        )
    (root / "bob" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "ann" / "readme.txt").write_text("not an image")
    return root


@pytest.fixture
def fake_embedder(monkeypatch):
    from mfr.embedders.registry import Resolved

    fake = MeanColourEmbedder()
    monkeypatch.setattr("mfr.embedders.load_embedder", lambda spec, **kw: fake)
    # the model spec names no real file: the fake stands in for whatever it names
    monkeypatch.setattr(
        "mfr.embedders.registry.resolve", lambda spec=None: Resolved(spec, spec, None, "test")
    )
    return fake


def main(argv: list[str]) -> int:
    """``mfr ARGV`` in-process; its exit status."""
    return cli_main(argv)


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_embed_writes_contract_npz_and_skips_bad_files(
    tiny_dataset, tmp_path, fake_embedder, capsys
):
    out = tmp_path / "emb.npz"
    assert (
        main(
            [str(tiny_dataset), "--help"][:0]
            + [
                "embed",
                str(tiny_dataset),
                "--model",
                "x.pt",
                "--out",
                str(out),
                "--batch-size",
                "2",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "broken.jpg" in captured.err and "1 bad files skipped" in captured.out
    emb = load_embeddings(out)
    with np.load(out) as raw:
        assert raw["embeddings"].dtype == np.float32 and raw["domains"].dtype == np.uint8
        assert raw["identities"].dtype.kind == "U" and raw["paths"].dtype.kind == "U"
    assert list(emb.paths) == [
        "ann/0.png",
        "ann/1.png",
        "ann/masked/0.png",
        "bob/0.png",
        "bob/1.png",
        "bob/masked/0.png",
    ]
    assert list(emb.identities) == ["ann"] * 3 + ["bob"] * 3
    assert list(emb.domains) == [0, 0, 1, 0, 0, 1]
    from mfr.data.images import read_image

    expected = MeanColourEmbedder().embed([read_image(tiny_dataset / p) for p in emb.paths])
    np.testing.assert_allclose(emb.embeddings, expected, rtol=1e-6)


def test_flip_averages_normalised_embeddings_of_image_and_mirror(
    tiny_dataset, tmp_path, fake_embedder
):
    from mfr.data.images import read_image
    from mfr.embedders import embed_dataset

    out = tmp_path / "flip.npz"
    embed_dataset(tiny_dataset, "fake", out, flip=True, limit=3, progress=False, log=lambda m: None)
    emb = load_embeddings(out)
    images = [read_image(tiny_dataset / p) for p in emb.paths]
    plain = MeanColourEmbedder().embed(images)
    mirrored = MeanColourEmbedder().embed([im[:, ::-1] for im in images])
    np.testing.assert_allclose(emb.embeddings, _unit(_unit(plain) + _unit(mirrored)), rtol=1e-5)
    assert len(emb) == 3 and not np.allclose(_unit(plain), _unit(mirrored))


def test_embed_exclude_and_no_decodable_image(tiny_dataset, tmp_path, fake_embedder, capsys):
    listing = tmp_path / "ex.txt"
    listing.write_text("ann\n")
    out = tmp_path / "e.npz"
    assert (
        main(
            [
                "embed",
                str(tiny_dataset),
                "--model",
                "f",
                "--out",
                str(out),
                "--exclude",
                str(listing),
            ]
        )
        == 0
    )
    assert set(load_embeddings(out).identities) == {"bob"}
    broken = tmp_path / "broken"
    (broken / "x").mkdir(parents=True)
    (broken / "x" / "a.png").write_bytes(b"")
    assert main(["embed", str(broken), "--model", "f", "--out", str(tmp_path / "b.npz")]) == 2
    assert "no image could be decoded" in capsys.readouterr().err
    assert not (tmp_path / "b.npz").exists()


def test_data_info_lists_counts_and_bad_files(tiny_dataset, capsys):
    assert main(["data", "info", str(tiny_dataset)]) == 0
    text = capsys.readouterr().out
    assert "identities   2" in text
    assert "images       7  (full 5, masked 2)" in text
    assert "identities with both domains 2" in text
    assert "non-image files skipped 1" in text
    assert "bad images   1 of 7" in text
    assert f"  bad {tiny_dataset / 'bob' / 'broken.jpg'}: " in text

    assert main(["data", "info", str(tiny_dataset), "--json", "--no-decode"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["images"] == 7 and info["bad_files"] is None
    assert info["skipped_files"] == [str(tiny_dataset / "ann" / "readme.txt")]

    assert main(["data", "info", str(tiny_dataset), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [b["path"] for b in info["bad_files"]] == [str(tiny_dataset / "bob" / "broken.jpg")]


def test_data_info_missing_folder_is_a_clean_error(tmp_path, capsys):
    assert main(["data", "info", str(tmp_path / "nope")]) == 2
    assert "nope: no such file or folder" in capsys.readouterr().err


def test_data_pairs_mfr2_end_to_end(tmp_path, capsys):
    root = tmp_path / "mfr2"
    (root).mkdir()
    (root / "pairs.txt").write_text("Ann 1 2\nAnn 1 Bob 1\nBob 1 Bob 7\n")
    emb = tmp_path / "emb.npz"
    np.savez(
        emb,
        embeddings=np.ones((3, 4), np.float32),
        identities=np.array(["Ann", "Ann", "Bob"]),
        domains=np.array([1, 0, 0], np.uint8),
        paths=np.array(["Ann/Ann_0001.png", "Ann/Ann_0002.png", "Bob/Bob_0001.png"]),
    )
    out = tmp_path / "pairs.csv"
    assert main(["data", "pairs", "mfr2", str(emb), "--out", str(out), "--root", str(root)]) == 0
    captured = capsys.readouterr()
    assert out.read_text() == "a,b,same\n0,1,1\n0,2,0\n"
    assert "2 of 3 pairs written; 1 left out" in captured.out
    assert "left out pair 3: no embedding for Bob/Bob_0007.png" in captured.err


# -- the real dlib model (a few real images: dlib is slow on CPU) ---------------------------


@pytest.fixture(scope="module")
def dlib_embedder():
    from mfr.embedders.dlib import DlibEmbedder

    return DlibEmbedder()


def test_dlib_fallback_rectangle_for_faceless_image(dlib_embedder, rng):
    noise = rng.integers(0, 256, (100, 80, 3), np.uint8)
    rectangle, detected = dlib_embedder.face_rectangle(noise)
    assert not detected
    assert (rectangle.left(), rectangle.top(), rectangle.right(), rectangle.bottom()) == (
        round(80 * dlib_embedder.margin),
        round(100 * dlib_embedder.margin),
        79 - round(80 * dlib_embedder.margin),
        99 - round(100 * dlib_embedder.margin),
    )
    # the default margin 0.05 shrinks every side by 5 % of the image size (4 and 5 px here)
    assert dlib_embedder.margin == 0.05
    corners = (rectangle.left(), rectangle.top(), rectangle.right(), rectangle.bottom())
    assert corners == (4, 5, 75, 94)
    shrunk = dlib_embedder.fallback_rectangle(100, 80, margin=0.1)
    assert (shrunk.left(), shrunk.top(), shrunk.right(), shrunk.bottom()) == (8, 10, 71, 89)
    before = dlib_embedder.fallback_count
    out = dlib_embedder.embed([noise])
    assert out.shape == (1, 128) and out.dtype == np.float32
    assert dlib_embedder.fallback_count == before + 1


def test_dlib_descriptors_are_normalised_when_asked(dlib_embedder, rng):
    """`mfr embed` loads every model with normalize=True: its files hold unit rows."""
    from mfr.embedders import load_embedder

    noise = rng.integers(0, 256, (100, 80, 3), np.uint8)
    raw = dlib_embedder.embed([noise])
    unit = load_embedder("dlib", normalize=True).embed([noise])
    assert not np.isclose(np.linalg.norm(raw), 1.0)
    np.testing.assert_allclose(unit, _unit(raw), rtol=1e-5)


def test_dlib_batch_matches_single_image_reference(dlib_embedder, data_dir):
    import dlib

    from mfr.data.images import read_image

    image = read_image(data_dir / "mfr2-dev" / "JoeBiden" / "JoeBiden_0002.png")
    rectangle, detected = dlib_embedder.face_rectangle(image)
    assert detected
    shape = dlib_embedder.predictor(image, rectangle)
    reference = np.array(dlib_embedder.model.compute_face_descriptor(image, shape, 0))
    np.testing.assert_allclose(dlib_embedder.embed([image])[0], reference, atol=1e-5)
    assert isinstance(rectangle, dlib.rectangle)


def test_mfr_embed_dlib_on_real_mfr2_images(data_dir, tmp_path, capsys):
    src = tmp_path / "mfr2"
    for identity, numbers in (("JoeBiden", (1, 2, 3)), ("TsaiIngwen", (1, 2, 3))):
        (src / identity).mkdir(parents=True)
        for n in numbers:
            name = f"{identity}_{n:04d}.png"
            shutil.copy(data_dir / "mfr2-dev" / identity / name, src / identity / name)
    labels = (data_dir / "mfr2-dev" / "mfr2_labels.txt").read_text().splitlines()
    keep = [
        line
        for line in labels
        if line.split(",")[0] in ("JoeBiden", "TsaiIngwen") and int(line.split(",")[1]) <= 3
    ]
    (src / "mfr2_labels.txt").write_text("\n".join(keep) + "\n")
    out = tmp_path / "dlib.npz"
    assert main(["embed", str(src), "--model", "dlib", "--out", str(out)]) == 0
    assert "faces not detected" in capsys.readouterr().out
    emb = load_embeddings(out)
    assert emb.embeddings.shape == (6, 128)
    assert sorted(set(emb.identities)) == ["JoeBiden", "TsaiIngwen"]
    assert set(emb.domains) <= {0, 1} and (emb.domains == 1).any()
    x = _unit(emb.embeddings)
    similarity = x @ x.T
    same = emb.identities[:, None] == emb.identities[None, :]
    off_diagonal = ~np.eye(6, dtype=bool)
    assert similarity[same & off_diagonal].mean() > similarity[~same].mean()


def test_interrupted_embed_resumes_and_matches_an_uninterrupted_run(
    tiny_dataset, tmp_path, monkeypatch, fake_embedder
):
    from mfr.embedders import embed_dataset

    class Interrupted(MeanColourEmbedder):
        def embed(self, images, aligned=True):
            if self.calls == 2:
                self.calls += 1
                raise KeyboardInterrupt
            return super().embed(images, aligned)

    quiet = {"progress": False, "log": lambda message: None, "batch_size": 2}
    reference = tmp_path / "ref.npz"
    monkeypatch.setattr("mfr.embedders.load_embedder", lambda spec, **kw: MeanColourEmbedder())
    embed_dataset(tiny_dataset, "m", reference, **quiet)

    out = tmp_path / "run.npz"
    first = Interrupted()
    monkeypatch.setattr("mfr.embedders.load_embedder", lambda spec, **kw: first)
    with pytest.raises(KeyboardInterrupt):
        embed_dataset(tiny_dataset, "m", out, **quiet)
    partial = tmp_path / "run.npz.partial.npz"
    assert partial.is_file() and not out.exists()

    second = MeanColourEmbedder()
    monkeypatch.setattr("mfr.embedders.load_embedder", lambda spec, **kw: second)
    from mfr.embedders.dataset import load_partial

    assert load_partial(partial, "another model or image list", 6) is None
    second.calls = 0
    summary = embed_dataset(tiny_dataset, "m", out, **quiet)
    assert summary["resumed"] and second.calls == 2  # 4 of 6 images were left: 2 batches
    assert not partial.exists()
    done, expected = load_embeddings(out), load_embeddings(reference)
    assert list(done.paths) == list(expected.paths)
    np.testing.assert_array_equal(done.embeddings, expected.embeddings)
    assert summary["bad_files"] == 1
