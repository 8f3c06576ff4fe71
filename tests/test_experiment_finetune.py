"""The fine-tuning scale (issue 19): its cells, its held-out test and its table readings.

The frozen-head warm-up (backbone unchanged for its steps) is proved in tests/test_train.py
(test_head_warmup_leaves_the_backbone_unchanged_then_fine_tunes_it); gradient clipping in
tests/test_train.py (test_grad_clip_bounds_the_global_gradient_norm_at_every_optimizer_step).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest
from _train_data import make_dataset

from mfr.errors import ConfigError, MfrError
from mfr.experiments import runner
from mfr.experiments.cells import LOSS_LABELS
from mfr.experiments.config import ExperimentConfig, load_experiment_config
from mfr.experiments.prepare import MARKER, Prepared
from mfr.experiments.readings import (
    claims,
    difference_interval,
    paired_interval,
    reading,
    row_stats,
    verdict,
)


class _Sources:
    """What ``train_config_for`` reads of the prepared data: folder names only."""

    def __init__(self, root: Path):
        self.root = root

    def training_sources(self, source):
        return [self.root / f"lfw-112-{source or 'full'}", self.root / f"celeba-112-{source}"]

    def train_exclude_file(self):
        return self.root / "exclude.txt"


def _run_table_cells(table: str, config: ExperimentConfig, tmp_path, monkeypatch):
    """The cells ``run_table`` runs for ``table`` (no training: run_cell records them)."""
    seen = []

    def fake_run_cell(cell, config, prepared, out, log=print, twin=None):
        seen.append(cell)
        return {"row": cell.row, "seed": cell.seed, "status": "done"}

    monkeypatch.setattr(runner, "run_cell", fake_run_cell)
    runner.run_table(table, config, tmp_path / "out", log=lambda _: None)
    return seen


def test_finetune_table1_runs_every_trained_row_on_three_seeds_after_the_untrained_start(
    tmp_path, monkeypatch
):
    config = load_experiment_config(None, "finetune")
    cells = _run_table_cells("table1", config, tmp_path, monkeypatch)
    trained = [c for c in cells if not c.baseline]
    assert sorted({c.seed for c in trained}) == [0, 1, 2]
    plain = [c.row for c in trained if c.seed == 0]
    assert plain == [*(LOSS_LABELS[x] for x in LOSS_LABELS if x != "dcr"),
                     *(f"{LOSS_LABELS[x]}+KP-SYN" for x in LOSS_LABELS)]  # fmt: skip
    assert not any(c.distill for c in trained)  # distill_tables: [] (the 2-h budget)
    assert len(trained) == 13 * 3 and len({(c.key, c.seed) for c in cells}) == len(cells)
    assert [c.baseline for c in cells if c.baseline] == ["dlib-resnet"]


def test_distill_tables_put_a_distilled_twin_after_every_trained_row(tmp_path, monkeypatch):
    config = load_experiment_config(None, "finetune")
    config.distill_tables = ["table1"]
    cells = _run_table_cells("table1", config, tmp_path, monkeypatch)
    trained = [c for c in cells if not c.baseline and c.seed == 0]
    plain = [c.row for c in trained if not c.distill]
    assert [c.row for c in trained if c.distill] == [f"{row}+distill" for row in plain]
    assert [c.row for c in trained[:2]] == ["Softmax", "Softmax+distill"]


def test_finetune_tables_2_to_4_have_no_distill_rows_and_three_seeds(tmp_path, monkeypatch):
    config = load_experiment_config(None, "finetune")
    for table, rows in (("table2", 5), ("table3", 4), ("table4", 3)):
        cells = _run_table_cells(table, config, tmp_path / table, monkeypatch)
        assert not any(c.distill for c in cells)
        assert len(cells) == rows * 3 and {c.seed for c in cells} == {0, 1, 2}


def test_finetune_cells_start_from_dlib_with_the_no_teacher_recipe_and_vary_only_their_row(
    tmp_path,
):
    config = load_experiment_config(None, "finetune")
    prepared = _Sources(tmp_path)
    from mfr.experiments.cells import table_cells

    cells = table_cells("table1", config.masked_source, (2,), distill=True)
    configs = {c.row: runner.train_config_for(c, config, prepared) for c in cells if not c.baseline}
    for row, train in configs.items():
        assert (train.backbone, train.init, train.seed) == ("dlib-resnet", "dlib", 2)
        assert 0 < train.head_warmup_steps < train.steps
        assert train.head_lr > train.lr and train.grad_clip > 0
        assert bool(train.distill) == row.endswith("+distill")
    assert configs["DCR+KP-SYN+distill"].distill["teacher"] == "dlib-resnet"
    assert configs["CosFace"].domains == "full" and configs["CosFace+KP-SYN"].domains == "both"
    plain, distilled = configs["ArcFace+KP-SYN"].to_dict(), configs["ArcFace+KP-SYN+distill"]
    assert {k: v for k, v in distilled.to_dict().items() if plain[k] != v} == {
        "distill": distilled.distill
    }
    table4 = table_cells("table4", config.masked_source)
    options = [runner.train_config_for(c, config, prepared).loss_options for c in table4]
    assert options == [{"use_cross": False}, {"use_single": False}, {}]


def test_distilled_and_plain_cells_never_share_a_finished_result(tmp_path):
    import json

    from mfr.experiments.cells import Cell

    plain = Cell("table1", "DCR+KP-SYN", "dcr", "template")
    stored = tmp_path / "table4" / "with-all-s0"
    stored.mkdir(parents=True)
    result = {"table": "table4", "status": "done", "loss": "dcr", "source": "template",
              "loss_options": {}, "seed": 0, "baseline": None, "distill": False}  # fmt: skip
    (stored / "result.json").write_text(json.dumps(result))
    assert runner.find_finished_twin(plain, tmp_path) == stored / "result.json"
    distilled = Cell("table1", "DCR+KP-SYN+distill", "dcr", "template", distill=True)
    assert runner.find_finished_twin(distilled, tmp_path) is None


def test_distill_tables_without_a_teacher_is_a_config_error(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("distill_tables: [table1]\n")
    with pytest.raises(ConfigError, match="distill"):
        load_experiment_config(path)


# -- the held-out test -----------------------------------------------------------------------


def _aligned(root: Path, name: str, identities: int, prefix: str) -> None:
    """An 'aligned' dataset (marker set) and its hull/template twins, as Prepared caches them."""
    folder = make_dataset(root / name, identities=identities, per_identity=5, masked=0, size=8)
    for person in sorted(folder.iterdir()):
        person.rename(folder / f"{prefix}{person.name}")
    (folder / MARKER).touch()
    for method in ("hull", "template"):
        twin = make_dataset(root / f"{name}-{method}", identities=identities, per_identity=5,
                            masked=5, size=8)  # fmt: skip
        for person in sorted(twin.iterdir()):
            person.rename(twin / f"{prefix}{person.name}")
        (twin / MARKER).touch()


def test_heldout_identities_come_from_lfw_and_celeba_and_are_never_trained_on(
    tmp_path, monkeypatch
):
    from mfr.train.config import TrainConfig
    from mfr.train.selection import load_training_data

    shared = tmp_path / "shared"
    (shared / "celeba").mkdir(parents=True)
    (shared / "lfw").mkdir()
    (shared / "lfw/exclude.txt").write_text("lfw_person_00\nlfw_person_03\n")
    monkeypatch.setenv("MFR_DATA", str(shared))
    data = tmp_path / "data"
    _aligned(data, "lfw-112", 10, "lfw_")
    _aligned(data, "celeba-112", 6, "celeb_")
    config = ExperimentConfig(data_dir=str(data), exclude="lfw/exclude.txt", heldout_identities=7,
                              heldout_sources=["lfw", "celeba"], heldout_max_images=4,
                              heldout_gallery_images=2)  # fmt: skip
    prepared = Prepared(config, log=lambda _: None)
    heldout = prepared.heldout()
    assert len(heldout) == 7 and not {"lfw_person_00", "lfw_person_03"} & set(heldout)
    assert any(n.startswith("celeb_") for n in heldout)
    assert any(n.startswith("lfw_") for n in heldout)
    exclude = prepared.train_exclude_file()
    train = TrainConfig(data=[str(data / "lfw-112-template"), str(data / "celeba-112-template")],
                        exclude=[str(exclude)])  # fmt: skip
    trained = set(load_training_data(train, log=lambda _: None).classes)
    assert trained and not trained & (set(heldout) | {"lfw_person_00", "lfw_person_03"})
    assert len(trained) == 16 - 2 - 7
    import csv

    with open(prepared.synthetic_test("hull")) as handle:
        rows = list(csv.DictReader(handle))
    assert {r["identity"] for r in rows} == set(heldout)
    for name in heldout:  # 5 images capped at 4: files 0, 1 full (gallery), 2, 3 masked probes
        mine = [(Path(r["path"]).parent.name, Path(r["path"]).name, r["domain"])
                for r in rows if r["identity"] == name]  # fmt: skip
        assert mine == [(name, "0.png", "0"), (name, "1.png", "0"),
                        ("masked", "2.png", "1"), ("masked", "3.png", "1")]  # fmt: skip
    assert all("-hull" in r["path"] for r in rows)


def test_default_heldout_split_stays_lfw_only_with_even_probes(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    (shared / "lfw").mkdir(parents=True)
    monkeypatch.setenv("MFR_DATA", str(shared))
    data = tmp_path / "data"
    _aligned(data, "lfw-112", 5, "lfw_")
    config = ExperimentConfig(data_dir=str(data), celeba=None, heldout_identities=2)
    prepared = Prepared(config, log=lambda _: None)
    manifest = prepared.synthetic_test("hull")
    assert manifest.name == "lfw-112-heldout-hull.csv"  # the cpu/quick scales' cached name
    lines = manifest.read_text().splitlines()[1:]
    assert len(lines) == 2 * 5 and [line.endswith(",1") for line in lines[:5]] == [
        True, False, True, False, True]  # fmt: skip


# -- mean ± std over seeds and the claim readings ---------------------------------------------


def _result(row, seed, rank1, ci=None):
    figures = {"rank1": rank1}
    if ci is not None:
        figures["rank1_ci"] = ci
    return {"row": row, "seed": seed, "status": "done", "mfr2": figures}


def test_row_stats_are_mean_sample_std_and_mean_bootstrap_half_width():
    results = [_result("A", 0, 60.0, [50.0, 70.0]), _result("A", 1, 64.0, [56.0, 72.0]),
               _result("A", 2, 71.0, [61.0, 79.0]), _result("B", 0, 10.0)]  # fmt: skip
    stats = row_stats(results, "A", "mfr2", "rank1")
    assert stats.mean == pytest.approx(statistics.mean([60, 64, 71]))
    assert stats.std == pytest.approx(statistics.stdev([60, 64, 71]))
    assert stats.half_width == pytest.approx((10 + 8 + 9) / 3) and stats.n == 3
    single = row_stats(results, "B", "mfr2", "rank1")
    assert (single.std, single.half_width) == (0.0, None)


def test_claim_is_decided_only_when_the_difference_exceeds_both_intervals():
    a = [_result("DCR+KP-SYN", s, v, [v - 2, v + 2]) for s, v in enumerate([70.0, 72.0, 74.0])]
    b = [_result("Softmax+KP-SYN", s, v, [v - 3, v + 3]) for s, v in enumerate([60.0, 61.0, 65.0])]
    sa, sb = row_stats(a, "DCR+KP-SYN", "mfr2", "rank1"), row_stats(b, "Softmax+KP-SYN", "mfr2",
                                                                     "rank1")  # fmt: skip
    boot = math.sqrt(2**2 + 3**2)
    va, vb = 2.0**2 / 3, statistics.stdev([60, 61, 65]) ** 2 / 3
    welch_df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)  # 3.72: Student's t at 3 df
    assert 3 < welch_df < 4
    seeds = 3.182 * math.sqrt(va + vb)
    assert difference_interval(sa, sb) == pytest.approx(max(boot, seeds))
    assert verdict(sa, sb) == "decided"  # 10 points against ~6.1
    close = [_result("Softmax+KP-SYN", s, v, [v - 3, v + 3]) for s, v in enumerate([68, 71, 75])]
    sc = row_stats(close, "Softmax+KP-SYN", "mfr2", "rank1")
    assert verdict(sa, sc) == "not decided by this data"
    lines = reading("table1", a + b, [("mfr2", "mfr2-dev (real masks)")])
    interval = f"{max(boot, seeds):.1f}"
    assert lines == [f"- DCR beats the other losses: DCR+KP-SYN − Softmax+KP-SYN on mfr2-dev "
                     f"rank1: +10.0 ± {interval} (seeds 3/3) → **decided**"]  # fmt: skip


def test_claims_cover_the_papers_four_findings_within_each_distill_family():
    rows = ["Softmax", "Softmax+KP-SYN", "DCR+KP-SYN", "Softmax+distill",
            "Softmax+KP-SYN+distill", "DCR+KP-SYN+distill"]  # fmt: skip
    found = claims("table1", rows)
    assert ("synthetic masks help", "Softmax+KP-SYN", "Softmax") in found
    assert ("DCR beats the other losses", "DCR+KP-SYN", "Softmax+KP-SYN") in found
    assert ("synthetic masks help (with distillation)", "Softmax+KP-SYN+distill",
            "Softmax+distill") in found  # fmt: skip
    assert not any(("+distill" in a) != ("+distill" in b) for _, a, b in found)
    assert claims("table4", ["w/o L_c", "w/o L_s", "with all"]) == [
        ("both DCR terms matter", "with all", "w/o L_c"),
        ("both DCR terms matter", "with all", "w/o L_s"),
    ]
    table2 = claims("table2", ["CycleGAN", "DE", "KP-CVX", "KP-SYN", "IAMGAN"])
    assert [b for _, _, b in table2] == ["CycleGAN", "DE", "KP-CVX", "KP-SYN"]


def test_written_table_has_the_seed_summary_and_the_reading(tmp_path):
    from mfr.experiments.tables import RMFRD, TESTS, write_table

    results = [
        {**_result(row, seed, value, [value - 1, value + 1]), "rmfrd": {"rank1": value}}
        for row, values in (("w/o L_c", (50.0, 52.0, 54.0)), ("with all", (70.0, 71.0, 72.0)))
        for seed, value in enumerate(values)
    ]
    write_table("table4", results, tmp_path, [*TESTS, RMFRD])
    text = (tmp_path / "table4.md").read_text()
    assert "| with all | 0,1,2 | 71.0 ± 1.0 [±1.0] |" in text
    assert "- both DCR terms matter: with all − w/o L_c on mfr2-dev rank1: +19.0" in text
    assert "- both DCR terms matter: with all − w/o L_c on rmfrd-dev rank1: +19.0" in text
    assert text.count("**decided**") == 2


def _probe_result(tmp_path, row, seed, hits, method="hull"):
    """A finished result whose mfr2 test stored per-probe results: ``hits`` (one per probe,
    three probes per identity) as first-match ranks 0 (hit) or 5."""
    import numpy as np

    from mfr.eval.probes import save_probe_results
    from mfr.eval.retrieval import RetrievalResult

    hits = np.asarray(hits, dtype=float)
    path = tmp_path / f"{row}-{seed}-{method}.probes.npz"
    ids = np.repeat(np.arange(len(hits) // 3), 3).astype(str)
    first = np.where(hits > 0, 0, 5).astype(np.int64)
    retrieval = RetrievalResult(np.zeros(6), hits, len(hits), 6, 0, first, ids)
    save_probe_results(path, retrieval, [f"{method}/{i}/{n}" for n, i in enumerate(ids)])
    result = _result(row, seed, 100 * hits.mean(), [100 * hits.mean() - 4, 100 * hits.mean() + 4])
    result["mfr2"]["probes"] = str(path)
    return result


def test_rows_scored_on_the_same_probes_are_compared_paired(tmp_path):
    import numpy as np

    rng = np.random.default_rng(2)
    base = (rng.uniform(size=600) < 0.5).astype(float)
    better = base.copy()
    better[np.flatnonzero(base == 0)[:30]] = 1.0  # +5 points, on the same probes
    results = [_probe_result(tmp_path, "with all", s, better) for s in range(3)]
    results += [_probe_result(tmp_path, "w/o L_c", s, base) for s in range(3)]
    sa = row_stats(results, "with all", "mfr2", "rank1")
    sb = row_stats(results, "w/o L_c", "mfr2", "rank1")
    assert verdict(sa, sb) == "not decided by this data"  # the unpaired rule: 5 < sqrt(32)
    paired = paired_interval(results, "with all", "w/o L_c", "mfr2", "rank1", sa, sb)
    assert 0 < paired < 5
    lines = reading("table4", results, [("mfr2", "mfr2-dev (real masks)")])
    assert "with all − w/o L_c on mfr2-dev rank1: +5.0" in lines[0]
    assert "(paired, seeds 3/3) → **decided**" in lines[0]
    (tmp_path / "other").mkdir()
    other = _probe_result(tmp_path / "other", "w/o L_c", 0, base[:300])  # other probes
    assert paired_interval([*results[:3], other], "with all", "w/o L_c", "mfr2", "rank1", sa,
                           sb) is None  # fmt: skip
    # the same identities masked by another method: other images, not paired
    kp_syn = [_probe_result(tmp_path, "w/o L_c", s, base, "template") for s in range(3)]
    assert paired_interval([*results[:3], *kp_syn], "with all", "w/o L_c", "mfr2", "rank1", sa,
                           sb) is None  # fmt: skip
    # one seed a row (no spread measured): never narrower than the unpaired interval
    one = [results[0], results[3]]
    s1, s2 = row_stats(one, "with all", "mfr2", "rank1"), row_stats(one, "w/o L_c", "mfr2", "rank1")
    assert paired_interval(one, "with all", "w/o L_c", "mfr2", "rank1", s1, s2) == pytest.approx(
        difference_interval(s1, s2))  # fmt: skip


def test_rows_run_on_the_same_seeds_are_paired_by_seed_too(tmp_path):
    import numpy as np

    from mfr.experiments.readings import paired_seed_part

    rng = np.random.default_rng(4)
    base = (rng.uniform(size=600) < 0.5).astype(float)
    results = []
    for seed, shift in enumerate((0, 60, 120)):  # a seed moves both rows alike: 0, -10, -20
        worse = base.copy()
        worse[np.flatnonzero(base == 1)[:shift]] = 0.0
        better = worse.copy()
        better[np.flatnonzero(worse == 0)[: 12 + seed]] = 1.0  # +2.0, +2.17, +2.33 points
        results += [_probe_result(tmp_path, "with all", seed, better),
                    _probe_result(tmp_path, "w/o L_c", seed, worse)]  # fmt: skip
    d = [100 * (12 + s) / 600 for s in range(3)]
    want = 4.303 * statistics.stdev(d) / math.sqrt(3)  # Student's t at 2 df
    assert paired_seed_part(results, "with all", "w/o L_c", "mfr2", "rank1") == pytest.approx(want)
    sa = row_stats(results, "with all", "mfr2", "rank1")
    sb = row_stats(results, "w/o L_c", "mfr2", "rank1")
    assert verdict(sa, sb) == "not decided by this data"  # unpaired: a 10-point seed spread
    assert paired_interval(results, "with all", "w/o L_c", "mfr2", "rank1", sa, sb) < 2.0
    two = 12.706 * statistics.stdev(d[:2]) / math.sqrt(2)  # seeds 0 and 1: t at 1 df
    assert paired_seed_part(results[:4], "with all", "w/o L_c", "mfr2", "rank1") == pytest.approx(
        two
    )
    assert paired_seed_part(results[:3], "with all", "w/o L_c", "mfr2", "rank1") is None


def test_gan_twins_are_generated_only_for_the_identities_no_test_uses(tmp_path, monkeypatch):
    import hashlib

    import mfr.experiments.prepare as prepare

    shared = tmp_path / "shared"
    (shared / "lfw").mkdir(parents=True)
    (shared / "lfw/exclude.txt").write_text("lfw_person_00\n")
    monkeypatch.setenv("MFR_DATA", str(shared))
    data = tmp_path / "data"
    _aligned(data, "lfw-112", 8, "lfw_")
    checkpoint = tmp_path / "gan.pt"
    checkpoint.write_bytes(b"a GAN")
    calls = []

    def fake_generate(model, source, target, log, exclude=()):
        calls.append((model, source, target, list(exclude)))
        target.mkdir(exist_ok=True)

    monkeypatch.setattr(prepare, "generate", fake_generate)

    def prepared(heldout: int) -> Prepared:
        config = ExperimentConfig(data_dir=str(data), exclude="lfw/exclude.txt", celeba=None,
                                  heldout_identities=heldout,
                                  gan_checkpoints={"iamgan": str(checkpoint)})  # fmt: skip
        return Prepared(config, log=lambda _: None)

    first = prepared(2)
    target = first.masked("lfw", "iamgan")
    assert target == data / "lfw-112-iamgan"
    tested = sorted({"lfw_person_00"} | set(first.heldout()))
    assert len(tested) == 3
    assert calls == [(checkpoint, data / "lfw-112", target, tested)]
    split = hashlib.sha1("\n".join(tested).encode()).hexdigest()
    made_by = hashlib.sha256(b"a GAN").hexdigest()
    assert (target / MARKER).read_text() == f"left out: {split}\ncheckpoint: {made_by}\n"

    assert prepared(2).masked("lfw", "iamgan") == target  # the same split: done
    assert len(calls) == 1
    other = prepared(4)  # another split: resumed, leaving out its own tested identities
    other.masked("lfw", "iamgan")
    assert len(calls) == 2 and calls[1][3] == sorted({"lfw_person_00"} | set(other.heldout()))
    assert len(calls[1][3]) == 5

    checkpoint.write_bytes(b"another GAN")  # retrained: its twins must not mix with these
    with pytest.raises(MfrError, match="another checkpoint"):
        prepared(4).masked("lfw", "iamgan")
    checkpoint.unlink()  # gone: the finished twins of this split still serve
    assert prepared(4).masked("lfw", "iamgan") == target
    assert prepared(2).masked("lfw", "iamgan") is None  # not made for that split, cannot be
    (target / MARKER).write_text("")  # an older run's marker: every identity was generated
    assert prepared(2).masked("lfw", "iamgan") == target
    assert len(calls) == 2
