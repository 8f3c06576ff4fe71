"""Run a table cell by cell: train, embed, evaluate on mfr2-dev and on a synthetic-mask test.

Every cell lives in ``OUT/<table>/<cell key>/``: the training run (``train/``, resumed from its
checkpoint when interrupted), the embeddings and evaluation JSON of each test, and
``result.json`` — written last, so a cell with a ``result.json`` is finished and never re-run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mfr.experiments.cells import Cell, table_cells
from mfr.experiments.config import ExperimentConfig
from mfr.experiments.prepare import Prepared, embed
from mfr.io import atomic_write

METRICS = ("accuracy", "rank1", "rank5", "rank10", "mAP")
MFR2_INPUT = "aligned, end to end"  # tag of the mfr2-dev test; other results are re-tested
CI_KEYS = ("rank1_ci", "rank5_ci", "rank10_ci", "mAP_ci")  # mfr eval --bootstrap


def _evaluate(
    embeddings: Path,
    json_out: Path,
    log: Callable[[str], None],
    source: Path | None = None,
    bootstrap: int = 0,
) -> dict[str, Any]:
    """Evaluate (``mfr.eval.evaluate``), the per-probe results beside the embeddings
    (``<name>.probes.npz``, :func:`probes_path`) for the tables' paired comparisons."""
    from mfr.embedders import dataset_faces
    from mfr.eval import evaluate

    faces = None if source is None else dataset_faces(source)
    return evaluate(embeddings, json_out=json_out, log=log, dataset=source, bootstrap=bootstrap,
                    dataset_faces=faces, probes_out=probes_path(embeddings))  # fmt: skip


def probes_path(embeddings: Path) -> Path:
    """The per-probe results file of a test's embeddings (``synthetic.npz`` ->
    ``synthetic.probes.npz``)."""
    return embeddings.with_name(f"{embeddings.stem}.probes.npz")


def _embed_and_eval(
    model: str,
    dataset: Path,
    out: Path,
    name: str,
    log,
    source: Path | None = None,
    bootstrap: int = 0,
) -> dict[str, Any]:
    """Embed ``dataset`` and evaluate; with ``source`` (the dataset before alignment) the
    figures are end to end (a masked probe that was not aligned is a miss)."""
    embeddings = out / f"{name}.npz"
    if not embeddings.is_file():
        embed(dataset, model, embeddings, log)
    report = _evaluate(embeddings, out / f"{name}.json", log, source, bootstrap)
    figures = {key: report.get(key) for key in (*METRICS, "accuracy_std", "num_probes",
               "num_gallery", "num_pairs", "skipped_probes", "cmc_top20", "end_to_end",
               "failed_probes", "embedded_only")}  # fmt: skip
    probes = probes_path(embeddings)
    figures["probes"] = str(probes.resolve()) if probes.is_file() else None
    return {**figures, **{key: report[key] for key in CI_KEYS if key in report}}


def _test_mfr2(model: str, prepared: Prepared, out: Path, log) -> dict:
    """Embed and evaluate mfr2-dev: every model, dlib included, reads the same aligned crops
    (dlib on the raw crops framed its masked faces badly: Rank-1 48.1 instead of 74.3), and
    every masked probe that could not be aligned counts as a miss (end to end)."""
    source = prepared.source("mfr2")
    bootstrap = prepared.config.bootstrap
    return {
        **_embed_and_eval(model, prepared.aligned("mfr2"), out, "mfr2", log, source, bootstrap),
        "input": MFR2_INPUT,
    }


def _test_rmfrd(model: str, prepared: Prepared, out: Path, log) -> dict:
    """Embed and evaluate rmfrd-dev end to end (a masked probe not aligned is a miss)."""
    source, bootstrap = prepared.source("rmfrd"), prepared.config.bootstrap
    return _embed_and_eval(model, prepared.aligned("rmfrd"), out, "rmfrd", log, source, bootstrap)


def _test_synthetic(model: str, cell: Cell, prepared: Prepared, out: Path, log) -> dict:
    """Embed and evaluate the cell's held-out synthetic-mask test, tagged with its method."""
    report = _embed_and_eval(model, prepared.synthetic_test(cell.synthetic_test_method), out,
                             "synthetic", log, bootstrap=prepared.config.bootstrap)  # fmt: skip
    return {**report, "method": cell.synthetic_test_method}


def _save(result: dict, out: Path) -> dict:
    with atomic_write(out / "result.json", "w") as handle:
        json.dump(result, handle, indent=2)
    return result


