"""The lexical leg: BM25 (bm25s) over Chinese words or character n-grams.

bm25s's default splitter takes a whole run of Chinese characters as one token, so Chinese text
is cut here first: into words with jieba's search mode, or into characters and bigrams.

A document title in book-title marks (《…》) is one term, not its words: policy text cites its
plan's title in every announcement, and scoring those words made the paragraph announcing
《北京市加快商业航天创新发展行动方案（2024—2028年）》 outrank the one stating the 2028 goals
(eval: Hit@1 0.836 -> 0.846; with BM25 b=0.3 the README's example question is answered first).
"""

from __future__ import annotations

import hashlib
import re
import threading
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

# scipy's compiled sparse kernels, a private module: the calls that add a column of postings
# into the scores in place, pick texts' rows and sum them, without the copies (and float32
# sums) the public sparse classes make.
# tests/test_lexical.py holds what it gives to bm25s's own sum, so a change shows there.
from scipy.sparse._sparsetools import csc_matvec, csr_matvec, csr_row_index

from rag.index.dense import top
from rag.index.integrity import DamagedFile, check_array

Tokenizer = Literal["jieba", "bigram"]
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]+|[A-Za-z]+|\d+(?:\.\d+)?%?")
_STOP = set("的了和与及在是将为对等中也其以并")
_TITLE = re.compile(r"《([^《》]{1,80})》")
# BM25's b. The usual 0.75 let short announcement paragraphs outrank the long ones that hold the
# facts; 0.2-0.4 tie on the eval (Hit@1 0.864 vs 0.846 at 0.75; 0.0-0.1 drop to 0.83).
LENGTH_NORMALISATION = 0.3
# Bumped when tokenize() changes, so saved indexes are rebuilt rather than trusted.
TOKENIZER_VERSION = 2
# The approximate top N (LexicalIndex._top_from_rare): a term held by more than this share of
# the texts finds none, and this many times N texts found by the others are scored exactly.
# Chosen on 1M passages made from the archive (bench/search_scale.py, bench/README.md).
COMMON_SHARE = 0.1
POOL = 4
_ONE = np.ones(1, dtype=np.float32)  # each posting's weight counts once (scores_of)
# Where an index build keeps the BM25 indexes, so the service does not tokenize at start-up.
LEXICAL_DIR = "lexical"


def tokenize(text: str, how: Tokenizer) -> list[str]:
    """Search terms of `text`: Chinese words or n-grams, Latin words lower-cased, numbers kept.

    Width is folded first (NFKC), so 1997 finds １９９７ and 56.8% finds ５６．８％; only the
    terms are folded, the text shown and cited keeps what was printed."""
    text = unicodedata.normalize("NFKC", text)
    terms = ["《" + "".join(title.split()) + "》" for title in _TITLE.findall(text)]
    for run in _CJK_RUN.findall(_TITLE.sub(" ", text)):
        if not ("\u4e00" <= run[0] <= "\u9fff"):
            terms.append(run.lower())
        elif how == "jieba":
            import jieba

            terms.extend(w for w in jieba.lcut_for_search(run) if w not in _STOP)
        else:
            terms.extend(ch for ch in run if ch not in _STOP)
            terms.extend(run[i : i + 2] for i in range(len(run) - 1))
    return terms


def word_terms(word: str, how: Tokenizer) -> list[str]:
    """The search terms a text holds when it holds `word`, each once: for a word of two
    characters or more cut into bigrams, its character pairs, not its single characters (a
    text holding every pair of a word of three characters nearly always holds the word)."""
    terms = tokenize(word, how)
    if how == "bigram" and len(terms) > 1:
        terms = [t for t in terms if len(t) > 1] or terms
    return list(dict.fromkeys(terms))


