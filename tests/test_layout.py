"""The dataset-layout module: suffixes, the walk, identity folders, MFR2, LFW, manifests and
masked twins, each on a tiny tree; and the readers that used their own copies (alignment,
GAN data, masking, distillation) giving the same results through it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mfr.data import layout
from mfr.data.dataset import load_index
from mfr.data.layout import (
    FULL,
    IMAGE_SUFFIXES,
    MASKED,
    classify,
    full_twin_path,
    image_relpath,
    is_image_path,
    list_identity_folders,
    list_identity_images,
    list_layout,
    list_manifest,
    list_mfr2,
    masked_relpath,
    mfr2_image_path,
    read_mfr2_labels,
    relpath_row,
    twin_finished,
    twin_paths,
    write_manifest_rows,
    write_twin,
    write_twin_manifest,
)
from mfr.errors import MfrError


def _touch(root: Path, *relpaths: str) -> None:
    for rel in relpaths:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rel.encode())  # no reader here decodes; distinct bytes per file


def _rows(listing) -> list[tuple[str, str, int]]:
    return [
        (p.relative_to(listing.root).as_posix(), i, d)
        for p, i, d in zip(listing.paths, listing.identities, listing.domains)
    ]


# ----------------------------------------------------------------------------- suffixes, walk


def test_the_suffix_set_and_its_test_ignore_case():
    expected = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".avif", ".tif", ".tiff", ".gif",
                ".ppm", ".pgm"}  # fmt: skip
    assert expected == IMAGE_SUFFIXES
    assert all(s == s.lower() and s.startswith(".") for s in IMAGE_SUFFIXES)
    assert is_image_path("a/B.JPG") and is_image_path(Path("x.Tiff"))
    assert not is_image_path("x.txt") and not is_image_path("x.heic") and not is_image_path("x")


def test_classify_gives_the_reason_a_file_is_not_an_image(tmp_path):
    assert classify(tmp_path / "a.PNG") is None
    assert classify(tmp_path / "._a.jpg") == "hidden file"
    assert "HEIC/HEIF" in classify(tmp_path / "IMG_1.HEIC")
    assert classify(tmp_path / "notes.txt") == "not an image file (suffix .txt)"
    assert classify(tmp_path / "README") == "not an image file (suffix none)"
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    assert classify(tmp_path / "gone.jpg") == "broken symbolic link"


# ----------------------------------------------------------------------------- layouts


@pytest.fixture
def folders(tmp_path):
    root = tmp_path / "faces"
    _touch(
        root,
        "bob/b1.jpg",
        "bob/masked/b1.jpg",
        "bob/masked/deeper/b2.PNG",
        "alice/a1.png",
        "alice/notes.txt",
        "alice/._a1.png",
        "_labels/bob/b1.png",
        ".cache/x.png",
        "landmarks.npz",
        "manifest.csv",
        "stray.png",
    )
    return root


def test_identity_folders_give_identity_and_domain_from_the_path(folders):
    listing = list_identity_folders(folders)
    assert listing.kind == "folder" and listing.root == folders
    assert _rows(listing) == [
        ("alice/a1.png", "alice", FULL),
        ("bob/b1.jpg", "bob", FULL),
        ("bob/masked/b1.jpg", "bob", MASKED),
        ("bob/masked/deeper/b2.PNG", "bob", MASKED),
    ]
    skipped = sorted(p.relative_to(folders).as_posix() for p in listing.skipped)
    assert skipped == ["alice/._a1.png", "alice/notes.txt", "stray.png"]  # sidecars ignored


def test_a_folder_manifest_replaces_the_walk_unless_told_not_to(folders):
    write_manifest_rows(folders / "manifest.csv", [("alice/a1.png", "Alice A", 1)])
    listing = list_layout(folders)
    assert listing.kind == "manifest" and _rows(listing) == [("alice/a1.png", "Alice A", 1)]
    assert list_layout(folders, use_manifest=False).kind == "folder"


def test_mfr2_labels_decide_the_domain(tmp_path):
    root = tmp_path / "mfr2"
    _touch(root, "Ann/Ann_0001.png", "Ann/Ann_0002.jpg", "Ann/Ann_0003.png", "Ann/extra.png",
           "Ann/info.txt", "Bo/Bo_0001.png", "pairs.txt")  # fmt: skip
    (root / "mfr2_labels.txt").write_text(
        "Ann, 1, No-Mask\nAnn, 2, surgical_blue\n\nAnn, 3, no-mask\nBo, 1, KN95\nBo, 2, cloth\n"
    )
    assert read_mfr2_labels(root / "mfr2_labels.txt")[:2] == [
        ("Ann", 1, "No-Mask"),
        ("Ann", 2, "surgical_blue"),
    ]
    assert mfr2_image_path(root, "Ann", 2) == root / "Ann/Ann_0002.jpg"  # the PNG is absent
    assert mfr2_image_path(root, "Bo", 2) == root / "Bo/Bo_0002.png"  # neither: the PNG
    listing = list_layout(root)
    assert listing.kind == "mfr2" and listing == list_mfr2(root)
    assert _rows(listing) == [
        ("Ann/Ann_0001.png", "Ann", FULL),
        ("Ann/Ann_0002.jpg", "Ann", MASKED),
        ("Ann/Ann_0003.png", "Ann", FULL),
        ("Bo/Bo_0001.png", "Bo", MASKED),
    ]
    assert listing.missing == [root / "Bo/Bo_0002.png"]
    assert listing.unlabeled == [root / "Ann/extra.png"]
    assert sorted(listing.skipped) == [root / "Ann/extra.png", root / "Ann/info.txt"]


@pytest.mark.parametrize(
    "line", ["Ann 1 no-mask", "Ann, x, no-mask", "../x, 1, no-mask", ", 1, no-mask"]
)
def test_a_bad_mfr2_label_line_names_the_file_and_line(tmp_path, line):
    labels = tmp_path / "mfr2_labels.txt"
    labels.write_text(f"Ann, 1, no-mask\n{line}\n")
    with pytest.raises(MfrError, match=re.escape(f"{labels} line 2:")):
        read_mfr2_labels(labels)


def test_the_lfw_root_walks_images_as_full_faces(tmp_path):
    root = tmp_path / "lfw"
    _touch(root, "images/Ann_B/Ann_B_0001.jpg", "images/Ann_B/masked/Ann_B_0002.jpg",
           "meta/pairs.csv")  # fmt: skip
    listing = list_layout(root)
    assert listing.kind == "lfw" and listing.root == root
    assert _rows(listing) == [
        ("images/Ann_B/Ann_B_0001.jpg", "Ann_B", FULL),
        ("images/Ann_B/masked/Ann_B_0002.jpg", "Ann_B", MASKED),  # the contract rule
    ]
    assert layout.is_lfw_root(root) and not layout.is_lfw_root(root / "images")


def test_a_manifest_round_trips_and_its_errors_name_the_line(tmp_path):
    _touch(tmp_path, "a/1.png", "a/masked/1.png", "b/2.jpg")
    rows = [("a/1.png", "a", 0), ("a/masked/1.png", "a", 1), ("b/2.jpg", "b b", 0)]
    target = write_manifest_rows(tmp_path / "m.csv", rows)
    assert target.read_text().splitlines()[0] == "path,identity,domain"
    listing = list_manifest(target)
    assert listing.kind == "manifest" and listing.root == tmp_path and _rows(listing) == rows
    assert list_layout(target) == listing
    for body, problem in [
        ("file,who,domain\n", "line 1: bad manifest header"),
        ("path,identity,domain\na/1.png,a,2\n", "line 2: domain must be 0 or 1"),
        ("path,identity,domain\n\na/1.png,a\n", "line 3: expected 3 fields"),
        ("path,identity,domain\nc/3.png,c,0\n", "line 2: image not found"),
    ]:
        (tmp_path / "bad.csv").write_text(body)
        with pytest.raises(MfrError, match=problem):
            list_manifest(tmp_path / "bad.csv")
    (tmp_path / "photo.jpg").write_bytes(b"x")
    with pytest.raises(MfrError, match="not a dataset"):
        list_layout(tmp_path / "photo.jpg")


# ----------------------------------------------------------------------------- masked twins


def test_twin_paths_round_trip(tmp_path):
    full, masked, label = twin_paths(tmp_path, "alice/a 1.jpg")
    assert full == tmp_path / "alice/a 1.jpg"
    assert masked == tmp_path / "alice/masked/a 1.jpg"
    assert label == tmp_path / "_labels/alice/a 1.png"
    assert full_twin_path(masked) == full and full_twin_path(full) == full
    assert masked_relpath("alice/a 1.jpg") == "alice/masked/a 1.jpg"
    assert image_relpath("alice", MASKED, "a 1.jpg") == masked_relpath("alice/a 1.jpg")
    assert image_relpath("alice", FULL, "a 1.jpg") == "alice/a 1.jpg"
    assert relpath_row(masked_relpath("alice/a 1.jpg")) == ("alice/masked/a 1.jpg", "alice", 1)
    assert relpath_row("alice/a 1.jpg") == ("alice/a 1.jpg", "alice", 0)


def test_the_twin_writer_gives_a_dataset_its_manifest_and_its_walk_agree_on(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    _touch(src, "bob/b1.jpg", "alice/a1.png")
    relpaths = ["bob/b1.jpg", "alice/a1.png"]
    assert not twin_finished(dst, "bob/b1.jpg")
    for relpath in relpaths:
        write_twin(dst, relpath, src / relpath, masked=b"twin", label=b"label")
        assert twin_finished(dst, relpath)
    full, masked, label = twin_paths(dst, "bob/b1.jpg")
    assert full.read_bytes() == b"bob/b1.jpg" and masked.read_bytes() == b"twin"
    assert label.read_bytes() == b"label"
    write_twin_manifest(dst, relpaths)
    assert (dst / "manifest.csv").read_text().splitlines() == [
        "path,identity,domain",
        "alice/a1.png,alice,0",
        "alice/masked/a1.png,alice,1",
        "bob/b1.jpg,bob,0",
        "bob/masked/b1.jpg,bob,1",
    ]
    manifest = load_index(dst)
    walked = load_index(dst, use_manifest=False)
    assert manifest.kind == "manifest" and walked.kind == "folder"
    assert sorted(_rows(list_layout(dst))) == sorted(_rows(list_layout(dst, use_manifest=False)))
    assert not walked.skipped  # labels under _labels/, manifest a sidecar


# ----------------------------------------------------------------------------- the old readers


def test_alignment_lists_what_load_index_reads_in_every_layout(folders, tmp_path):
    from mfr.align import batch

    (folders / "manifest.csv").unlink()
    lfw = tmp_path / "lfw"
    _touch(lfw, "images/Ann/Ann_0001.jpg", "images/Ann/masked/Ann_0001.jpg", "meta/x.csv")
    manifest = write_manifest_rows(tmp_path / "m.csv", [("faces/bob/b1.jpg", "Bob", 1)])
    for src in (folders, lfw, manifest):
        index = load_index(src)
        skipped = []
        items = batch.list_sources(src, skipped)
        assert [i.source for i in items] == index.paths and skipped == index.skipped
        assert [relpath_row(i.output)[1:] for i in items] == list(
            zip(index.identities, index.domains.tolist())
        )
    assert [i.name for i in batch.list_sources(lfw)] == [
        "Ann/Ann_0001.jpg",
        "Ann/masked/Ann_0001.jpg",  # names relative to lfw/images, as before
    ]
    assert [i.output for i in batch.list_sources(manifest)] == ["Bob/masked/b1.png"]


def test_alignment_of_mfr2_matches_its_former_reader(tmp_path):
    from mfr.align import batch

    root = tmp_path / "mfr2"
    _touch(root, "Ann/Ann_0001.png", "Ann/Ann_0002.png", "Bo/Bo_0001.jpg", "Bo/Bo_0007.png",
           "_x/y.png", "pairs.txt")  # fmt: skip
    (root / "mfr2_labels.txt").write_text("Ann, 1, no-mask\nAnn, 2, cloth\nBo, 1, KN95\n")

    def former(root: Path) -> list[tuple[str, str]]:  # the reader align/batch.py had
        masked = {(i, n): t != "no-mask" for i, n, t in read_mfr2_labels(root / "mfr2_labels.txt")}
        out = []
        for path in sorted(root.glob("*/*")):
            if not is_image_path(path) or path.parent.name.startswith(("_", ".")):
                continue
            number = int(re.search(r"(\d+)$", path.stem).group(1))
            domain = int(masked.get((path.parent.name, number), False))
            out.append((path.relative_to(root).as_posix(),
                        image_relpath(path.parent.name, domain, path.stem + ".png")))  # fmt: skip
        return out

    skipped = []
    items = batch.list_sources(root, skipped)
    assert [(i.name, i.output) for i in items] == former(root)
    assert ("Bo/Bo_0007.png", "Bo/Bo_0007.png") in former(root)  # unlabelled: a full face
    assert not skipped  # pairs.txt and the labels file are part of the layout


def test_gan_full_faces_are_the_full_faces_directly_in_identity_folders(folders):
    from mfr.data import gan_data

    assert gan_data.list_identity_images is list_identity_images
    faces = list_identity_images(folders)
    assert faces == {"alice": [folders / "alice/a1.png"], "bob": [folders / "bob/b1.jpg"]}
    index = load_index(folders, use_manifest=False)
    full = [p for p, d in zip(index.paths, index.domains) if d == FULL]
    assert sorted(p for files in faces.values() for p in files) == sorted(full)
    with pytest.raises(MfrError, match="dataset folder not found"):
        list_identity_images(folders / "nobody")


def test_distillation_pairs_each_twin_with_the_full_face_the_writer_wrote(tmp_path):
    from mfr.distill import full_twin_path as distill_twin

    assert distill_twin is full_twin_path
    full, masked, _ = twin_paths(tmp_path, "carol/c.png")
    assert distill_twin(masked) == full


def test_real_mfr2_dev_aligns_what_load_index_reads(data_dir):
    from mfr.align import batch

    index = load_index(data_dir / "mfr2-dev")
    items = batch.list_sources(data_dir / "mfr2-dev")
    assert len(items) == len(index) == 125 and not index.missing
    assert sorted(i.source for i in items) == sorted(index.paths)
    domain = dict(zip(index.paths, index.domains.tolist()))
    assert all(relpath_row(i.output)[2] == domain[i.source] for i in items)