def train_config_for(cell: Cell, config: ExperimentConfig, prepared: Prepared):
    """The recognizer config of a cell, or None when its data source is not available."""
    from mfr.train.config import config_from_dict

    folders = prepared.training_sources(cell.source)
    if folders is None:
        return None
    values = dict(config.train)
    values.update(
        loss=cell.loss,
        loss_options={**values.get("loss_options", {}), **cell.loss_options},
        seed=cell.seed,
        data=[str(f) for f in folders],
        exclude=[str(prepared.train_exclude_file())],
        domains="full" if cell.source is None else "both",
    )
    if cell.distill:
        distill = {"cache": str(Path(config.data_dir).parent / "teacher-cache"), **config.distill}
        values["distill"] = {**values.get("distill", {}), **distill}
    return config_from_dict(values, f"cell {cell.table}/{cell.row}")


def _training_spec(values: dict[str, Any]) -> tuple:
    """What decides a cell's training and tests (its table and row label do not)."""
    return (values.get("loss"), values.get("source"), json.dumps(values.get("loss_options") or {},
            sort_keys=True), values.get("seed"), values.get("baseline"),
            bool(values.get("distill")))  # fmt: skip


def find_finished_twin(cell: Cell, out_dir: Path) -> Path | None:
    """A finished cell of another table under ``out_dir`` that trains exactly like ``cell``.

    Table 2's KP-SYN row is Table 1's Softmax+KP-SYN, Table 4's "with all" is Table 1's
    DCR row: such cells are trained once and their result shared.
    """
    spec = _training_spec(
        {
            "loss": cell.loss,
            "source": cell.source,
            "loss_options": cell.loss_options,
            "seed": cell.seed,
            "baseline": cell.baseline,
            "distill": cell.distill,
        }
    )
    for path in sorted(out_dir.glob("*/*/result.json")):
        try:
            other = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if (
            other.get("status") == "done"
            and other.get("table") != cell.table
            and _training_spec(other) == spec
        ):
            return path
    return None


def run_cell(
    cell: Cell,
    config: ExperimentConfig,
    prepared: Prepared,
    out: Path,
    log=print,
    twin: Path | None = None,
):
    """Run one cell (or return its stored result, or share ``twin``'s); returns the result."""
    done = out / "result.json"
    if done.is_file():
        result = json.loads(done.read_text())
        if _stale_tests(result, cell):
            result = _retest(cell, result, prepared, out, log)
        if _tests_without_probes(result):
            return _add_probes(cell, result, prepared, out, log)
        log(f"[{cell.table}] {cell.row} (seed {cell.seed}): done, skipping")
        return result
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "table": cell.table, "row": cell.row, "loss": cell.loss, "source": cell.source,
        "seed": cell.seed, "loss_options": cell.loss_options, "baseline": cell.baseline,
        "distill": cell.distill,
    }  # fmt: skip
    if twin is not None:
        shared = json.loads(twin.read_text())
        result.update({k: shared[k] for k in ("mfr2", "synthetic", "rmfrd", "status")
                       if k in shared})  # fmt: skip
        result["shared_with"] = str(twin.parent)
        log(f"[{cell.table}] {cell.row} (seed {cell.seed}): same training as {twin.parent}")
        if _stale_tests(result, cell):
            result = _retest(cell, result, prepared, out, log)
        if _tests_without_probes(result):
            return _add_probes(cell, result, prepared, out, log)
        return _save(result, out)
    started = time.perf_counter()
    if cell.baseline:
        model = cell.baseline
    else:
        from mfr.train.recognizer import train

        train_config = train_config_for(cell, config, prepared)
        if train_config is None:
            log(f"[{cell.table}] {cell.row}: skipped, no checkpoint for source {cell.source!r}")
            return {**result, "status": "skipped",
                    "reason": f"no generator checkpoint for {cell.source}"}  # fmt: skip
        run = out / "train"
        final = run / "final.pt"
        if not final.is_file():
            log(
                f"[{cell.table}] {cell.row} (seed {cell.seed}): training {train_config.steps} steps"
            )
            train(train_config, run, resume=(run / "last.pt").is_file(), log=log)
        model = str(final)
        result["train_seconds"] = round(time.perf_counter() - started, 1)
    result["mfr2"] = _test_mfr2(model, prepared, out, log)
    result["synthetic"] = _test_synthetic(model, cell, prepared, out, log)
    if prepared.config.rmfrd:
        result["rmfrd"] = _test_rmfrd(model, prepared, out, log)
    result["status"] = "done"
    result["seconds"] = round(time.perf_counter() - started, 1)
    return _save(result, out)


