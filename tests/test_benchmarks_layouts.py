"""LFW and MFR2 pair protocols, and their conversion to the contract pairs CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mfr.data.benchmarks import (
    BenchmarkPair,
    match_pairs,
    pairs_to_csv,
    read_lfw_pairs,
    read_mfr2_pairs,
)
from mfr.errors import MfrError
from mfr.eval.pairs import read_pairs


def test_lfw_csv_rows_become_matched_and_mismatched_pairs(tmp_path):
    meta = tmp_path / "meta"
    meta.mkdir()
    (meta / "pairs.csv").write_text("name,imagenum1,imagenum2,\nAnn_Lee,1,4,\nAnn_Lee,2,Bo_Ma,10\n")
    pairs = read_lfw_pairs(tmp_path)
    assert pairs == [
        BenchmarkPair(
            tmp_path / "images/Ann_Lee/Ann_Lee_0001.jpg",
            tmp_path / "images/Ann_Lee/Ann_Lee_0004.jpg",
            True,
        ),
        BenchmarkPair(
            tmp_path / "images/Ann_Lee/Ann_Lee_0002.jpg",
            tmp_path / "images/Bo_Ma/Bo_Ma_0010.jpg",
            False,
        ),
    ]


def test_lfw_original_txt_format_is_read_too(tmp_path):
    txt = tmp_path / "pairs.txt"
    txt.write_text("1\t1\nAnn_Lee\t1\t4\nAnn_Lee\t2\tBo_Ma\t10\n")
    pairs = read_lfw_pairs(tmp_path, txt)
    assert [p.same for p in pairs] == [True, False]
    assert pairs[1].b.name == "Bo_Ma_0010.jpg"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("who,what\n", "line 1: not an LFW pairs.csv header"),
        ("name,imagenum1,imagenum2,\nAnn,1,x,\n", "line 2: image number must be a positive"),
        ("name,imagenum1,imagenum2,\nAnn,1\n", "line 2: expected 'name,n1,n2'"),
    ],
)
def test_bad_lfw_pairs_file_names_the_line(tmp_path, text, message):
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta/pairs.csv").write_text(text)
    with pytest.raises(MfrError, match=message):
        read_lfw_pairs(tmp_path)


def test_mfr2_pairs_and_bad_line(tmp_path):
    (tmp_path / "pairs.txt").write_text("Ann 1 2\nAnn 3 Bob 1\n\n")
    pairs = read_mfr2_pairs(tmp_path)
    assert pairs[0] == BenchmarkPair(
        tmp_path / "Ann/Ann_0001.png", tmp_path / "Ann/Ann_0002.png", True
    )
    assert pairs[1].b == tmp_path / "Bob/Bob_0001.png" and not pairs[1].same
    (tmp_path / "pairs.txt").write_text("Ann 1 2\nAnn 1 2 3 4 5\n")
    with pytest.raises(MfrError, match="pairs.txt line 2: expected 'Id a b'"):
        read_mfr2_pairs(tmp_path)


def _emb(paths, identities, domains):
    n = len(paths)
    return {
        "embeddings": np.eye(n, 4, dtype=np.float32) + 0.1,
        "identities": np.array(identities),
        "domains": np.array(domains, dtype=np.uint8),
        "paths": np.array(paths),
    }


def test_pairs_to_csv_maps_by_identity_and_stem_and_reports_missing(tmp_path):
    pairs = [
        BenchmarkPair(Path("/x/Ann/Ann_0001.jpg"), Path("/x/Ann/Ann_0002.jpg"), True),
        BenchmarkPair(Path("/x/Ann/Ann_0001.jpg"), Path("/x/Bob/Bob_0003.jpg"), False),
        BenchmarkPair(Path("/x/Bob/Bob_0001.jpg"), Path("/x/Ann/Ann_0002.jpg"), False),
    ]
    # aligned copies: another folder, another suffix; Bob_0003 has no embedding
    emb = _emb(
        ["Bob/Bob_0001.png", "Ann/Ann_0002.png", "Ann/Ann_0001.png"],
        ["Bob", "Ann", "Ann"],
        [0, 0, 0],
    )
    npz = tmp_path / "emb.npz"
    np.savez(npz, **emb)
    out = tmp_path / "pairs.csv"
    result = pairs_to_csv(pairs, npz, out)
    assert result.total == 3 and result.written == 2
    assert result.missing == [(2, "no embedding for Bob/Bob_0003.jpg")]
    assert out.read_text() == "a,b,same\n2,1,1\n0,1,0\n"
    loaded = read_pairs(out, num_embeddings=3)
    assert list(loaded.same) == [True, False]


def test_same_stem_in_two_domains_needs_a_domain_choice():
    pairs = [BenchmarkPair(Path("Ann/a.jpg"), Path("Ann/b.jpg"), True)]
    ids, dom, paths = ["Ann"] * 3, [0, 1, 0], ["Ann/a.png", "Ann/masked/a.png", "Ann/b.png"]
    with pytest.raises(MfrError, match="matches 2 embeddings"):
        match_pairs(pairs, ids, dom, paths)
    rows, missing = match_pairs(pairs, ids, dom, paths, domain_a=1, domain_b=0)
    assert rows.tolist() == [[1, 2, 1]] and not missing
    rows, missing = match_pairs(pairs, ids, dom, paths, domain_a=1, domain_b=1)
    assert len(rows) == 0 and missing == [(1, "no embedding for Ann/b.jpg in domain 1")]


def test_pairs_to_csv_with_no_matching_pair_is_an_error(tmp_path):
    pairs = [BenchmarkPair(Path("A/a.jpg"), Path("A/b.jpg"), True)]
    with pytest.raises(MfrError, match="none of the 1 pairs"):
        pairs_to_csv(pairs, _emb(["B/a.png"], ["B"], [0]), tmp_path / "p.csv")
    assert not (tmp_path / "p.csv").exists()


def test_real_lfw_protocol_has_6000_pairs_in_ten_folds(data_dir):
    pairs = read_lfw_pairs(data_dir / "lfw")
    assert len(pairs) == 6000 and sum(p.same for p in pairs) == 3000
    same = np.array([p.same for p in pairs]).reshape(10, 600)
    assert same[:, :300].all() and not same[:, 300:].any()  # 300 matched then 300 mismatched
    assert all(p.a.is_file() and p.b.is_file() for p in pairs[::97])


def test_real_mfr2_dev_pairs_point_at_existing_images(data_dir):
    pairs = read_mfr2_pairs(data_dir / "mfr2-dev")
    assert len(pairs) == 283 and sum(p.same for p in pairs) == 193
    assert all(p.a.is_file() and p.b.is_file() for p in pairs)


def test_real_lfw_pairs_convert_against_an_index_of_all_lfw_images(data_dir, tmp_path):
    from mfr.data.dataset import load_index

    index = load_index(data_dir / "lfw")
    keys = {
        "identities": np.array(index.identities),
        "domains": index.domains,
        "paths": np.array(index.relative_paths()),
    }
    out = tmp_path / "lfw.csv"
    result = pairs_to_csv(read_lfw_pairs(data_dir / "lfw"), keys, out)
    assert result.written == 6000 and not result.missing
    pairs = read_pairs(out, num_embeddings=len(index))
    first = pairs.a[0], pairs.b[0]
    assert [index.relative_paths()[i] for i in first] == [
        "images/Abel_Pacheco/Abel_Pacheco_0001.jpg",
        "images/Abel_Pacheco/Abel_Pacheco_0004.jpg",
    ]
    assert pairs.same.reshape(10, 600)[:, :300].all()
