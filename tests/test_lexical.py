"""BM25 at chosen rows (rag.index.lexical.LexicalIndex.scores_at) is BM25 over all, read there."""

from __future__ import annotations

import numpy as np
import pytest

from rag.index.lexical import LexicalIndex
from tests.conftest import BULLETIN


@pytest.fixture(scope="module")
def paragraphs() -> list[str]:
    text = BULLETIN.read_text(encoding="utf-8")
    return [p.strip() for p in text.split("\n") if len(p.strip()) > 10]


@pytest.mark.parametrize("how", ["bigram", "jieba"])
@pytest.mark.parametrize("question", ["北京商业航天2028目标是什么", "氢能 氢能 走廊", "光伏产业"])
def test_scores_at_rows_equal_the_full_scores_there_by_either_path(
    paragraphs: list[str], how: str, question: str
) -> None:
    index = LexicalIndex(paragraphs, how)  # type: ignore[arg-type]
    terms = index.term_ids(question)
    assert len(terms)
    full = index.scores_of(terms)
    best = np.argsort(-full)[:2]  # rows using the question's words, and rows that may not
    rows = np.unique(np.concatenate([best, [0, 3, len(paragraphs) - 1]]))
    np.testing.assert_allclose(index.scores_at(terms, rows), full[rows], rtol=1e-6)
    # Both readings, forced: by the terms' postings and by the rows' own terms.
    np.testing.assert_allclose(index._scores_by_text(terms, rows), full[rows], rtol=1e-6)
    everything = np.arange(len(paragraphs))
    np.testing.assert_allclose(index.scores_at(terms, everything), full, rtol=1e-6)
    assert full[best].all()  # rows with the question's words are among those compared


def test_no_rows_or_no_terms_score_nothing(paragraphs: list[str]) -> None:
    index = LexicalIndex(paragraphs, "bigram")
    assert index.scores_at(index.term_ids("商业航天"), np.zeros(0, np.int64)).shape == (0,)
    assert not index.scores_at(np.zeros(0, np.int64), np.arange(3)).any()
