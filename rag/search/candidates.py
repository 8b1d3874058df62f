"""The candidates of both legs and every score fusion mixes, aligned by row.

The lexical leg's candidates are scored by BM25 (over passages and over their sentences) on the
leg's own thread, while the dense leg still runs (rag.search.retriever); only the passages the
dense leg alone found are scored after it. Per passage and per sentence a BM25 score does not
depend on which others are scored with it (rag.index.lexical.LexicalIndex.scores_at), so the two
parts joined are the scores of the whole union.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rag.index.backend import SearchBackend


@dataclass(frozen=True)
class Candidates:
    """The union of both legs' candidates, with every score fusion needs, aligned by row."""

    ids: np.ndarray  # passage indices, ascending
    passage_cos: np.ndarray
    sentence_cos: np.ndarray  # each passage's best sentence (its own cosine without sentences)
    lexical: np.ndarray  # BM25 fused over passages and sentences, each scaled over the candidates
    # Sentence rows of the candidates, run together: the candidate in row j has the rows
    # rows[offsets[j] : offsets[j] + lengths[j]], scored sentence_scores / sentence_bm25.
    rows: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    sentence_scores: np.ndarray
    sentence_bm25: np.ndarray


@dataclass(frozen=True)
class LexicalScores:
    """Some passages' BM25 and their sentences', a search at a time."""

    ids: np.ndarray  # passage indices, ascending and distinct
    passages: tuple[np.ndarray, ...]  # a search's scores, aligned with ids
    rows: np.ndarray  # the passages' sentence rows, ascending (rag.index.backend.rows_of)
    sentences: tuple[np.ndarray, ...]  # a search's scores, aligned with rows


def lexical_scores(
    backend: SearchBackend, searches: Sequence[str], ids: np.ndarray
) -> LexicalScores:
    """The BM25 of the passages `ids` (ascending, distinct) and of their sentences."""
    rows, _, _ = backend.sentence_rows(ids)
    if not len(ids):  # nothing to ask the backend (a remote one would be asked for nothing)
        empty = tuple(np.zeros(0, dtype=np.float32) for _ in searches)
        return LexicalScores(ids, empty, rows, empty)
    return LexicalScores(
        ids,
        tuple(backend.lexical_scores(s, ids) for s in searches),
        rows,
        tuple(backend.sentence_lexical_scores(s, rows) for s in searches),
    )


def joined(a: LexicalScores, b: LexicalScores) -> LexicalScores:
    """The scores of two sets of passages that share none, as one set, ascending."""
    ids = np.concatenate([a.ids, b.ids])
    by_id = np.argsort(ids, kind="stable")
    rows = np.concatenate([a.rows, b.rows])
    by_row = np.argsort(rows, kind="stable")
    return LexicalScores(
        ids[by_id],
        tuple(np.concatenate(pair)[by_id] for pair in zip(a.passages, b.passages, strict=True)),
        rows[by_row],
        tuple(np.concatenate(pair)[by_row] for pair in zip(a.sentences, b.sentences, strict=True)),
    )


def min_max(scores: np.ndarray) -> np.ndarray:
    """Scale scores to [0, 1] over the candidates so the two legs can be mixed."""
    if not len(scores):
        return scores
    lo, hi = scores.min(), scores.max()
    return (scores - lo) / (hi - lo) if hi > lo else np.zeros_like(scores)


def best_per(
    scores: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, *, fallback: np.ndarray
) -> np.ndarray:
    """Each group's best score (groups of `lengths` rows from `offsets`); `fallback` for an
    empty group."""
    best = np.array(fallback, dtype=np.float32, copy=True)
    has = lengths > 0
    if has.any():
        best[has] = np.maximum.reduceat(scores, offsets[has])
    return best