def _stale_tests(result: dict, cell: Cell) -> list[str]:
    """The tests of a stored result that an older mfr ran differently from now.

    ``synthetic``: another mask method than the cell's; ``mfr2``: dlib on the raw crops
    (results from before the ``input`` tag; trained models always read the aligned crops).
    """
    stale = []
    if result.get("synthetic", {}).get("method", cell.synthetic_test_method) != (
        cell.synthetic_test_method
    ):
        stale.append("synthetic")
    old_input = "raw" if cell.baseline == "dlib" else MFR2_INPUT
    if "mfr2" in result and result["mfr2"].get("input", old_input) != MFR2_INPUT:
        stale.append("mfr2")
    return stale


def _retest(cell: Cell, result: dict, prepared: Prepared, out: Path, log) -> dict:
    """Re-test a finished cell's model on its stale tests (see ``_stale_tests``), no training."""
    trained = Path(result.get("shared_with") or out) / "train" / "final.pt"
    model = cell.baseline or str(trained)
    for test in _stale_tests(result, cell):
        log(f"[{cell.table}] {cell.row} (seed {cell.seed}): {test} test changed, re-testing")
        (out / f"{test}.npz").unlink(missing_ok=True)
        if test == "synthetic":
            result["synthetic"] = _test_synthetic(model, cell, prepared, out, log)
        else:
            result["mfr2"] = _test_mfr2(model, prepared, out, log)
    return _save(result, out)


TESTS_AND_SOURCES = (("mfr2", "mfr2"), ("synthetic", None), ("rmfrd", "rmfrd"))


def _tests_without_probes(result: dict) -> list[str]:
    """The tests of a finished result stored without per-probe results (older mfr), or whose
    file is gone; ``"probes": null`` means they could not be made, and is not retried."""
    return [
        test
        for test, _ in TESTS_AND_SOURCES
        if isinstance(result.get(test), dict)
        and (
            "probes" not in result[test]
            or (result[test]["probes"] and not Path(result[test]["probes"]).is_file())
        )
    ]


def _add_probes(cell: Cell, result: dict, prepared: Prepared, out: Path, log) -> dict:
    """Re-evaluate (never re-embed) the stored embeddings of the tests without per-probe
    results, so that the table can compare its rows probe by probe. A test whose embeddings
    are gone, or whose figures the re-evaluation does not reproduce, gets ``"probes": null``
    (its comparisons stay unpaired)."""
    sources = dict(TESTS_AND_SOURCES)
    for test in _tests_without_probes(result):
        embeddings = out / f"{test}.npz"
        if not embeddings.is_file() and result.get("shared_with"):
            embeddings = Path(result["shared_with"]) / f"{test}.npz"
        result[test]["probes"] = None
        if not embeddings.is_file():
            continue
        log(f"[{cell.table}] {cell.row} (seed {cell.seed}): per-probe results of {test}")
        source = prepared.source(sources[test]) if sources[test] else None
        report = _evaluate(embeddings, embeddings.with_suffix(".json"), log, source,
                           prepared.config.bootstrap)  # fmt: skip
        stored, again = result[test].get("rank1"), report.get("rank1")
        if stored is None or again is None or abs(stored - again) > 1e-6:
            log(f"note: {test} Rank-1 re-evaluated as {again}, stored {stored}: keeping the "
                "stored figures, unpaired")  # fmt: skip
            continue
        probes = probes_path(embeddings)
        result[test]["probes"] = str(probes.resolve()) if probes.is_file() else None
    return _save(result, out)


def run_table(table: str, config: ExperimentConfig, out_dir: Path, log=print) -> list[dict]:
    """Run (or resume) every cell of ``table``; writes its CSV, markdown and CMC plot."""
    from mfr.experiments.tables import RMFRD, TESTS, write_table

    tests = [*TESTS, RMFRD] if config.rmfrd else TESTS
    seeds = list(config.seeds)
    if table in config.second_seed_tables and len(seeds) == 1:
        seeds.append(seeds[0] + 1)
    prepared = Prepared(config, log)
    results = []
    distill = table in config.distill_tables
    cells = table_cells(table, config.masked_source, tuple(seeds), distill, tuple(config.baselines))
    for cell in cells:
        twin = find_finished_twin(cell, out_dir)
        results.append(run_cell(cell, config, prepared, out_dir / table / cell.key, log, twin))
        write_table(table, results, out_dir / table, tests)
    return results
