"""``mfr eval`` end to end on tiny embeddings files, and the embeddings-file validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mfr.cli import main
from mfr.errors import MfrError
from mfr.eval.embeddings import l2_normalise, load_embeddings, save_embeddings
from mfr.eval.pairs import read_pairs
from mfr.eval.report import CONTRACT_KEYS
from mfr.eval.retrieval import evaluate_retrieval
from mfr.eval.verification import pair_similarities, verification_metrics


def _run(argv: list[str]) -> int:
    """``mfr ARGV`` in-process; its exit status."""
    return main(argv)


def _tiny(rng, num_ids=8, masked=2, full=3, dim=16):
    centres = rng.standard_normal((num_ids, dim))
    emb, ids, domains = [], [], []
    for i in range(num_ids):
        for domain, count in ((1, masked), (0, full)):
            emb.append(centres[i] + 0.8 * rng.standard_normal((count, dim)))
            ids += [f"person{i}"] * count
            domains += [domain] * count
    emb = np.concatenate(emb).astype(np.float32)
    paths = [
        f"{ident}/{'masked/' if domain else ''}{k}.png"
        for k, (ident, domain) in enumerate(zip(ids, domains))
    ]
    return emb, np.array(ids), np.array(domains, np.uint8), np.array(paths)


def _write(path, emb, ids, domains, paths):
    np.savez(path, embeddings=emb, identities=ids, domains=domains, paths=paths)
    return path


def test_eval_writes_json_with_contract_keys_plots_and_pairs(tmp_path, rng, capsys):
    emb_path = _write(tmp_path / "emb.npz", *_tiny(rng))
    out = tmp_path / "res" / "result.json"
    plots = tmp_path / "plots"
    args = ["eval", str(emb_path), "--json", str(out), "--plots", str(plots)]
    code = _run([*args, "--pairs-per-fold", "8"])
    assert code == 0
    report = json.loads(out.read_text())
    assert set(CONTRACT_KEYS) <= set(report)
    assert report["num_probes"] == 16 and report["num_gallery"] == 24
    assert report["skipped_probes"] == 0 and report["num_pairs"] == 80
    assert report["pairs_shrunk"] is False
    for key in ("rank1", "rank5", "rank10", "mAP", "accuracy", "roc_auc", "tar_at_far_1e-2"):
        assert 0.0 <= report[key] <= 100.0
    assert report["rank1"] <= report["rank5"] <= report["rank10"]
    assert len(report["fold_thresholds"]) == 10 and report["pairs_source"] == "generated"
    for name in ("cmc.png", "roc.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pairs_file = tmp_path / "res" / "result.pairs.csv"
    assert report["pairs_file"] == str(pairs_file)
    assert pairs_file.read_text().startswith("a,b,same\n")
    # the JSON holds the library's figures as percentages
    emb = load_embeddings(emb_path)
    retrieval = evaluate_retrieval(emb)
    pairs = read_pairs(pairs_file, len(emb))
    sims = pair_similarities(l2_normalise(emb.embeddings), pairs.a, pairs.b)
    verification = verification_metrics(sims, pairs.same)
    assert report["rank5"] == 100 * retrieval.rank(5)
    assert report["mAP"] == 100 * retrieval.mean_average_precision
    assert report["accuracy"] == 100 * verification.accuracy
    assert report["accuracy_std"] == 100 * verification.accuracy_std
    stdout = capsys.readouterr().out
    assert "Rank-1" in stdout and "mAP" in stdout

    # the written pairs, given back with --pairs, reproduce the verification figures
    again = tmp_path / "again.json"
    assert _run(["eval", str(emb_path), "--pairs", str(pairs_file), "--json", str(again)]) == 0
    report2 = json.loads(again.read_text())
    for key in ("accuracy", "accuracy_std", "num_pairs", "rank1", "mAP", "fold_thresholds"):
        assert report2[key] == report[key]


def test_eval_without_json_writes_pairs_beside_the_embeddings(tmp_path, rng):
    emb_path = _write(tmp_path / "e.npz", *_tiny(rng))
    assert _run(["eval", str(emb_path), "--pairs-per-fold", "10"]) == 0
    assert (tmp_path / "e.pairs.csv").is_file()


def test_eval_reports_shrunk_pairs_and_skipped_probes(tmp_path, rng, capsys):
    emb, ids, domains, paths = _tiny(rng)
    ids = ids.copy()
    ids[(ids == "person0") & (domains == 1)] = "nobody"  # 2 probes with no gallery identity
    emb_path = _write(tmp_path / "e.npz", emb, ids, domains, paths)
    out = tmp_path / "r.json"
    assert _run(["eval", str(emb_path), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["skipped_probes"] == 2 and report["num_probes"] == 14
    assert report["num_masked"] == 16
    assert report["pairs_shrunk"] is True and report["matched_pairs_per_fold"] == 4
    err = capsys.readouterr().err
    assert "pairs shrunk to 4 matched + 4 unmatched per fold" in err and "2 of 16" in err


def test_eval_single_identity_gives_retrieval_and_says_why_no_verification(tmp_path, rng):
    emb, ids, domains, paths = _tiny(rng, num_ids=1)
    emb_path = _write(tmp_path / "e.npz", emb, ids, domains, paths)
    out = tmp_path / "r.json"
    assert _run(["eval", str(emb_path), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["rank1"] == 100.0 and report["mAP"] == 100.0
    assert report["accuracy"] is None and report["num_pairs"] == 0
    assert any("verification not computed" in note for note in report["notes"])


def _bad_file(tmp_path, rng, **changes):
    arrays = dict(zip(("embeddings", "identities", "domains", "paths"), _tiny(rng)))
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"paths": None}, "missing key"),
        ({"embeddings": np.zeros((40,), np.float32)}, "must be 2-D"),
        ({"embeddings": np.ones((40, 4), np.int32)}, "floating point"),
        ({"identities": np.arange(40)}, "'identities' must be strings"),
        ({"domains": np.full(40, 2, np.uint8)}, "0 \\(full\\) or 1 \\(masked\\)"),
        ({"domains": np.zeros(39, np.uint8)}, "has 39 entries but 'embeddings' has 40"),
        ({"embeddings": np.full((40, 4), np.nan, np.float32)}, "NaN or inf"),
        ({"embeddings": np.zeros((40, 4), np.float32)}, "zero norm"),
        (
            {
                "embeddings": np.zeros((0, 4), np.float32),
                "identities": np.array([], str),
                "domains": np.array([], np.uint8),
                "paths": np.array([], str),
            },
            "no embeddings",
        ),
    ],
)
def test_bad_embeddings_files_give_one_clear_error(tmp_path, rng, capsys, change, message):
    path = _bad_file(tmp_path, rng, **change)
    with pytest.raises(MfrError, match=message) as info:
        load_embeddings(path)
    assert str(path) in str(info.value)
    assert _run(["eval", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mfr: error: ") and str(path) in err and "Traceback" not in err


def test_nan_row_error_names_the_row_and_path(tmp_path, rng):
    emb, ids, domains, paths = _tiny(rng)
    emb[5, 3] = np.nan
    path = _write(tmp_path / "e.npz", emb, ids, domains, paths)
    with pytest.raises(MfrError, match=f"row 5, path {paths[5]}"):
        load_embeddings(path)


def test_not_an_npz_or_missing_file_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(MfrError, match=r"junk\.npz: not an embeddings \(\.npz\) file \(it is text"):
        load_embeddings(junk)
    with pytest.raises(MfrError, match="not found"):
        load_embeddings(tmp_path / "missing.npz")


def test_bad_pairs_file_via_cli_is_a_clear_error(tmp_path, rng, capsys):
    emb_path = _write(tmp_path / "e.npz", *_tiny(rng))
    pairs = tmp_path / "p.csv"
    pairs.write_text("a,b,same\n0,999,1\n")
    assert _run(["eval", str(emb_path), "--pairs", str(pairs)]) == 2
    assert "index 999 is out of range" in capsys.readouterr().err


def test_save_embeddings_round_trips(tmp_path, rng):
    emb, ids, domains, paths = _tiny(rng)
    save_embeddings(tmp_path / "s.npz", emb.astype(np.float64), ids, domains, paths)
    back = load_embeddings(tmp_path / "s.npz")
    assert back.embeddings.dtype == np.float32 and back.domains.dtype == np.uint8
    np.testing.assert_allclose(back.embeddings, emb)
    assert list(back.identities) == list(ids)


def test_the_library_evaluate_returns_what_mfr_eval_writes(tmp_path, rng):
    """``mfr.eval.evaluate`` is the command without the printing: the same report dict."""
    from mfr.eval import default_pairs_path, evaluate

    emb_path = _write(tmp_path / "emb.npz", *_tiny(rng))
    out = tmp_path / "cli.json"
    assert _run(["eval", str(emb_path), "--json", str(out), "--pairs-per-fold", "8"]) == 0
    notes = []
    report = evaluate(emb_path, pairs_per_fold=8, log=notes.append)
    written = json.loads(out.read_text())
    for key in (*CONTRACT_KEYS, "fold_thresholds", "cmc_top20"):
        assert report[key] == pytest.approx(written[key]), key
    assert report["pairs_file"] == str(default_pairs_path(emb_path, None))
    assert default_pairs_path(emb_path, out) == tmp_path / "cli.pairs.csv"
