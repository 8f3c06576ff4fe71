"""A table's cells over seeds (mean ± std, bootstrap intervals) and a reading of the paper's
claims: is each difference larger than its interval?

The uncertainty of a difference ``A - B`` (percentage points) is the larger of

- the bootstrap part ``sqrt(hA² + hB²)``, with ``h`` a row's 95 % bootstrap half-width
  (``mfr eval --bootstrap``: identities resampled) averaged over its seeds, and
- the seed part ``1.96 · sqrt(sA²/nA + sB²/nB)``, with ``s`` the standard deviation over the
  row's ``n`` seeds (ddof 1; 0 with one seed).

A claim is *decided* when ``|A - B|`` exceeds it, else *not decided by this data*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mfr.experiments.cells import AD_HOC, DISTILL_SUFFIX, LOSS_LABELS, SOURCE_LABELS

SUMMARY_METRICS = (("Rank-1", "rank1"), ("mAP", "mAP"))
SPREAD_NOTE = (
    "Mean ± standard deviation over seeds [± mean half-width of the 95 % bootstrap interval, "
    "identities resampled]. A claim is decided when the difference exceeds the larger of the "
    "bootstrap and the seed intervals (mfr.experiments.readings)."
)


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


def difference_interval(a: RowStats, b: RowStats) -> float:
    """The half-width the difference ``a.mean - b.mean`` must exceed (module docstring)."""
    boot = math.hypot(a.half_width or 0.0, b.half_width or 0.0)
    seeds = 1.96 * math.sqrt(a.std**2 / a.n + b.std**2 / b.n)
    return max(boot, seeds)


def verdict(a: RowStats, b: RowStats) -> str:
    """``decided`` when ``|a - b|`` exceeds ``difference_interval``, else not decided."""
    difference = a.mean - b.mean
    return "decided" if abs(difference) > difference_interval(a, b) else "not decided by this data"


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
            difference = sa.mean - sb.mean
            lines.append(
                f"- {claim}: {a} − {b} on {title.split(' ')[0]} {metric}: "
                f"{difference:+.1f} ± {difference_interval(sa, sb):.1f} "
                f"(seeds {sa.n}/{sb.n}) → **{verdict(sa, sb)}**"
            )
    return lines
