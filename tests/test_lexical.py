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


@pytest.fixture(scope="module")
def recombined(paragraphs: list[str]) -> list[str]:
    """3,000 texts of 1 to 4 of the bulletin's sentences drawn at random: posting lists as long,
    relative to the corpus, as an archive's."""
    sentences = [s for p in paragraphs for s in p.split("。") if len(s) > 4]
    rng = np.random.default_rng(7)
    return ["。".join(rng.choice(sentences, size=rng.integers(1, 5))) for _ in range(3000)]


def test_candidates_scored_by_their_own_terms_equal_full_bm25(recombined: list[str]) -> None:
    """The reading by text (a gather of the asked terms' counts over the vocabulary) is BM25 over
    all texts, read at the rows, with a repeated term counted twice; the array of counts it uses
    is left zero for the next search."""
    index = LexicalIndex(recombined, "bigram")
    rng = np.random.default_rng(11)
    questions = ["北京商业航天2028目标是什么", "氢能 氢能 走廊", "光伏产业发展的情况"]
    questions += [s[:12] for s in rng.choice(recombined, size=20)]
    for question in questions:
        terms = index.term_ids(question)
        rows = np.sort(rng.choice(len(recombined), size=300, replace=False))
        np.testing.assert_allclose(
            index._scores_by_text(terms, rows), index.scores_of(terms)[rows], rtol=1e-5
        )
    assert not index._asked.counts.any()


@pytest.mark.parametrize("word", ["发展", "商业航天", "氢能走廊", "光", "不存在的词语"])
def test_containing_is_the_texts_holding_every_pair(recombined: list[str], word: str) -> None:
    index = LexicalIndex(recombined, "bigram")
    pairs = [word[i : i + 2] for i in range(len(word) - 1)] or [word]
    expected = [i for i, t in enumerate(recombined) if all(p in t for p in pairs)]
    assert index.containing(word).tolist() == expected
