"""A table's cells over seeds (mean ± std, bootstrap intervals) and a reading of the paper's
claims: is each difference larger than its interval?

The uncertainty of a difference ``A - B`` (percentage points) is the larger of

- the bootstrap part ``sqrt(hA² + hB²)``, with ``h`` a row's 95 % bootstrap half-width
  (``mfr eval --bootstrap``: identities resampled) averaged over its seeds, and
- the seed part ``t · sqrt(sA²/nA + sB²/nB)``, with ``s`` the standard deviation over the
  row's ``n`` seeds (ddof 1; 0 with one seed) and ``t`` Student's 0.975 quantile at Welch's
  degrees of freedom (2.78 for two rows of 3 seeds with equal spread, 4.30 when one has
  none; :func:`seed_part`).

A claim is *decided* when ``|A - B|`` exceeds it, else *not decided by this data*.

**Paired** (when every seed of both rows stored its per-probe results, ``<test>.probes.npz``,
on the same probes: the same probe keys, i.e. the same image files): the bootstrap part is
instead the half-width of the paired cluster bootstrap of the difference
(:func:`mfr.eval.bootstrap.paired_difference_interval`, 1,000 identity resamples, each row's
per-probe figure averaged over its seeds), and the interval is ``sqrt(paired² + seed²)``: the
probe-sampling noise two models share (the same hard probes) cancels in the difference, and
probe sampling and seed spread add as variances (law of total variance; slightly
conservative, as the seed means still carry some seed noise). When both rows ran the same
seeds the seed part is paired too (:func:`paired_seed_part`: the spread of the per-seed
differences; the cells of one seed share its random streams, batch sampling and head
initialisation). While a row has a single seed (no spread measured) the paired interval is
never taken narrower than the unpaired one.
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfr.experiments.cells import AD_HOC, DISTILL_SUFFIX, LOSS_LABELS, SOURCE_LABELS

SUMMARY_METRICS = (("Rank-1", "rank1"), ("mAP", "mAP"))
SPREAD_NOTE = (
    "Mean ± standard deviation over seeds [± mean half-width of the 95 % bootstrap interval, "
    "identities resampled]. A claim is decided when the difference exceeds its interval: "
    "*paired* (both rows scored on the same probes), sqrt(paired bootstrap half-width of the "
    "difference² + seed part²); otherwise the larger of the two rows' combined bootstrap "
    "half-widths and the seed part (mfr.experiments.readings)."
)
PAIRED_RESAMPLES = 1000


@dataclass(frozen=True)
class RowStats:
    """One metric of one row on one test over its seeds (percent)."""

    mean: float
    std: float  # over seeds, ddof 1; 0.0 with one seed
    n: int  # seeds with a figure
    half_width: float | None  # mean 95 % bootstrap half-width over seeds; None: not run


def row_stats(results: list[dict], row: str, test: str, metric: str) -> RowStats | None:
    """Stats of ``metric`` of ``test`` over the finished seeds of ``row`` (None: no figure)."""
    values, widths = [], []
    for result in results:
        if result.get("row") != row or result.get("status") != "done":
            continue
        figures = result.get(test) or {}
        if figures.get(metric) is None:
            continue
        values.append(float(figures[metric]))
        interval = figures.get(f"{metric}_ci")
        if interval is not None:
            widths.append((float(interval[1]) - float(interval[0])) / 2)
    if not values:
        return None
    mean = sum(values) / len(values)
    std = (
        math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        if len(values) > 1
        else 0.0
    )
    half = sum(widths) / len(widths) if len(widths) == len(values) else None
    return RowStats(mean, std, len(values), half)


# Student's t 0.975 quantiles by degrees of freedom (a smaller df is taken for one not listed)
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228, 15: 2.131, 20: 2.086, 30: 2.042}  # fmt: skip


def seed_part(a: RowStats, b: RowStats) -> float:
    """Half-width of the 95 % interval of the difference of two seed means: Welch's
    ``t · sqrt(sA²/nA + sB²/nB)``, ``t`` Student's 0.975 quantile at the Welch-Satterthwaite
    degrees of freedom (rounded down; 1.96 beyond 30); 0 when neither row has a spread."""
    va, vb = a.std**2 / a.n, b.std**2 / b.n
    if va + vb == 0:
        return 0.0
    terms = [v**2 / (n - 1) for v, n in ((va, a.n), (vb, b.n)) if n > 1 and v > 0]
    df = (va + vb) ** 2 / sum(terms) if terms else 1.0
    return _t975(df) * math.sqrt(va + vb)


def _t975(df: float) -> float:
    listed = [d for d in _T975 if d <= df]
    return 1.96 if df > 30 else _T975[max(listed)] if listed else _T975[1]


def paired_seed_part(results: list[dict], a: str, b: str, test: str, metric: str) -> float | None:
    """Half-width of the 95 % interval of the mean per-seed difference ``A_s - B_s`` when both
    rows ran the same seeds (at least 2): ``t · sd(d) / sqrt(n)``, ``t`` Student's 0.975
    quantile at n - 1 degrees of freedom; None otherwise.

    Cells of one seed share their randomness (batch order, head initialisation) across rows,
    so a seed that is good or bad for one row is so for the others; pairing by seed removes
    that common part, which the unpaired (Welch) seed part counts twice."""

    def by_seed(row: str) -> dict:
        return {
            r.get("seed"): float(r[test][metric])
            for r in results
            if r.get("row") == row and r.get("status") == "done"
            and (r.get(test) or {}).get(metric) is not None
        }  # fmt: skip

    values_a, values_b = by_seed(a), by_seed(b)
    if set(values_a) != set(values_b) or len(values_a) < 2:
        return None
    d = [values_a[seed] - values_b[seed] for seed in sorted(values_a)]
    return _t975(len(d) - 1) * statistics.stdev(d) / math.sqrt(len(d))


def difference_interval(a: RowStats, b: RowStats) -> float:
    """The half-width the difference ``a.mean - b.mean`` must exceed, unpaired (module
    docstring)."""
    boot = math.hypot(a.half_width or 0.0, b.half_width or 0.0)
    return max(boot, seed_part(a, b))


def verdict(a: RowStats, b: RowStats, interval: float | None = None) -> str:
    """``decided`` when ``|a - b|`` exceeds ``interval`` (default ``difference_interval``),
    else not decided."""
    interval = difference_interval(a, b) if interval is None else interval
    return "decided" if abs(a.mean - b.mean) > interval else "not decided by this data"


def _probe_files(results: list[dict], row: str, test: str) -> list[str] | None:
    """The per-probe results file of every finished seed of ``row`` on ``test``; None when a
    seed has none."""
    files = []
    for result in results:
        if result.get("row") != row or result.get("status") != "done":
            continue
        path = (result.get(test) or {}).get("probes")
        if not path or not Path(path).is_file():
            return None
        files.append(path)
    return files or None


@functools.lru_cache(maxsize=256)
def _seed_mean_values(files: tuple[str, ...], metric: str):
    """(probe keys, identities, per-probe ``metric`` averaged over the files), the probes
    ordered by key; None when the files do not hold the same probes. Cached: a row enters
    many comparisons of a table, and the table is rewritten after every cell."""
    from mfr.eval.probes import load_probe_results

    loaded = [load_probe_results(path).sorted_by_key() for path in files]
    keys = loaded[0].keys
    if any(not np.array_equal(r.keys, keys) for r in loaded[1:]):
        return None
    return keys, loaded[0].identities, np.mean([r.values(metric) for r in loaded], axis=0)


def paired_interval(
    results: list[dict], a: str, b: str, test: str, metric: str, sa: RowStats, sb: RowStats
) -> float | None:
    """The paired half-width of ``a - b`` (module docstring), or None when the per-probe
    results are missing or the two rows were not scored on the same probes (same keys)."""
    from mfr.eval.bootstrap import paired_difference_interval

    files_a, files_b = _probe_files(results, a, test), _probe_files(results, b, test)
    if files_a is None or files_b is None:
        return None
    mean_a = _seed_mean_values(tuple(files_a), metric)
    mean_b = _seed_mean_values(tuple(files_b), metric)
    if mean_a is None or mean_b is None or not np.array_equal(mean_a[0], mean_b[0]):
        return None
    low, high = paired_difference_interval(mean_a[2], mean_b[2], mean_a[1], PAIRED_RESAMPLES)
    seeds = paired_seed_part(results, a, b, test, metric)
    paired = math.hypot((high - low) / 2, seed_part(sa, sb) if seeds is None else seeds)
    if min(sa.n, sb.n) < 2:  # no seed spread measured: never narrower than the unpaired rule
        return max(paired, difference_interval(sa, sb))
    return paired


def _rows(results: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["row"] for r in results))


def claims(table: str, rows: list[str]) -> list[tuple[str, str, str]]:
    """(claim, row A, row B) comparisons of the paper's claims that ``rows`` allow; each is
    made among rows without distillation and again among the ``+distill`` rows."""
    present = set(rows)
    out = []
    for suffix in ("", DISTILL_SUFFIX):
        pairs: list[tuple[str, str, str]] = []
        if table == "table1":
            labels = [label for label in SOURCE_LABELS.values()
                      if f"DCR+{label}{suffix}" in present]  # fmt: skip
            for source in labels:
                for loss, name in LOSS_LABELS.items():
                    if loss != "dcr":
                        pairs.append(("synthetic masks help", f"{name}+{source}", name))
                for loss, name in LOSS_LABELS.items():
                    if loss != "dcr":
                        pairs.append(("DCR beats the other losses", f"DCR+{source}",
                                      f"{name}+{source}"))  # fmt: skip
        elif table == "table2":
            others = [SOURCE_LABELS[s] for s in ("cyclegan", *AD_HOC)]
            pairs = [("IAMGAN beats the other generators", "IAMGAN", o) for o in others]
        elif table == "table3":
            pairs = [("all IAMGAN terms matter", "with all", o)
                     for o in ("w/o L_IP", "w/o L_rec", "w/o L_cls")]  # fmt: skip
        elif table == "table4":
            pairs = [("both DCR terms matter", "with all", o) for o in ("w/o L_c", "w/o L_s")]
        for claim, a, b in pairs:
            a, b = a + suffix, b + suffix
            if a in present and b in present:
                out.append((claim + (" (with distillation)" if suffix else ""), a, b))
    return out


def _fmt_stats(stats: RowStats | None) -> str:
    if stats is None:
        return "–"
    text = f"{stats.mean:.1f} ± {stats.std:.1f}"
    return text + (f" [±{stats.half_width:.1f}]" if stats.half_width is not None else "")


def summary_table(results: list[dict], tests) -> str:
    """Markdown: one line per row, each test's Rank-1 and mAP as mean ± std over seeds and
    [± mean bootstrap half-width]."""
    header = ["Method", "seeds"]
    for _, title in tests:
        header += [f"{name} ({title.split(' ')[0]})" for name, _ in SUMMARY_METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in _rows(results):
        seeds = sorted({r.get("seed", 0) for r in results if r["row"] == row
                        and r.get("status") == "done"})  # fmt: skip
        cells = [row, ",".join(map(str, seeds)) or "–"]
        for test, _ in tests:
            cells += [_fmt_stats(row_stats(results, row, test, key)) for _, key in SUMMARY_METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def reading(table: str, results: list[dict], tests, metric: str = "rank1") -> list[str]:
    """One markdown line per (claim, comparison, test): the difference, its interval and
    whether it is decided."""
    lines = []
    for claim, a, b in claims(table, _rows(results)):
        for test, title in tests:
            sa, sb = row_stats(results, a, test, metric), row_stats(results, b, test, metric)
            if sa is None or sb is None:
                continue
            paired = paired_interval(results, a, b, test, metric, sa, sb)
            interval = difference_interval(sa, sb) if paired is None else paired
            lines.append(
                f"- {claim}: {a} − {b} on {title.split(' ')[0]} {metric}: "
                f"{sa.mean - sb.mean:+.1f} ± {interval:.1f} "
                f"({'paired, ' if paired is not None else ''}seeds {sa.n}/{sb.n}) → "
                f"**{verdict(sa, sb, interval)}**"
            )
    return lines
