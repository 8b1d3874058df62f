"""Whether a loaded index can answer: a few tiny searches through the whole retriever.

A flag set once the files are read says nothing about whether searching them works: a garbled
array can load and then fail, or answer nothing, on every question. So readiness is a probe
search, run after each load (a refused probe refuses the load) and repeated by /readyz.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rag.index.faults import BackendUnavailable
from rag.search.retriever import Retriever

# Passages the probe asks about, spread over the index so a damaged tail is touched too.
PROBES = 3
# Characters of a passage asked as the question: enough to carry terms, small enough to be quick.
PROBE_CHARS = 48


@dataclass(frozen=True)
class Probe:
    """The outcome of one probe; `failure` says what went wrong (never bulletin text)."""

    ok: bool
    failure: str | None = None
    # The failure was the index's store not answering (Milvus), not the index itself.
    unreachable: bool = False


def probe_questions(retriever: Retriever) -> list[str]:
    """Prefixes of a few passages, first, middle and last: each should find something."""
    texts = retriever.passage_texts
    if not texts:
        return []
    picks = sorted({0, len(texts) // 2, len(texts) - 1})[:PROBES]
    return [texts[i][:PROBE_CHARS] for i in picks]


def probe(retriever: Retriever) -> Probe:
    """Ask the retriever a few of its own passages; ok when every search runs, their scores are
    finite, and at least one finds a passage."""
    questions = probe_questions(retriever)
    if not questions:
        return Probe(False, "the index holds no passages")
    found = 0
    for question in questions:
        try:
            hits = retriever.search(question, k=1)
        except BackendUnavailable as exc:  # says which store and why, never bulletin text
            return Probe(False, f"a probe search failed: {exc}", unreachable=True)
        except Exception as exc:  # any failure at all means the index cannot answer
            return Probe(False, f"a probe search failed ({type(exc).__name__})")
        if any(not math.isfinite(h.score) for h in hits):
            return Probe(False, "a probe search gave a score that is not a number")
        found += bool(hits)
    if not found:
        return Probe(False, "no probe search found a passage")
    return Probe(True)
