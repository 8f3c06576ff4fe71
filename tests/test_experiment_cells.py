"""The tables' cells follow the paper's Tables 1-4; configs reject unknown keys."""

from __future__ import annotations

import pytest

from mfr.errors import ConfigError, MfrError
from mfr.experiments.cells import table_cells
from mfr.experiments.config import ExperimentConfig, load_experiment_config
from mfr.experiments.tables import markdown_table


def test_table1_has_six_full_face_losses_seven_with_masks_and_the_two_dlib_rows():
    cells = table_cells("table1", "iamgan")
    assert [c.baseline for c in cells[:2]] == ["dlib", "dlib-resnet"]
    full = [c for c in cells if c.source is None and not c.baseline]
    masked = [c for c in cells if c.source == "iamgan"]
    assert [c.loss for c in full] == ["softmax", "triplet", "center", "sphereface", "cosface",
                                      "arcface"]  # fmt: skip
    assert [c.loss for c in masked][-1] == "dcr" and len(masked) == 7
    assert masked[-1].row == "DCR+IAMGAN"


def test_table2_compares_sources_with_softmax_and_table4_ablates_dcr_terms():
    sources = [c.source for c in table_cells("table2")]
    assert sources == ["cyclegan", "erase", "hull", "template", "iamgan"]
    assert {c.loss for c in table_cells("table2")} == {"softmax"}
    options = [c.loss_options for c in table_cells("table4")]
    assert options == [{"use_cross": False}, {"use_single": False}, {}]


def test_second_seed_repeats_cells_but_not_the_baseline():
    cells = table_cells("table1", "template", seeds=(0, 1))
    assert sum(c.baseline == "dlib" for c in cells) == 1
    assert sum(c.baseline == "dlib-resnet" for c in cells) == 1
    assert len({c.key for c in cells}) == len(cells)


def test_synthetic_test_never_uses_the_training_mask_method():
    for table in ("table1", "table2", "table3", "table4"):
        for cell in table_cells(table):
            assert cell.synthetic_test_method != cell.source


def test_cells_not_trained_on_kp_cvx_share_one_synthetic_test():
    cells = [c for t in ("table1", "table2", "table3") for c in table_cells(t)]
    assert {c.synthetic_test_method for c in cells if c.source != "hull"} == {"hull"}


class _FakePrepared:
    """The two test sets a re-test reads, as file names under ``root``."""

    def __init__(self, root):
        self.root = root
        self.config = ExperimentConfig()  # no rmfrd-dev test, no bootstrap

    def synthetic_test(self, method):
        return self.root / f"heldout-{method}.csv"

    def aligned(self, dataset):
        return self.root / f"{dataset}-112"

    def source(self, dataset):
        return self.root / dataset


def _finished_cell(tmp_path, monkeypatch, cell, stored: dict, stale: str, rank1: float):
    """A finished cell (``stored`` as its result.json, an old ``stale`` test file), a fake
    embed + eval returning ``rank1`` that records its calls, and no trainer.

    Returns ``(out, calls, run)``; ``run()`` runs the cell.
    """
    import json

    from mfr.experiments import runner

    out = tmp_path / cell.table / cell.key
    (out / "train").mkdir(parents=True)
    (out / f"{stale}.npz").write_bytes(b"stale")
    (out / "result.json").write_text(json.dumps(stored))
    calls = []

    def fake_embed_and_eval(model, dataset, where, name, log, source=None, bootstrap=0):
        calls.append((model, dataset.name, name, (where / f"{name}.npz").exists()))
        return {"rank1": rank1, "probes": None}

    monkeypatch.setattr(runner, "_embed_and_eval", fake_embed_and_eval)
    monkeypatch.setattr("mfr.train.recognizer.train", lambda *a, **k: pytest.fail("retrained"))
    prepared = _FakePrepared(tmp_path)
    return out, calls, lambda: runner.run_cell(cell, None, prepared, out, log=lambda _: None)


