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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rag.mode import Mode
    from rag.search.retriever import Retriever

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


def highlight_holds_answer(result: dict[str, Any], answers: Sequence[str]) -> bool:
    """The result's highlighted sentences hold an answer phrase, or lie inside one (a phrase
    may run across two sentences)."""
    text = result["text"]
    marked = _squash("".join(text[h["start"] : h["end"]] for h in result.get("highlights", [])))
    return bool(marked) and any(_squash(a) in marked or marked in _squash(a) for a in answers)


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


def boundary_scores(found: Sequence[set[int]], labelled: Sequence[set[int]]) -> tuple[float, float]:
    """Precision and recall of article starts (code-point offsets), pooled over pages."""
    hits = sum(len(f & g) for f, g in zip(found, labelled, strict=True))
    predicted = sum(len(f) for f in found)
    actual = sum(len(g) for g in labelled)
    return (hits / predicted if predicted else 0.0), (hits / actual if actual else 0.0)


# --- running the eval -----------------------------------------------------------------------

# A search function: question, k -> the body the API returns ("answerable", "results" with
# "text"); run locally it also carries "best_similarity" and "reason" for the trade-off curve.
SearchFn = Callable[[str, int], dict[str, Any]]


@dataclass
class EvalReport:
    overall: dict[str, float]
    by_category: dict[str, dict[str, float]]
    questions: int
    answerable: int
    answerability: dict[str, int] = field(default_factory=dict)
    # Of the questions with a relevant result in the top 5, how many have the answer highlighted.
    highlight: dict[str, float] = field(default_factory=dict)
    curve: list[dict[str, Any]] = field(default_factory=list)
    misses: list[dict[str, Any]] = field(default_factory=list)
    median_ms: float = 0.0
    total_s: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "questions": self.questions,
            "answerable": self.answerable,
            "overall": self.overall,
            "by_category": self.by_category,
            "answerability": self.answerability,
            "highlight": self.highlight,
            "curve": self.curve,
            "median_ms": round(self.median_ms, 1),
            "total_s": round(self.total_s, 2),
            "misses": self.misses,
        }


def local_search(retriever: Retriever, mode: Mode | None = None) -> SearchFn:
    """Ask the retriever in this process; the bodies carry the evidence for the curve."""
    from rag.response import search_response

    def search(question: str, k: int) -> dict[str, Any]:
        started = time.perf_counter()
        answer = retriever.answer(question, k, mode=mode)
        took_ms = (time.perf_counter() - started) * 1000
        return {
            **search_response(question, answer, took_ms).model_dump(),
            "best_similarity": answer.best_similarity,
            "reason": answer.reason,
        }

    return search


def answer_curve(rows: Sequence[tuple[Question, dict[str, Any]]]) -> list[dict[str, Any]]:
    """For floors on the best cosine, per script, how many questions of each kind would be
    flagged (the tests on words and places count at every floor): the curve the floors are read
    from."""
    from rag.verdict.answerable import is_chinese

    curve = []
    for script in ("zh", "en"):
        mine = [(q, b) for q, b in rows if is_chinese(q.question) == (script == "zh")]
        sims = sorted({round(float(b["best_similarity"]), 3) for _, b in mine})
        for floor in sims:
            flagged = [
                q
                for q, b in mine
                if b.get("reason") not in (None, "too_far") or b["best_similarity"] < floor
            ]
            curve.append(
                {
                    "script": script,
                    "floor": floor,
                    "unanswerable_flagged": sum(not q.answerable for q in flagged),
                    "answerable_flagged": sum(q.answerable for q in flagged),
                }
            )
    return curve


def run_eval(
    questions: Sequence[Question], search: SearchFn, passage_texts: Sequence[str] | None
) -> EvalReport:
    """Ask every question; `passage_texts` (all indexed texts) gives true recall."""
    started = time.perf_counter()
    per_question: list[tuple[Question, dict[str, float]]] = []
    bodies: list[tuple[Question, dict[str, Any]]] = []
    misses, timings = [], []
    highlights: list[bool] = []
    for q in questions:
        t = time.perf_counter()
        body = search(q.question, 10)
        timings.append((time.perf_counter() - t) * 1000)
        bodies.append((q, body))
        if not q.answerable:
            continue
        results = body["results"]
        relevant = [is_relevant(r["text"], q.answers) for r in results]
        if passage_texts is not None:
            total = sum(is_relevant(text, q.answers) for text in passage_texts)
        else:
            total = max(1, sum(relevant))  # over HTTP the whole index is not visible
        metrics = question_metrics(relevant, max(total, 1))
        per_question.append((q, metrics))
        # The highlight is judged on the first relevant result among the first five.
        first = next((r for r, rel in zip(results[:5], relevant, strict=False) if rel), None)
        if first is not None:
            highlights.append(highlight_holds_answer(first, q.answers))
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
    # A question whose body says nothing is taken as answerable: that is the API's default.
    flagged = [q for q, b in bodies if b.get("answerable", True) is False]
    answerability = {
        "unanswerable": sum(not q.answerable for q in questions),
        "unanswerable_flagged": sum(not q.answerable for q in flagged),
        "answerable_flagged": sum(q.answerable for q in flagged),
    }
    with_evidence = [(q, b) for q, b in bodies if "best_similarity" in b]
    timings.sort()
    return EvalReport(
        overall=mean_metrics([m for _, m in per_question]),
        by_category=by_category,
        questions=len(questions),
        answerable=sum(q.answerable for q in questions),
        answerability=answerability,
        highlight={
            "judged": len(highlights),
            "holding_answer": sum(highlights),
            "rate": round(sum(highlights) / len(highlights), 4) if highlights else 0.0,
        },
        curve=answer_curve(with_evidence) if len(with_evidence) == len(bodies) else [],
        misses=misses,
        median_ms=timings[len(timings) // 2] if timings else 0.0,
        total_s=time.perf_counter() - started,
    )
