"""The search backend seam: where passages, their vectors and their BM25 postings are kept, and
the questions search asks of them. `LocalBackend` is FAISS + bm25s in this process, over a built
index; a distributed backend (Milvus) goes behind the same protocol.

Search asks for each leg's top candidates with the filters applied inside the leg, then exact
scores of those candidates and of their sentences; nothing asks for every passage's score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from rag.documents import Passage
from rag.index.dense import DenseLeg, top
from rag.index.faults import BackendUnavailable
from rag.index.lexical import LEXICAL_DIR, LexicalIndex, Tokenizer, sentence_texts
from rag.index.store import LoadedIndex

__all__ = ["BackendUnavailable", "LocalBackend", "Scope", "SearchBackend", "rows_of"]


@dataclass(frozen=True)
class Scope:
    """The passages a leg may return, said twice: as a mask over the passage rows (what the
    local backend applies inside FAISS and BM25) and as the metadata conditions it was made
    from (what a remote backend turns into its own filter expression, so that filtering happens
    where the passages are, never on its answers). Dates compare as ISO prefixes and an unknown
    date passes no date condition (rag.search.retriever.Filters)."""

    mask: np.ndarray | None = None
    doc_id: str | None = None
    article: int | None = None
    region: str | None = None
    date_from: str | None = None
    date_to: str | None = None
    # Only articles about one of these regions (the provinces a question names).
    regions: tuple[str, ...] | None = None


class SearchBackend(Protocol):
    """What search needs of a store of passages (indices are rows of `passages`). Writes are
    the build's (rag.index.build, rag.index.milvus.build), not search's. A remote store raises
    BackendUnavailable when it cannot be reached."""

    @property
    def passages(self) -> Sequence[Passage]: ...

    @property
    def manifest(self) -> dict[str, Any]: ...

    def document(self, doc_id: str) -> dict[str, Any] | None: ...

    def dense_top(
        self, vector: np.ndarray, n: int, scope: Scope | None
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def lexical_top(
        self, search: str, n: int, scope: Scope | None
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def dense_cosines(self, vector: np.ndarray, ids: np.ndarray) -> np.ndarray: ...

    def lexical_scores(self, search: str, ids: np.ndarray) -> np.ndarray: ...

    def sentence_rows(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def sentence_spans(self, rows: np.ndarray) -> np.ndarray: ...

    def sentence_cosines(self, vector: np.ndarray, rows: np.ndarray) -> np.ndarray: ...

    def sentence_lexical_scores(self, search: str, rows: np.ndarray) -> np.ndarray: ...

    @property
    def tokenizer(self) -> Tokenizer:
        """What the texts were cut into search terms by: `containing` holds a passage when its
        text, so cut, holds every term of the word (rag.index.lexical.word_terms)."""
        ...

    def knows(self, word: str) -> bool: ...

    def containing(self, word: str) -> np.ndarray: ...


def rows_of(bounds: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sentence rows of the passages `ids` (passage i's are bounds[i]:bounds[i + 1]), run
    together, and where each passage's start (offsets) and how many it has (lengths)."""
    starts = bounds[ids]
    lengths = bounds[ids + 1] - starts
    offsets = np.cumsum(lengths) - lengths
    rows = np.arange(lengths.sum()) + np.repeat(starts - offsets, lengths)
    return rows, offsets, lengths