def test_a_finished_cell_tested_on_an_old_method_is_retested_not_retrained(tmp_path, monkeypatch):
    import json

    cell = next(c for c in table_cells("table1") if c.row == "Softmax")
    old = {"table": "table1", "row": cell.row, "status": "done", "mfr2": {"rank1": 30.0},
           "synthetic": {"rank1": 40.0, "method": "template"}}  # fmt: skip
    out, calls, run = _finished_cell(tmp_path, monkeypatch, cell, old, "synthetic", 55.0)
    result = run()
    assert calls == [(str(out / "train" / "final.pt"), "heldout-hull.csv", "synthetic", False)]
    assert result["synthetic"] == {"rank1": 55.0, "probes": None, "method": "hull"}
    assert result["mfr2"] == {"rank1": 30.0, "probes": None}  # stored before per-probe files
    assert json.loads((out / "result.json").read_text()) == result
    assert run() == result
    assert len(calls) == 1


def test_a_built_in_baseline_cell_embeds_with_its_model_and_trains_nothing(tmp_path, monkeypatch):
    from mfr.experiments import runner

    cell = table_cells("table1")[1]
    calls = []

    def fake_embed_and_eval(model, dataset, where, name, log, source=None, bootstrap=0):
        calls.append((model, dataset.name, name))
        return {"rank1": 79.7}

    monkeypatch.setattr(runner, "_embed_and_eval", fake_embed_and_eval)
    monkeypatch.setattr("mfr.train.recognizer.train", lambda *a, **k: pytest.fail("trained"))
    out = tmp_path / "table1" / cell.key
    result = runner.run_cell(cell, None, _FakePrepared(tmp_path), out, log=lambda _: None)
    assert calls == [("dlib-resnet", "mfr2-112", "mfr2"),
                     ("dlib-resnet", "heldout-hull.csv", "synthetic")]  # fmt: skip
    assert result["mfr2"] == {"rank1": 79.7, "input": runner.MFR2_INPUT}
    assert result["status"] == "done"


def test_an_old_dlib_result_from_raw_crops_is_retested_on_the_aligned_crops(tmp_path, monkeypatch):
    cell = table_cells("table1")[0]
    old = {"table": "table1", "row": cell.row, "baseline": "dlib", "status": "done",
           "mfr2": {"rank1": 48.1}, "synthetic": {"rank1": 87.9, "method": "hull"}}  # fmt: skip
    _, calls, run = _finished_cell(tmp_path, monkeypatch, cell, old, "mfr2", 74.3)
    result = run()
    assert calls == [("dlib", "mfr2-112", "mfr2", False)]
    assert result["mfr2"] == {"rank1": 74.3, "probes": None, "input": "aligned, end to end"}
    assert result["synthetic"] == {**old["synthetic"], "probes": None}  # no embeddings kept
    assert run() == result
    assert len(calls) == 1


def test_table1_baselines_are_the_configured_untrained_rows_and_unknown_ones_are_refused(
    tmp_path,
):
    cells = table_cells("table1", "template", baselines=("dlib-resnet",))
    assert [c.baseline for c in cells if c.baseline] == ["dlib-resnet"]
    assert not any(c.baseline for c in table_cells("table1", baselines=()))
    with pytest.raises(MfrError, match="unknown baseline"):
        table_cells("table1", baselines=("vgg",))
    path = tmp_path / "x.yaml"
    path.write_text("baselines: [dlib, vgg]\n")
    with pytest.raises(ConfigError, match="baselines: unknown vgg"):
        load_experiment_config(path)


def test_unknown_table_is_a_clear_error():
    with pytest.raises(MfrError, match="unknown table"):
        table_cells("table9")


def test_markdown_table_has_the_paper_columns_for_both_tests():
    rows = [{"row": "Softmax", "seed": 0, "mfr2": {"rank1": 50.0, "accuracy": 70.0},
             "synthetic": {"mAP": 12.345}}]  # fmt: skip
    text = markdown_table(rows)
    assert "Acc (mfr2-dev)" in text and "mAP (held-out)" in text
    assert "| Softmax | 0 | 70.0 | 50.0 |" in text and "12.3" in text


