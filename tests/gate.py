"""What a gate compares: an eval report against a recorded baseline block."""

from __future__ import annotations

from typing import Any

from rag.evaluate import CATEGORIES, METRICS, EvalReport


def regressions(report: EvalReport, baseline: dict[str, Any], tolerance: float) -> list[str]:
    """Every way the report falls short of the baseline: a metric (overall or by category) or
    the highlight rate more than `tolerance` below it, more answerable questions flagged (the
    page's baseline has none), fewer unanswerable ones flagged, or another number of questions."""
    fallen = [
        f"{scope} {metric}: {row[metric]:.4f} < baseline {base[metric]:.4f}"
        for scope, row, base in [
            ("overall", report.overall, baseline["overall"]),
            *((c, report.by_category[c], baseline["by_category"][c]) for c in CATEGORIES),
        ]
        for metric in METRICS
        if row[metric] < base[metric] - tolerance
    ]
    if report.questions != baseline["questions"]:
        fallen.append(f"{report.questions} questions, baseline has {baseline['questions']}")
    if report.highlight["rate"] < baseline["highlight"]["rate"] - tolerance:
        fallen.append(f"highlight {report.highlight} < baseline {baseline['highlight']}")
    flagged = report.answerability
    if flagged["answerable_flagged"] > baseline["answerability"]["answerable_flagged"]:
        fallen.append(f"answerable flagged {flagged} > baseline {baseline['answerability']}")
    if flagged["unanswerable_flagged"] < baseline["answerability"]["unanswerable_flagged"]:
        fallen.append(f"unanswerable flagged {flagged} < baseline {baseline['answerability']}")
    if fallen:
        fallen += [f"  miss {m['id']} {m['question']} -> {m['got']}" for m in report.misses]
    return fallen
