"""Datasets: the contract folder walk, manifests, MFR2 and LFW layouts, exclusion, subsets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mfr.data.dataset import load_index, read_manifest, write_manifest
from mfr.errors import MfrError


def _touch(root: Path, *relpaths: str) -> None:
    for rel in relpaths:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")  # the index never decodes, so any bytes do


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "faces"
    _touch(
        root,
        "bob/b1.jpg",
        "bob/masked/b1.png",
        "bob/masked/deeper/b2.JPG",
        "alice/a1.png",
        "alice/a2.jpeg",
        "alice/notes.txt",
        "alice/.DS_Store",
        "carol/masked/c1.png",
        "_labels/bob/b1.png",
        ".cache/x.png",
        "landmarks.npz",
        "stray.png",
    )
    return root


def test_folder_walk_assigns_domains_from_masked_components(tree):
    index = load_index(tree)
    rel = index.relative_paths()
    assert rel == [
        "alice/a1.png",
        "alice/a2.jpeg",
        "bob/b1.jpg",
        "bob/masked/b1.png",
        "bob/masked/deeper/b2.JPG",
        "carol/masked/c1.png",
    ]
    assert index.identities == ["alice", "alice", "bob", "bob", "bob", "carol"]
    np.testing.assert_array_equal(index.domains, [0, 0, 0, 1, 1, 1])
    assert index.domains.dtype == np.uint8 and index.labels.dtype == np.int64
    assert index.classes == ["alice", "bob", "carol"]
    np.testing.assert_array_equal(index.labels, [0, 0, 1, 1, 1, 2])
    assert all(p.is_absolute() for p in index.paths)


def test_folder_walk_skips_underscore_and_dot_folders_and_counts_non_images(tree):
    index = load_index(tree)
    assert not any("_labels" in str(p) or ".cache" in str(p) for p in index.paths)
    skipped = sorted(p.relative_to(tree).as_posix() for p in index.skipped)
    assert skipped == ["alice/.DS_Store", "alice/notes.txt", "stray.png"]  # sidecar not counted


def test_counts_report_domains_and_identities_with_both(tree):
    counts = load_index(tree).counts()
    assert counts["identities"] == 3 and counts["images"] == 6
    assert counts["full"] == 3 and counts["masked"] == 3
    assert counts["identities_with_both"] == 1  # bob
    assert counts["identities_full_only"] == 1 and counts["identities_masked_only"] == 1


def test_subset_by_mask_and_indices_rebuilds_labels(tree):
    index = load_index(tree)
    masked = index.subset(index.domains == 1)
    assert masked.classes == ["bob", "carol"] and list(masked.labels) == [0, 0, 1]
    picked = index.subset([5, 0])
    assert picked.identities == ["carol", "alice"] and list(picked.domains) == [1, 0]
    sample = picked[0]
    assert sample.identity == "carol" and sample.domain == 1 and sample.label == 1


def test_exclude_by_list_and_file(tree, tmp_path):
    index = load_index(tree, exclude=["bob"])
    assert "bob" not in index.identities and index.excluded == 3
    listing = tmp_path / "exclude.txt"
    listing.write_text("# leakage guard\nalice\n\ncarol  # trailing comment\n")
    index = load_index(tree, exclude=listing)
    assert set(index.identities) == {"bob"} and index.excluded == 3


def test_manifest_round_trip_and_it_replaces_the_walk(tree):
    index = load_index(tree)
    written = write_manifest(tree, index.subset(index.domains == 1))
    assert written == tree / "manifest.csv"
    assert written.read_text().splitlines()[:2] == [
        "path,identity,domain",
        "bob/masked/b1.png,bob,1",
    ]
    again = load_index(tree)  # the manifest now replaces the walk
    assert again.kind == "manifest"
    assert again.relative_paths() == [
        "bob/masked/b1.png",
        "bob/masked/deeper/b2.JPG",
        "carol/masked/c1.png",
    ]
    np.testing.assert_array_equal(again.domains, [1, 1, 1])
    assert load_index(tree, use_manifest=False).kind == "folder"
    direct = load_index(written)
    assert direct.paths == again.paths


def test_manifest_accepts_absolute_paths(tree, tmp_path):
    csv_path = tmp_path / "elsewhere" / "list.csv"
    csv_path.parent.mkdir()
    csv_path.write_text(f"path,identity,domain\n{tree / 'alice/a1.png'},alice,0\n")
    index = read_manifest(csv_path)
    assert index.paths == [tree / "alice/a1.png"] and index.identities == ["alice"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("file,id,domain\n", "line 1: bad manifest header"),
        ("path,identity,domain\nalice/a1.png,alice\n", "line 2: expected 3 fields"),
        (
            "path,identity,domain\nalice/a1.png,alice,0\nbob/b1.jpg,bob,2\n",
            "line 3: domain must be 0 or 1",
        ),
        ("path,identity,domain\nalice/zz.png,alice,0\n", "line 2: image not found"),
        ("path,identity,domain\nalice/a1.png,,0\n", "line 2: empty path or identity"),
    ],
)
def test_bad_manifest_errors_name_file_and_line(tree, text, message):
    csv_path = tree / "bad.csv"
    csv_path.write_text(text)
    with pytest.raises(MfrError, match=message) as caught:
        load_index(csv_path)
    assert str(caught.value).startswith(str(csv_path))


def test_missing_and_empty_datasets_are_errors(tmp_path):
    with pytest.raises(MfrError, match="no such file or folder"):
        load_index(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MfrError, match="has no images"):
        load_index(tmp_path / "empty")
    _touch(tmp_path / "flat", "a.jpg", "b.jpg")
    with pytest.raises(MfrError, match="2 files skipped"):
        load_index(tmp_path / "flat")


def test_mfr2_layout_from_labels_file(tmp_path):
    root = tmp_path / "mfr2"
    _touch(root, "Ann/Ann_0001.png", "Ann/Ann_0002.png", "Ben/Ben_0001.png", "Ben/Ben_0009.png")
    (root / "mfr2_labels.txt").write_text(
        "Ann, 1, no-mask\nAnn, 2, surgical_blue\nBen, 1, N95\nBen, 3, no-mask\n"
    )
    (root / "pairs.txt").write_text("Ann 1 2\n")
    index = load_index(root)
    assert index.kind == "mfr2"
    assert index.relative_paths() == ["Ann/Ann_0001.png", "Ann/Ann_0002.png", "Ben/Ben_0001.png"]
    np.testing.assert_array_equal(index.domains, [0, 1, 1])
    assert [p.name for p in index.missing] == ["Ben_0003.png"]
    assert [p.name for p in index.skipped] == ["Ben_0009.png"]  # image without a label


def test_mfr2_bad_label_line_is_named(tmp_path):
    root = tmp_path / "mfr2"
    _touch(root, "Ann/Ann_0001.png")
    (root / "mfr2_labels.txt").write_text("Ann, 1, no-mask\nAnn; 2; N95\n")
    with pytest.raises(MfrError, match="mfr2_labels.txt line 2: expected 'Id, N, masktype'"):
        load_index(root)


def test_real_mfr2_dev_counts(data_dir):
    index = load_index(data_dir / "mfr2-dev")
    assert len(index.classes) == 24 and len(index) == 125
    assert index.counts()["masked"] == 79 and index.counts()["full"] == 46
    assert not index.missing and not index.skipped


def test_real_lfw_root_is_all_full_faces_and_exclusion_works(data_dir):
    lfw = data_dir / "lfw"
    index = load_index(lfw, exclude=lfw / "exclude-mfr2-overlap.txt")
    excluded = {line.strip() for line in (lfw / "exclude-mfr2-overlap.txt").read_text().split()}
    assert index.kind == "lfw" and not np.any(index.domains)
    assert len(index) + index.excluded == 13233
    assert len(index.classes) == 5749 - len(excluded)
    assert index.relative_paths()[0].startswith("images/")