def test_experiment_config_rejects_unknown_keys(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("heldout_identities: 5\nbogus: 1\n")
    with pytest.raises(ConfigError, match="bogus"):
        load_experiment_config(path)


def test_shipped_experiment_configs_load():
    for scale in ("cpu", "paper"):
        assert load_experiment_config(None, scale).train["backbone"].startswith("resnet")


def test_a_cell_trained_identically_in_another_table_is_shared_not_retrained(tmp_path):
    import json

    from mfr.experiments.runner import find_finished_twin, run_cell

    t1 = next(c for c in table_cells("table1", "template") if c.row == "Softmax+KP-SYN")
    t2 = next(c for c in table_cells("table2") if c.source == "template")
    other = next(c for c in table_cells("table2") if c.source == "erase")
    done = tmp_path / "table1" / t1.key / "result.json"
    done.parent.mkdir(parents=True)
    metrics = {"rank1": 41.0, "mAP": 40.0, "method": "hull", "probes": None}
    done.write_text(json.dumps({"table": "table1", "row": t1.row, "loss": "softmax",
                                "source": "template", "seed": 0, "loss_options": {},
                                "baseline": None, "status": "done", "mfr2": metrics,
                                "synthetic": metrics}))  # fmt: skip
    assert find_finished_twin(other, tmp_path) is None
    assert find_finished_twin(t1, tmp_path) is None  # never its own table
    twin = find_finished_twin(t2, tmp_path)
    assert twin == done
    result = run_cell(t2, None, None, tmp_path / "table2" / t2.key, log=lambda _: None, twin=twin)
    assert result["row"] == "KP-SYN" and result["table"] == "table2"
    assert result["mfr2"] == metrics and result["shared_with"] == str(done.parent)
    assert json.loads((tmp_path / "table2" / t2.key / "result.json").read_text()) == result


def test_a_result_from_before_end_to_end_evaluation_is_retested(tmp_path, monkeypatch):
    cell = next(c for c in table_cells("table1") if c.row == "Softmax")
    old = {"table": "table1", "row": cell.row, "status": "done",
           "mfr2": {"rank1": 30.0, "input": "aligned"},
           "synthetic": {"rank1": 40.0, "method": cell.synthetic_test_method}}  # fmt: skip
    out, calls, run = _finished_cell(tmp_path, monkeypatch, cell, old, "mfr2", 28.0)
    result = run()
    assert calls == [(str(out / "train" / "final.pt"), "mfr2-112", "mfr2", False)]
    assert result["mfr2"] == {"rank1": 28.0, "probes": None, "input": "aligned, end to end"}


def test_a_finished_cell_without_per_probe_results_gets_them_from_its_stored_embeddings(
    tmp_path, monkeypatch
):
    import json

    from mfr.experiments import runner

    cell = next(c for c in table_cells("table1") if c.row == "Softmax")
    stored = {"table": "table1", "row": cell.row, "status": "done", "mfr2": {"rank1": 30.0},
              "synthetic": {"rank1": 40.0, "method": "hull"}}  # fmt: skip
    out, calls, run = _finished_cell(tmp_path, monkeypatch, cell, stored, "mfr2", 0.0)
    (out / "synthetic.npz").write_bytes(b"stored")
    evaluated = []

    def fake_evaluate(embeddings, json_out, log, source=None, bootstrap=0):
        evaluated.append((embeddings.name, source))
        runner.probes_path(embeddings).write_bytes(b"per-probe")
        return {"rank1": 30.0 if embeddings.name == "mfr2.npz" else 40.0}

    monkeypatch.setattr(runner, "_evaluate", fake_evaluate)
    result = run()
    assert calls == []  # nothing embedded, nothing trained
    assert evaluated == [("mfr2.npz", tmp_path / "mfr2"), ("synthetic.npz", None)]
    assert result["mfr2"] == {"rank1": 30.0, "probes": str((out / "mfr2.probes.npz").resolve())}
    assert result["synthetic"]["probes"] == str((out / "synthetic.probes.npz").resolve())
    assert json.loads((out / "result.json").read_text()) == result
    assert run() == result and len(evaluated) == 2  # the second run only reads it