class LexicalIndex:
    """BM25 scores of every passage for a question."""

    def __init__(
        self, texts: Sequence[str], how: Tokenizer = "jieba", *, _bm25: Any = None
    ) -> None:
        import bm25s

        self.how = how
        self._size = len(texts)
        if _bm25 is not None:
            self._bm25 = _bm25
        else:
            self._bm25 = bm25s.BM25(b=LENGTH_NORMALISATION)
            # Terms become vocabulary slots text by text, so the corpus is held as lists of
            # shared ints, not of strings: each bigram sliced out is a new string object, and
            # 400,000 sentences' worth held at once took gigabytes. An empty document would
            # break bm25s's vocabulary; a placeholder term keeps counts aligned.
            vocab: dict[str, int] = {}
            ids = [
                [vocab.setdefault(term, len(vocab)) for term in tokenize(t, how) or ["\u0000"]]
                for t in texts
            ]
            self._bm25.index(
                bm25s.tokenization.Tokenized(ids=ids, vocab=vocab), show_progress=False
            )
        self._by_text = _by_text(self._bm25.scores, self._size)
        # Per thread, how often the question asks each term, over the vocabulary (kept zero
        # between calls by _scores_by_text, which sets back what it wrote).
        self._asked = threading.local()
        # Whether top() may find its texts by the rarer terms only (set by the backend for an
        # index above RAG_APPROXIMATE_ABOVE texts, as the dense leg turns approximate there).
        self.approximate = False

    def save(self, folder: Path, texts: Sequence[str]) -> None:
        """Write the index to `folder`, marked with what it was built from."""
        self._bm25.save(str(folder), show_progress=False)
        (folder / "built_from").write_text(_fingerprint(texts, self.how))

    @classmethod
    def saved_or_built(cls, folder: Path, texts: Sequence[str], how: Tokenizer) -> LexicalIndex:
        """The index saved in `folder` when it was built from these texts the same way (start-up
        in a moment, where tokenizing a large corpus takes minutes); otherwise built here."""
        import bm25s

        marker = folder / "built_from"
        if marker.is_file() and marker.read_text() == _fingerprint(texts, how):
            try:
                saved = bm25s.BM25.load(str(folder), show_progress=False)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                # numpy's "Failed to read all data for array", a JSON error, a missing key.
                raise DamagedFile(folder, f"{type(exc).__name__}: {exc}") from exc
            _check_postings(saved, len(texts), folder)
            return cls(texts, how, _bm25=saved)
        return cls(texts, how)

    def knows(self, word: str) -> bool:
        """Whether the indexed texts use `word`: every search term of it occurs in them (for a
        word of three characters or more, in some text each, which is nearly always the word)."""
        terms = tokenize(word, self.how)
        return bool(terms) and all(t in self._bm25.vocab_dict for t in terms)

    def containing(self, word: str) -> np.ndarray:
        """The texts (by index) that hold every search term of `word`: for a word of two
        characters, exactly those holding it; for a longer one, those holding each of its
        character pairs (nearly always the word). Read from the BM25 postings, no text scan."""
        scores = self._bm25.scores
        indptr, indices = scores["indptr"], scores["indices"]
        slots = [self._bm25.vocab_dict.get(term) for term in word_terms(word, self.how)]
        if not slots or None in slots:
            return np.zeros(0, dtype=np.int64)
        # Shortest postings first, each kept document looked up in the next by binary search:
        # intersect1d sorts both lists, and a common pair's postings run to hundreds of
        # thousands at a million passages.
        slots.sort(key=lambda t: int(indptr[t + 1] - indptr[t]))
        found = indices[indptr[slots[0]] : indptr[slots[0] + 1]]
        for slot in slots[1:]:
            docs = indices[indptr[slot] : indptr[slot + 1]]
            if not len(found) or not len(docs):
                return np.zeros(0, dtype=np.int64)
            at = np.minimum(np.searchsorted(docs, found), len(docs) - 1)
            found = found[docs[at] == found]
        return np.array(found, dtype=np.int64)  # a copy, never a view of the postings

    def term_ids(self, question: str) -> np.ndarray:
        """The question's search terms that the texts use, as vocabulary slots (a term the
        question repeats counts again, as in bm25s)."""
        vocab = self._bm25.vocab_dict
        return np.array(
            [vocab[t] for t in tokenize(question, self.how) if t in vocab], dtype=np.int64
        )

    def scores(self, question: str) -> np.ndarray:
        """Each text's BM25 score for the question's terms (0 everywhere when none is known)."""
        return self.scores_of(self.term_ids(question))

    def scores_of(self, terms: np.ndarray) -> np.ndarray:
        """Each text's BM25 score for these term slots: their postings summed into one array,
        a term at a time in the order given, as bm25s's `get_scores` sums them (the same
        floats), but by scipy's compiled sparse product over each term's postings in place,
        where bm25s's `np.add.at` costs about five times as long a posting (1M passages: the
        exact top 200 12.6 -> 7.6 ms, bench/README.md)."""
        scores = np.zeros(self._size, dtype=np.float32)
        if not len(terms):
            return scores
        postings = self._bm25.scores
        indptr, indices, data = postings["indptr"], postings["indices"], postings["data"]
        for term in terms.tolist():
            start, end = int(indptr[term]), int(indptr[term + 1])
            # One column of a sparse matrix (the term's postings, a view) times one, added to
            # the scores: y += A @ x, the whole loop in C.
            csc_matvec(
                self._size, 1, np.array([0, end - start], dtype=indices.dtype),
                indices[start:end], data[start:end], _ONE, scores,
            )  # fmt: skip
        return scores

    def top(
        self, terms: np.ndarray, n: int, admitted: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The `n` texts with the best BM25 for these term slots among the `admitted` (a mask;
        all when None), best first, and their scores; only texts holding some term.

        Exact, every posting of every term summed (bm25s, about 5 ns a posting: 16.6 ms for a
        question's 4M postings at 1M passages), unless the index is `approximate`; then
        `_top_from_rare`. MaxScore, the rarest terms read whole and the common characters
        looked up only for the passages that could still reach the N, read 29% of the postings
        at 1M yet took 37 ms: the N-th score stays below what the common characters could add,
        so 100,000 passages had to be looked up in each of them."""
        if self.approximate:
            found = self._top_from_rare(terms, n, admitted)
            if found is not None:
                return found
        scores = self.scores_of(terms)
        if admitted is not None:
            scores[~admitted] = 0.0
        ids = top(scores, min(n, int(np.count_nonzero(scores))))
        return ids, scores[ids]

    def _top_from_rare(
        self, terms: np.ndarray, n: int, admitted: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The approximate top N (quit-and-continue): the texts are found by the terms held by
        at most COMMON_SHARE of them, the best POOL * n by those terms' BM25 scored exactly
        by every term, and the best n of them kept. A text that only the common terms would
        bring in (这, 业, 发 held by a third of the passages and more) is missed; those are
        most of the postings. None, for the exact sum, when every term is common or none is, or
        when fewer than n texts hold a rare one."""
        indptr = self._bm25.scores["indptr"]
        rare = terms[(indptr[terms + 1] - indptr[terms]) <= COMMON_SHARE * self._size]
        if not len(rare) or len(rare) == len(terms):
            return None
        partial = self.scores_of(rare)
        if admitted is not None:
            partial[~admitted] = 0.0
        pool = top(partial, POOL * n)
        # Counted among the best, not over every text: a pass over 1M scores cost 1.2 ms.
        pool = np.sort(pool[partial[pool] > 0])
        if len(pool) < n:  # too few texts hold a rare term: the common ones must find the rest
            return None
        # Read from the pool's own terms (about 2 ms at 1M passages): looking each text up in
        # the common terms' postings by binary search took 7.7 ms, their misses in the cache.
        scores = self.scores_at(terms, pool)
        best = top(scores, min(n, len(pool)))
        return pool[best], scores[best]

    def scores_at(self, terms: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The BM25 scores of the texts `rows` (sorted, distinct) only, read either from the
        terms' postings or from the rows' own terms (the index by text), whichever holds fewer
        entries: an archive question's terms have 70,000 postings over the sentences, about as
        many as its 900 candidate sentences hold terms; over 4M sentences the postings are 60
        times longer and the candidates' terms as many as before. Either way the same floats,
        each text's alone (both sum in float64)."""
        if not len(rows) or not len(terms):
            return np.zeros(len(rows), dtype=np.float32)
        indptr = self._bm25.scores["indptr"]
        postings = int((indptr[terms + 1] - indptr[terms]).sum())
        by_text, _, _ = self._by_text
        held = int((by_text[rows + 1] - by_text[rows]).sum())
        if postings <= held:
            return self._scores_by_postings(terms, rows)
        return self._scores_by_text(terms, rows)

    def _scores_by_postings(self, terms: np.ndarray, rows: np.ndarray) -> np.ndarray:
        docs, weights = self._postings(terms)
        at = np.minimum(np.searchsorted(rows, docs), len(rows) - 1)
        found = rows[at] == docs
        return np.bincount(at[found], weights[found], minlength=len(rows)).astype(np.float32)

    def _scores_by_text(self, terms: np.ndarray, rows: np.ndarray) -> np.ndarray:
        indptr, held, weights = self._by_text
        rows = rows.astype(indptr.dtype, copy=False)
        taken = np.zeros(len(rows) + 1, dtype=indptr.dtype)
        np.cumsum(indptr[rows + 1] - indptr[rows], out=taken[1:])
        # The rows' own entries gathered by scipy's compiled row selection, then their weights
        # times how often the question asks each term summed by its matrix-vector product:
        # 1M passages, 185 candidates' 740 sentences, 0.91 -> 0.25 ms against numpy's gathers,
        # the same floats.
        slots = np.empty(int(taken[-1]), dtype=indptr.dtype)
        chosen = np.empty(int(taken[-1]), dtype=np.float32)
        csr_row_index(len(rows), rows, indptr, held, weights, slots, chosen)
        # How often the question asks each term, over the vocabulary (a term the question
        # repeats counts again, as in bm25s), kept zero between calls.
        asked = getattr(self._asked, "counts", None)
        if asked is None:
            asked = self._asked.counts = np.zeros(len(self._bm25.scores["indptr"]) - 1)
        np.add.at(asked, terms, 1.0)
        found = np.zeros(len(rows), dtype=np.float64)
        try:
            # Summed in float64, as the postings are above: a text's few float32 weights then
            # add up exactly, so its score is one float whichever way it was read and whichever
            # texts were scored with it (rag.search.candidates scores the candidates in parts).
            csr_matvec(len(rows), len(asked), taken, slots, chosen.astype(np.float64), asked, found)
        finally:
            asked[terms] = 0.0
        return found.astype(np.float32)

    def _postings(self, terms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The postings of the term slots run together (a term given twice, twice): documents
        and BM25 weights, in one gather, no loop over the terms."""
        scores = self._bm25.scores
        indptr, indices, data = scores["indptr"], scores["indices"], scores["data"]
        starts, ends = indptr[terms].astype(np.int64), indptr[terms + 1].astype(np.int64)
        lengths = ends - starts
        entries = np.arange(int(lengths.sum())) + np.repeat(
            starts - (np.cumsum(lengths) - lengths), lengths
        )
        return indices[entries].astype(np.int64), data[entries].astype(np.float64)


def _by_text(scores: dict[str, Any], size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """bm25s's postings (by term) turned around (by text): where each text's entries start, the
    term slot of each, and its BM25 weight. Made at load: 0.1 s for the archive's sentences."""
    import scipy.sparse

    by_term = scipy.sparse.csc_matrix(
        (scores["data"], scores["indices"], scores["indptr"]),
        shape=(size, len(scores["indptr"]) - 1),
    )
    by_text = by_term.tocsr()
    # As narrow as bm25s's own arrays (20 MB for the archive's sentences, not 40); where each
    # row starts and each entry's slot of one integer type, as scipy's row selection needs.
    kind = np.int32 if by_text.nnz < np.iinfo(np.int32).max else np.int64
    return (
        by_text.indptr.astype(kind),
        by_text.indices.astype(kind),
        by_text.data.astype(np.float32),
    )


def _check_postings(bm25: Any, documents: int, folder: Path) -> None:
    """Refuse saved postings that do not fit `documents` texts and their own vocabulary: a
    posting outside them would fail a search, or score a text that does not hold the term."""
    scores = bm25.scores
    indptr, indices, data = scores["indptr"], scores["indices"], scores["data"]
    # One offset a term and one at the end, less one: bm25s's vocabulary ends with "", a term
    # without postings that no search asks for.
    check_array(indptr, folder / "indptr.csc.index.npy", indptr.dtype, (len(bm25.vocab_dict),))
    check_array(indices, folder / "indices.csc.index.npy", indices.dtype, (int(indptr[-1]),))
    check_array(data, folder / "data.csc.index.npy", np.float32, (len(indices),))
    if indptr.dtype.kind not in "iu" or indptr[0] != 0 or (np.diff(indptr) < 0).any():
        raise DamagedFile(folder / "indptr.csc.index.npy", "its offsets are not in order")
    if indices.dtype.kind not in "iu" or (
        len(indices) and (indices.min() < 0 or indices.max() >= documents)
    ):
        raise DamagedFile(folder / "indices.csc.index.npy", f"it names texts beyond {documents}")
    if scores.get("num_docs") != documents:
        raise DamagedFile(folder / "params.index.json", f"it counts {scores.get('num_docs')} texts")
    if not np.isfinite(data).all():
        raise DamagedFile(folder / "data.csc.index.npy", "it holds values that are not finite")


def sentence_texts(texts: Sequence[str], sentences: np.ndarray) -> list[str]:
    """The sentences' own text, from rows of (passage index, start, end)."""
    return [texts[i][a:b] for i, a, b in sentences]


def save_lexical(folder: Path, texts: Sequence[str], sentences: np.ndarray, how: Tokenizer) -> None:
    """Build and save the passage and sentence BM25 indexes a retriever would otherwise build."""
    for name, corpus in (
        ("passages", list(texts)),
        ("sentences", sentence_texts(texts, sentences)),
    ):
        (folder / name).mkdir(parents=True)
        LexicalIndex(corpus, how).save(folder / name, corpus)


def _fingerprint(texts: Sequence[str], how: Tokenizer) -> str:
    """What a saved index was built from: the texts, the tokenizer, the BM25 parameters."""
    digest = hashlib.sha256(
        f"{how}\n{LENGTH_NORMALISATION}\n{TOKENIZER_VERSION}\n{len(texts)}\n".encode()
    )
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass") + b"\x00")
    return digest.hexdigest()
