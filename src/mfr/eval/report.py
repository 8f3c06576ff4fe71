"""The evaluation report: one JSON-ready dict (percentages 0-100) and a rich table."""

from __future__ import annotations

import math

from mfr.eval.retrieval import RetrievalResult
from mfr.eval.verification import VerificationResult

CONTRACT_KEYS = (
    "rank1",
    "rank5",
    "rank10",
    "mAP",
    "accuracy",
    "accuracy_std",
    "num_probes",
    "num_gallery",
    "num_pairs",
    "skipped_probes",
)


def _percent(value: float | None) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return 100.0 * float(value)


def headline(retrieval: RetrievalResult | None, verification: VerificationResult | None) -> dict:
    """The headline figures (percent 0-100, None where not computed) with their probe and
    pair counts: ``rank1, rank5, rank10, mAP, accuracy, accuracy_std, num_probes,
    num_pairs`` (the embedded-only view of an end-to-end report)."""
    r, v = retrieval, verification
    return {
        "rank1": _percent(r.rank(1)) if r else None,
        "rank5": _percent(r.rank(5)) if r else None,
        "rank10": _percent(r.rank(10)) if r else None,
        "mAP": _percent(r.mean_average_precision) if r else None,
        "accuracy": _percent(v.accuracy) if v else None,
        "accuracy_std": _percent(v.accuracy_std) if v else None,
        "num_probes": r.num_probes if r else 0,
        "num_pairs": v.num_pairs if v else 0,
    }


def build_report(
    retrieval: RetrievalResult | None,
    verification: VerificationResult | None,
    num_probes: int,
    num_gallery: int,
    extra: dict | None = None,
) -> dict:
    """The result object: contract keys first (None where a part could not be computed)."""
    r, v = retrieval, verification
    figures = headline(r, v)
    num_pairs = figures.pop("num_pairs")
    report = {
        **figures,
        "num_probes": r.num_probes if r else num_probes,
        "num_gallery": num_gallery,
        "num_pairs": num_pairs,
        "skipped_probes": r.skipped_probes if r else 0,
        "tar_at_far_1e-2": _percent(v.tar_at_far[1e-2]) if v else None,
        "tar_at_far_1e-3": _percent(v.tar_at_far[1e-3]) if v else None,
        "roc_auc": _percent(v.roc_auc) if v else None,
        "fold_accuracies": [_percent(a) for a in v.fold_accuracies] if v else [],
        "fold_thresholds": [float(t) for t in v.fold_thresholds] if v else [],
        "num_matched_pairs": v.num_matched if v else 0,
        "num_unmatched_pairs": v.num_unmatched if v else 0,
        "cmc_top20": [_percent(x) for x in r.cmc[:20]] if r else [],
    }
    report.update(extra or {})
    return report


def render_table(report: dict, title: str = "mfr eval"):
    """A rich Table of the headline figures."""
    from rich.table import Table

    def fmt(key: str, unit: str = "%") -> str:
        value = report.get(key)
        if value is None:
            return "n/a"
        return f"{value:.2f}{unit}" if isinstance(value, float) else str(value)

    def with_ci(key: str) -> str:
        bounds = report.get(f"{key}_ci")
        text = fmt(key)
        return text if not bounds else f"{text} [95% CI {bounds[0]:.1f}-{bounds[1]:.1f}]"

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("Rank-1", with_ci("rank1")),
        ("Rank-5", with_ci("rank5")),
        ("Rank-10", with_ci("rank10")),
        ("mAP", with_ci("mAP")),
        (
            "Verification accuracy",
            "n/a"
            if report.get("accuracy") is None
            else f"{report['accuracy']:.2f}% ± {report['accuracy_std']:.2f}",
        ),
        ("TAR@FAR=1e-2", fmt("tar_at_far_1e-2")),
        ("TAR@FAR=1e-3", fmt("tar_at_far_1e-3")),
        ("ROC AUC", fmt("roc_auc")),
        (
            "probes (masked) evaluated" + (" end to end" if report.get("end_to_end") else ""),
            fmt("num_probes"),
        ),
        ("probes skipped (no gallery identity)", fmt("skipped_probes")),
        ("gallery (full face)", fmt("num_gallery")),
        (
            "pairs (matched / unmatched)",
            f"{report['num_pairs']} "
            f"({report.get('num_matched_pairs', 0)} / {report.get('num_unmatched_pairs', 0)})",
        ),
    ]
    embedded = report.get("embedded_only")
    if report.get("end_to_end") and embedded:
        rows.append(("probes not aligned or embedded (misses)", fmt("failed_probes")))

        def inner(key: str) -> str:
            value = embedded.get(key)
            return "n/a" if value is None else f"{value:.2f}%"

        rows.append(
            (
                f"embedded only ({embedded['num_probes']} probes): Rank-1 / mAP / accuracy",
                f"{inner('rank1')} / {inner('mAP')} / {inner('accuracy')}",
            )
        )
    for name, value in rows:
        table.add_row(name, value)
    return table
