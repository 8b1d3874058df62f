"""Retrieval eval: questions judged by key phrases, and the metric functions.

A passage is relevant to a question when its text contains one of the question's key phrases
(whitespace ignored), so the judgements survive any change of chunking. Because every passage
of the index can be judged this way, recall and nDCG use the true number of relevant passages.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CATEGORIES = ("exact", "paraphrase", "english", "numbers")
METRICS = ("hit@1", "recall@5", "mrr@10", "ndcg@10")


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    category: str
    answers: tuple[str, ...]

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


def load_questions(path: Path) -> list[Question]:
    questions = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        questions.append(
            Question(row["id"], row["question"], row["category"], tuple(row.get("answers", ())))
        )
    return questions


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def is_relevant(text: str, answers: Sequence[str]) -> bool:
    squashed = _squash(text)
    return any(_squash(a) in squashed for a in answers)


# --- metric functions over one ranked list of relevance flags -------------------------------


def hit_at(relevant: Sequence[bool], k: int) -> float:
    return 1.0 if any(relevant[:k]) else 0.0


def recall_at(relevant: Sequence[bool], k: int, total_relevant: int) -> float:
    if total_relevant <= 0:
        return 0.0
    return sum(relevant[:k]) / total_relevant


def mrr_at(relevant: Sequence[bool], k: int) -> float:
    for rank, rel in enumerate(relevant[:k], start=1):
        if rel:
            return 1.0 / rank
    return 0.0


def ndcg_at(relevant: Sequence[bool], k: int, total_relevant: int) -> float:
    dcg = sum(1.0 / math.log2(rank + 1) for rank, rel in enumerate(relevant[:k], start=1) if rel)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(k, total_relevant) + 1))
    return dcg / ideal if ideal else 0.0


def question_metrics(relevant: Sequence[bool], total_relevant: int) -> dict[str, float]:
    return {
        "hit@1": hit_at(relevant, 1),
        "recall@5": recall_at(relevant, 5, total_relevant),
        "mrr@10": mrr_at(relevant, 10),
        "ndcg@10": ndcg_at(relevant, 10, total_relevant),
    }


def mean_metrics(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    if not rows:
        return dict.fromkeys(METRICS, 0.0)
    return {m: round(sum(r[m] for r in rows) / len(rows), 4) for m in METRICS}


# --- running the eval -----------------------------------------------------------------------

# A search function: question, k -> ranked results as the API shapes them (dicts with "text").
SearchFn = Callable[[str, int], list[dict[str, Any]]]


@dataclass
class EvalReport:
    overall: dict[str, float]
    by_category: dict[str, dict[str, float]]
    questions: int
    answerable: int
    misses: list[dict[str, Any]] = field(default_factory=list)
    median_ms: float = 0.0
    total_s: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "questions": self.questions,
            "answerable": self.answerable,
            "overall": self.overall,
            "by_category": self.by_category,
            "median_ms": round(self.median_ms, 1),
            "total_s": round(self.total_s, 2),
            "misses": self.misses,
        }


def run_eval(
    questions: Sequence[Question], search: SearchFn, passage_texts: Sequence[str] | None
) -> EvalReport:
    """Ask every answerable question; `passage_texts` (all indexed texts) gives true recall."""
    started = time.perf_counter()
    per_question: list[tuple[Question, dict[str, float]]] = []
    misses, timings = [], []
    answerable = [q for q in questions if q.answerable]
    for q in answerable:
        t = time.perf_counter()
        results = search(q.question, 10)
        timings.append((time.perf_counter() - t) * 1000)
        relevant = [is_relevant(r["text"], q.answers) for r in results]
        if passage_texts is not None:
            total = sum(is_relevant(text, q.answers) for text in passage_texts)
        else:
            total = max(1, sum(relevant))  # over HTTP the whole index is not visible
        metrics = question_metrics(relevant, max(total, 1))
        per_question.append((q, metrics))
        if not relevant or not relevant[0]:
            misses.append(
                {
                    "id": q.id,
                    "question": q.question,
                    "category": q.category,
                    "first_relevant_rank": (relevant.index(True) + 1) if any(relevant) else None,
                    "got": results[0]["text"][:60] if results else "",
                }
            )
    by_category = {
        c: mean_metrics([m for q, m in per_question if q.category == c]) for c in CATEGORIES
    }
    timings.sort()
    return EvalReport(
        overall=mean_metrics([m for _, m in per_question]),
        by_category=by_category,
        questions=len(questions),
        answerable=len(answerable),
        misses=misses,
        median_ms=timings[len(timings) // 2] if timings else 0.0,
        total_s=time.perf_counter() - started,
    )
