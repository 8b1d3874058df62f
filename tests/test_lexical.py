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


@pytest.mark.parametrize("how", ["bigram", "jieba"])
def test_scores_of_every_text_are_bm25s_own_sum(recombined: list[str], how: str) -> None:
    """The postings summed by scipy's sparse kernel (LexicalIndex.scores_of) are the floats
    bm25s's get_scores gives, for questions of the texts' own words, a term asked twice, and
    terms no text holds beside ones many do."""
    index = LexicalIndex(recombined, how)  # type: ignore[arg-type]
    rng = np.random.default_rng(5)
    questions = [
        "北京商业航天2028目标是什么",
        "氢能 氢能 走廊 氢能",
        "的的的",
        "光伏产业发展的情况",
    ]
    questions += [s[:16] for s in rng.choice(recombined, size=30)]
    for question in questions:
        terms = index.term_ids(question)
        found = index.scores_of(terms)
        assert found.dtype == np.float32 and found.shape == (len(recombined),)
        if len(terms):
            np.testing.assert_array_equal(found, index._bm25.get_scores(terms.tolist()))
            assert found.any()
        else:
            assert not found.any()


def _questions(texts: list[str], rng: np.random.Generator, repeating: str) -> list[str]:
    """Two questions of the bulletin, one repeating a term, and 20 openings of the texts."""
    return [
        "北京商业航天2028目标是什么",
        repeating,
        "光伏产业发展的情况",
        *(t[:12] for t in rng.choice(texts, size=20)),
    ]


def test_candidates_scored_by_their_own_terms_equal_full_bm25(recombined: list[str]) -> None:
    """The reading by text (a gather of the asked terms' counts over the vocabulary) is BM25 over
    all texts, read at the rows, with a repeated term counted twice; the array of counts it uses
    is left zero for the next search."""
    index = LexicalIndex(recombined, "bigram")
    rng = np.random.default_rng(11)
    for question in _questions(recombined, rng, "氢能 氢能 走廊"):
        terms = index.term_ids(question)
        rows = np.sort(rng.choice(len(recombined), size=300, replace=False))
        np.testing.assert_allclose(
            index._scores_by_text(terms, rows), index.scores_of(terms)[rows], rtol=1e-5
        )
    assert not index._asked.counts.any()


def test_a_texts_score_is_one_float_by_either_reading_and_with_any_others(
    recombined: list[str],
) -> None:
    """The candidates are scored in two parts (rag.search.candidates): a text's score must not
    depend on the reading (postings or its own terms) nor on the texts scored with it. Compared
    with ==, a term asked three times among them."""
    index = LexicalIndex(recombined, "bigram")
    rng = np.random.default_rng(13)
    for question in _questions(recombined, rng, "氢能 氢能 氢能 走廊"):
        terms = index.term_ids(question)
        rows = np.sort(rng.choice(len(recombined), size=400, replace=False))
        by_postings = index._scores_by_postings(terms, rows)
        np.testing.assert_array_equal(index._scores_by_text(terms, rows), by_postings)
        part = np.sort(rng.choice(len(rows), size=150, replace=False))
        rest = np.setdiff1d(np.arange(len(rows)), part)
        np.testing.assert_array_equal(index.scores_at(terms, rows[part]), by_postings[part])
        np.testing.assert_array_equal(index.scores_at(terms, rows[rest]), by_postings[rest])
        assert by_postings.any()


@pytest.mark.parametrize("word", ["发展", "商业航天", "氢能走廊", "光", "不存在的词语"])
def test_containing_is_the_texts_holding_every_pair(recombined: list[str], word: str) -> None:
    index = LexicalIndex(recombined, "bigram")
    pairs = [word[i : i + 2] for i in range(len(word) - 1)] or [word]
    expected = [i for i, t in enumerate(recombined) if all(p in t for p in pairs)]
    assert index.containing(word).tolist() == expected


def _exact_top(index: LexicalIndex, terms: np.ndarray, n: int, admitted=None):
    index.approximate = False
    try:
        return index.top(terms, n, admitted)
    finally:
        index.approximate = True


def test_approximate_top_is_its_definition(recombined: list[str]) -> None:
    """Above RAG_APPROXIMATE_ABOVE the lexical top N is: the best POOL * N texts by the rarer
    terms' BM25 (held by at most COMMON_SHARE of the texts), scored by every term, the best N
    kept, best first, within the mask. Checked against that definition by brute force."""
    from rag.index.lexical import COMMON_SHARE, POOL

    index = LexicalIndex(recombined, "bigram")
    index.approximate = True
    indptr = index._bm25.scores["indptr"]
    admitted = np.random.default_rng(3).random(len(recombined)) < 0.5
    taken = 0
    for question in ["北京商业航天2028目标是什么", "光伏产业发展的情况", "氢能产业走廊建设"]:
        terms = index.term_ids(question)
        rare = terms[(indptr[terms + 1] - indptr[terms]) <= COMMON_SHARE * len(recombined)]
        full = index.scores_of(terms)
        for mask in (None, admitted):
            partial = index.scores_of(rare)
            if mask is not None:
                partial[~mask] = 0
            if 0 < len(rare) < len(terms) and np.count_nonzero(partial) >= 10:
                taken += 1
                order = np.lexsort((np.arange(len(partial)), -partial))
                pool = order[: min(POOL * 10, np.count_nonzero(partial))]
                pool = pool[np.lexsort((pool, -full[pool]))]
                wanted = pool[:10]
            else:
                wanted = _exact_top(index, terms, 10, mask)[0]
            ids, scores = index.top(terms, 10, mask)
            np.testing.assert_allclose(scores, full[ids], rtol=1e-5)
            np.testing.assert_allclose(scores, full[wanted], rtol=1e-5)
            assert (np.diff(scores) <= 1e-6).all()
            if mask is not None:
                assert mask[ids].all()
    assert taken >= 4  # the approximate path, not only the fallback, was checked


def test_approximate_top_misses_what_only_common_terms_find_and_falls_back_when_it_must() -> None:
    """A text holding only common characters, however often, is not found by the rarer terms:
    that is what the approximation gives up. A question of common characters only, or whose
    rarer terms are in fewer than N texts, is scored exactly."""
    texts = ["产业发展" * 20] + ["产业发展情况" + "一" * (i % 7) for i in range(500)]
    texts += ["光伏" + "二" * (i % 5) for i in range(90)] + ["其他内容" for _ in range(409)]
    index = LexicalIndex(texts, "bigram")
    index.approximate = True
    terms = index.term_ids("光伏产业发展")
    exact_ids, _ = _exact_top(index, terms, 2)
    assert 0 in exact_ids.tolist()  # the premise: the common characters' text is first
    ids, _ = index.top(terms, 2)
    assert 0 not in ids.tolist() and all(texts[i].startswith("光伏") for i in ids)
    # More asked for than the 90 texts holding 光伏: the exact sum decides.
    ids = index.top(terms, 100)[0]
    exact_ids = _exact_top(index, terms, 100)[0]
    assert ids.tolist() == exact_ids.tolist() and 0 in ids.tolist()
    # Only common characters asked: the exact sum.
    common = index.term_ids("产业发展")
    assert index.top(common, 3)[0].tolist() == _exact_top(index, common, 3)[0].tolist()
