"""mfr.gallery.enrol: which photos an enrolment takes, without embedding anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from mfr.data.dataset import load_index
from mfr.data.layout import IMAGE_SUFFIXES
from mfr.errors import MfrError
from mfr.gallery.enrol import enrolment_sources, photo_files

NAMES = ["a.JPG", "b.webp", "c.tiff", "d.bmp", "e.png", "notes.txt", ".hidden.jpg"]


def _touch(folder: Path, names=NAMES) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def test_a_named_folder_takes_every_image_suffix_data_info_and_embed_index(tmp_path):
    _touch(tmp_path / "people" / "ann")
    _touch(tmp_path / "people" / "ann" / "masked", ["m.jpg"])
    told = []
    sources = enrolment_sources(tmp_path / "people" / "ann", "Ann", told.append)
    taken = sorted(p.name for _, p in sources)
    assert taken == ["a.JPG", "b.webp", "c.tiff", "d.bmp", "e.png"]
    assert {Path(n).suffix.lower() for n in taken} <= IMAGE_SUFFIXES
    # the dataset reader of `mfr data info` and `mfr embed` takes the same files
    indexed = sorted(Path(p).name for p in load_index(tmp_path / "people").paths)
    assert [n for n in indexed if n != "m.jpg"] == taken
    assert {i for i, _ in sources} == {"Ann"}
    assert any("notes.txt" in line for line in told) and told[-1].startswith("skipped 2 files")


def test_a_dataset_enrols_its_full_faces_and_says_what_it_left_out(tmp_path):
    _touch(tmp_path / "ds" / "ann", ["1.png", "2.webp"])
    _touch(tmp_path / "ds" / "ann" / "masked", ["1.png"])
    _touch(tmp_path / "ds" / "bob", ["1.JPEG"])
    told = []
    sources = enrolment_sources(tmp_path / "ds", None, told.append)
    assert [(i, p.name) for i, p in sources] == [("ann", "1.png"), ("ann", "2.webp"),
                                                 ("bob", "1.JPEG")]  # fmt: skip
    assert any("1 masked images" in line for line in told)


def test_one_photo_needs_a_name_and_a_missing_source_is_one_error(tmp_path):
    photo = tmp_path / "x.png"
    photo.write_bytes(b"")
    with pytest.raises(MfrError, match="needs --name"):
        enrolment_sources(photo, None, print)
    assert enrolment_sources(photo, " Ann  Lee ", print) == [("Ann Lee", photo)]
    with pytest.raises(MfrError, match="no such file or folder"):
        enrolment_sources(tmp_path / "missing", "Ann", print)


def test_photo_files_expands_folders_and_keeps_files(tmp_path):
    _touch(tmp_path / "folder")
    told = []
    single = tmp_path / "single.jpg"
    found = photo_files([single, tmp_path / "folder"], told.append)
    assert found[0] == single and [p.name for p in found[1:]] == [
        "a.JPG", "b.webp", "c.tiff", "d.bmp", "e.png"
    ]  # fmt: skip
    assert told[-1] == "skipped 2 files (not images)"