class LocalBackend:
    """A built index in memory: FAISS for the dense leg, bm25s postings for the lexical one.

    Writes keep the rows in place: a deleted or replaced passage is masked out of every leg
    (its row stays, so indices held elsewhere stay valid), and an upserted one is appended. The
    BM25 indexes are then rebuilt over the live texts, a cost that grows with the index (about
    20 s for the archive): `rag index` rebuilds a whole corpus faster than many small writes.
    """

    def __init__(
        self, index: LoadedIndex, tokenizer: Tokenizer, *, approximate_above: int | None = None
    ) -> None:
        self.index = index
        self.tokenizer = tokenizer
        # Above this many passages the lexical top N is found by the rarer terms only, as the
        # dense leg is approximate there (rag.index.lexical.LexicalIndex.top).
        self.approximate_above = approximate_above
        self._passages = list(index.passages)
        self.live = np.ones(len(self._passages), dtype=bool)
        self.dense = DenseLeg(index.vectors, index.faiss_index)
        saved = index.path / LEXICAL_DIR
        texts = [p.text for p in self._passages]
        self.lexical = LexicalIndex.saved_or_built(saved / "passages", texts, tokenizer)
        # Sentence-level BM25 as well: a long passage whose one sentence answers should not lose
        # to a short one that merely shares the question's words.
        self.sentence_lexical = LexicalIndex.saved_or_built(
            saved / "sentences", sentence_texts(texts, index.sentences), tokenizer
        )
        self._sentences = index.sentences
        self._sentence_vectors = index.sentence_vectors
        self._bounds()
        self._approximate()

    def _approximate(self) -> None:
        limit = self.approximate_above
        self.lexical.approximate = limit is not None and len(self._passages) > limit

    @property
    def passages(self) -> Sequence[Passage]:
        return self._passages

    @property
    def manifest(self) -> dict[str, Any]:
        return self.index.manifest

    def document(self, doc_id: str) -> dict[str, Any] | None:
        return self.index.documents.get(doc_id)

    def _bounds(self) -> None:
        # Sentences are stored grouped by passage: passage i's rows are bounds[i]:bounds[i + 1].
        self._sentence_bounds = np.searchsorted(
            self._sentences[:, 0], np.arange(len(self._passages) + 1), side="left"
        )

    def _admitted(self, scope: Scope | None) -> np.ndarray | None:
        mask = None if scope is None else scope.mask
        if self.live.all():
            return mask
        return self.live if mask is None else mask & self.live

    def dense_top(
        self, vector: np.ndarray, n: int, scope: Scope | None
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.dense.top(vector, n, self._admitted(scope))

    def lexical_top(
        self, search: str, n: int, scope: Scope | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The `n` best BM25 passages for `search` among the admitted; none sharing no term."""
        return self.lexical.top(self.lexical.term_ids(search), n, self._admitted(scope))

    def dense_cosines(self, vector: np.ndarray, ids: np.ndarray) -> np.ndarray:
        return self.dense.cosines(vector, ids)

    def lexical_scores(self, search: str, ids: np.ndarray) -> np.ndarray:
        return self.lexical.scores_at(self.lexical.term_ids(search), ids)

    def sentence_rows(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return rows_of(self._sentence_bounds, ids)

    def sentence_spans(self, rows: np.ndarray) -> np.ndarray:
        return self._sentences[rows, 1:]

    def sentence_cosines(self, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return self._sentence_vectors[rows] @ vector

    def sentence_lexical_scores(self, search: str, rows: np.ndarray) -> np.ndarray:
        # The sentences have a vocabulary of their own: the search's terms as its slots.
        return self.sentence_lexical.scores_at(self.sentence_lexical.term_ids(search), rows)

    def knows(self, word: str) -> bool:
        return self.lexical.knows(word)

    def containing(self, word: str) -> np.ndarray:
        found = self.lexical.containing(word)
        return found if self.live.all() else found[self.live[found]]

    def upsert(
        self,
        passages: Sequence[Passage],
        vectors: np.ndarray,
        sentences: Sequence[Sequence[tuple[int, int]]],
        sentence_vectors: Sequence[np.ndarray],
    ) -> None:
        """Add passages, replacing those of the same passage_id: `vectors` their unit vectors,
        `sentences[i]` passage i's sentence spans and `sentence_vectors[i]` their vectors."""
        if not (len(passages) == len(vectors) == len(sentences) == len(sentence_vectors)):
            raise ValueError("upsert needs one vector and one sentence list per passage")
        # The replaced rows are masked here; BM25 is rebuilt once, below, not also by delete.
        self._mask_out({p.passage_id for p in passages})
        first = len(self._passages)
        self._passages.extend(passages)
        self.live = np.concatenate([self.live, np.ones(len(passages), dtype=bool)])
        vectors = np.asarray(vectors, dtype=np.float32)
        self.dense.vectors = np.concatenate([self.dense.vectors, vectors])
        self.dense.index.add(vectors)
        rows = [(first + i, a, b) for i, spans in enumerate(sentences) for a, b in spans]
        added = np.array(rows, dtype=np.int64).reshape(-1, 3)
        self._sentences = np.concatenate([self._sentences, added])
        fresh = [np.asarray(v, dtype=np.float32).reshape(-1, vectors.shape[1]) for v in sentence_vectors]
        self._sentence_vectors = np.concatenate([self._sentence_vectors, *fresh])
        self._bounds()
        self._reindex_lexical()

    def delete(self, passage_ids: Sequence[str]) -> int:
        """Mask out the live passages of these ids; how many there were."""
        count = self._mask_out(set(passage_ids))
        if count:
            self._reindex_lexical()
        return count

    def _mask_out(self, wanted: set[str]) -> int:
        hit = np.array([p.passage_id in wanted for p in self._passages], dtype=bool) & self.live
        self.live &= ~hit
        return int(hit.sum())

    def _reindex_lexical(self) -> None:
        # A dead row keeps its place with no text, so it neither matches nor counts in BM25's
        # statistics.
        texts = [p.text if alive else "" for p, alive in zip(self._passages, self.live, strict=True)]
        self.lexical = LexicalIndex(texts, self.tokenizer)
        self.sentence_lexical = LexicalIndex(
            sentence_texts(texts, self._sentences), self.tokenizer
        )
        self._approximate()
