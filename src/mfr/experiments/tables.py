"""A table's results as CSV, markdown (the paper's columns) and a CMC plot on mfr2-dev."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from mfr.io import atomic_write

COLUMNS = [("Acc", "accuracy"), ("Rank-1", "rank1"), ("Rank-5", "rank5"),
           ("Rank-10", "rank10"), ("mAP", "mAP")]  # fmt: skip
TESTS = [("mfr2", "mfr2-dev (real masks)"), ("synthetic", "held-out LFW (synthetic masks)")]
RMFRD = ("rmfrd", "rmfrd-dev (real masks, end to end)")  # the demo's third test


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.1f}"


def markdown_table(results: list[dict], tests=TESTS) -> str:
    """Rows = cells; columns = the paper's metrics on each test set."""
    header = ["Method", "seed"]
    for _, title in tests:
        header += [f"{name} ({title.split(' ')[0]})" for name, _ in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result in results:
        cells = [result["row"], str(result.get("seed", 0))]
        for test, _ in tests:
            metrics = result.get(test) or {}
            cells += [_fmt(metrics.get(key)) for _, key in COLUMNS]
        if result.get("status") == "skipped":
            cells[0] += f" (skipped: {result.get('reason')})"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _has_spread(results: list[dict], tests) -> bool:
    """Several seeds of a row, or bootstrap intervals: worth a summary over seeds."""
    rows = [r["row"] for r in results if r.get("status") == "done"]
    with_ci = any(f"{key}_ci" in (r.get(test) or {}) for r in results for test, _ in tests
                  for _, key in COLUMNS)  # fmt: skip
    return len(rows) > len(set(rows)) or with_ci


def write_table(table: str, results: list[dict], out_dir: Path, tests=TESTS) -> None:
    """Write ``<table>.csv``, ``<table>.md`` and ``<table>-cmc.png`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["table", "row", "loss", "source", "seed", "status"]
                    + [f"{test}_{key}" for test, _ in tests for _, key in COLUMNS])  # fmt: skip
    for r in results:
        row = [table, r["row"], r.get("loss"), r.get("source"), r.get("seed"), r.get("status")]
        for test, _ in tests:
            metrics = r.get(test) or {}
            row += [metrics.get(key) for _, key in COLUMNS]
        writer.writerow(row)
    with atomic_write(out_dir / f"{table}.csv", "w") as handle:
        handle.write(buffer.getvalue())
    text = f"## {table}\n\n" + markdown_table(results, tests)
    if _has_spread(results, tests):
        from mfr.experiments.readings import SPREAD_NOTE, reading, summary_table

        text += f"\n### Over seeds\n\n{SPREAD_NOTE}\n\n" + summary_table(results, tests)
        lines = reading(table, results, tests)
        if lines:
            text += "\n### Reading (Rank-1)\n\n" + "\n".join(lines) + "\n"
    with atomic_write(out_dir / f"{table}.md", "w") as handle:
        handle.write(text)
    curves = {
        f"{r['row']} (s{r.get('seed', 0)})": r["mfr2"]["cmc_top20"]
        for r in results
        if (r.get("mfr2") or {}).get("cmc_top20")
    }
    if curves:
        plot_cmc_curves(curves, out_dir / f"{table}-cmc.png", f"{table}: CMC on mfr2-dev")


def plot_cmc_curves(curves: dict[str, list[float]], path: Path, title: str) -> None:
    """Several CMC curves (percent per rank) in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6.5, 4.5), dpi=110)
    for label, values in curves.items():
        ax.plot(range(1, len(values) + 1), values, marker=".", label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("rank")
    ax.set_ylabel("identification rate (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)
