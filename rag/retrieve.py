"""Answer a question with ranked, cited passages of the index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from rag.documents import Passage
from rag.embed import Embedder
from rag.index import LoadedIndex
from rag.lexical import LexicalIndex, Tokenizer
from rag.places import provinces_named, years_named
from rag.settings import Settings

FILTER_FIELDS = ("doc_id", "article", "region", "date_from", "date_to")


class QueryError(ValueError):
    """A question or filter the retriever cannot use; the message says what was wrong."""


@dataclass(frozen=True)
class Filters:
    """Restrict results by document, article number, region or date (ISO, inclusive)."""

    doc_id: str | None = None
    article: int | None = None
    region: str | None = None
    date_from: str | None = None
    date_to: str | None = None

    def admits(self, p: Passage) -> bool:
        if self.doc_id is not None and p.doc_id != self.doc_id:
            return False
        if self.article is not None and p.article != self.article:
            return False
        if self.region is not None and p.region != self.region:
            return False
        # Dates compare as ISO prefixes, so a month ("2024-01") admits its days. An unknown date
        # never passes a date filter.
        if self.date_from is not None and (
            p.date == "unknown" or p.date[: len(self.date_from)] < self.date_from
        ):
            return False
        return not (
            self.date_to is not None
            and (p.date == "unknown" or p.date[: len(self.date_to)] > self.date_to)
        )


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float
    passage: Passage
    # The sentence(s) that best answer the question: [start, end) offsets into passage.text.
    highlights: tuple[tuple[int, int], ...] = ()


Mode = Literal["dense", "lexical", "hybrid"]
MODES: tuple[Mode, ...] = ("dense", "lexical", "hybrid")
# How many dense candidates an approximate (HNSW) index returns for fusion.
APPROX_CANDIDATES = 200


def min_max(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Scale the admitted scores to [0, 1] so the two legs can be mixed."""
    out = np.zeros_like(scores)
    if not mask.any():
        return out
    lo, hi = scores[mask].min(), scores[mask].max()
    if hi > lo:
        out[mask] = (scores[mask] - lo) / (hi - lo)
    return out


class Retriever:
    """The embedder, the loaded index and its lexical twin, held for the life of the process."""

    def __init__(
        self,
        embedder: Embedder,
        index: LoadedIndex,
        *,
        mode: Mode = "hybrid",
        dense_weight: float = 0.5,
        lexical_tokenizer: Tokenizer = "bigram",
        preference: float = 0.2,
    ) -> None:
        self.embedder = embedder
        self.index = index
        self.mode = mode
        self.dense_weight = dense_weight
        self.preference = preference
        passages = index.passages
        texts = [p.text for p in passages]
        self.lexical = LexicalIndex(texts, lexical_tokenizer)
        # Sentence-level BM25 as well: a long passage whose one sentence answers should not lose
        # to a short one that merely shares the question's words.
        self.sentence_lexical = LexicalIndex(
            [texts[i][a:b] for i, a, b in index.sentences], lexical_tokenizer
        )
        self._doc_ids = {p.doc_id for p in passages}
        self._regions = np.array([p.region for p in passages])
        self._years = _article_years(passages)

    @classmethod
    def from_settings(cls, embedder: Embedder, index: LoadedIndex, settings: Settings) -> Retriever:
        """A retriever with the search mode, weights and tokenizer the settings name."""
        return cls(
            embedder,
            index,
            mode=settings.search_mode,
            dense_weight=settings.dense_weight,
            lexical_tokenizer=settings.lexical_tokenizer,
            preference=settings.place_time_preference,
        )

    def search(
        self, query: str, k: int = 5, filters: Filters | None = None, mode: Mode | None = None
    ) -> list[Hit]:
        """The `k` passages that best answer the question, best first."""
        query = query.strip()
        if not query:
            raise QueryError("the question is empty")
        if filters and filters.doc_id is not None and filters.doc_id not in self._doc_ids:
            raise QueryError(f"unknown doc_id {filters.doc_id!r}")
        mode = mode or self.mode
        passages = self.index.passages
        mask = np.array([filters is None or filters.admits(p) for p in passages], dtype=bool)
        if not mask.any():
            return []
        vector = self.embedder.encode_queries([query])
        # Sentence scores are needed in every mode: they pick the highlighted sentence.
        sentence_scores = self.index.sentence_vectors @ vector[0]
        scores = np.zeros(len(passages), dtype=np.float32)
        if mode != "lexical":
            passage_cos, sentence_cos = self._dense_scores(vector, sentence_scores)
            if mode == "dense":
                dense = min_max(np.maximum(passage_cos, sentence_cos), mask)
            else:
                dense = (min_max(passage_cos, mask) + min_max(sentence_cos, mask)) / 2
            scores += (1.0 if mode == "dense" else self.dense_weight) * dense
        if mode != "dense":
            lexical = (
                min_max(self.lexical.scores(query), mask)
                + min_max(self._per_passage(self.sentence_lexical.scores(query), 0.0), mask)
            ) / 2
            scores += (1.0 if mode == "lexical" else 1 - self.dense_weight) * lexical
        scores += self.preference * self._preferred(query)
        scores[~mask] = -np.inf
        order = np.argsort(-scores, kind="stable")[: min(k, int(mask.sum()))]
        return [
            Hit(
                rank=r + 1,
                score=float(scores[i]),
                passage=passages[i],
                highlights=self._best_sentence(int(i), sentence_scores),
            )
            for r, i in enumerate(order)
        ]

    def _preferred(self, query: str) -> np.ndarray:
        """1 for passages of an article about a place the question names, +1 for a year it names.

        Read off the index's metadata (article region, the years its headline, lead and date
        name), so a new bulletin about another province or plan period needs no code change. A
        year every article shares says nothing and adds nothing.
        """
        preferred = np.zeros(len(self.index.passages), dtype=np.float32)
        places = provinces_named(query) & set(self._regions.tolist())
        if places:
            preferred += np.isin(self._regions, sorted(places))
        years = years_named(query)
        if years:
            about = np.array([bool(years & ys) for ys in self._years], dtype=bool)
            if not about.all():
                preferred += about
        return preferred

    def _best_sentence(self, passage: int, sentence_scores: np.ndarray) -> tuple[tuple[int, int]]:
        rows = np.flatnonzero(self.index.sentences[:, 0] == passage)
        if not len(rows):
            return ((0, len(self.index.passages[passage].text)),)
        best = rows[np.argmax(sentence_scores[rows])]
        _, start, end = self.index.sentences[best]
        return ((int(start), int(end)),)

    def _per_passage(self, sentence_scores: np.ndarray, floor: float) -> np.ndarray:
        """Each passage's best sentence score."""
        best = np.full(len(self.index.passages), floor, dtype=np.float32)
        np.maximum.at(best, self.index.sentences[:, 0], sentence_scores)
        return best

    def _dense_scores(
        self, vector: np.ndarray, sentence_scores: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per passage, its own cosine and its best sentence's cosine."""
        n = len(self.index.passages)
        exact = self.index.manifest.get("index_kind", "flat") == "flat"
        found, ids = self.index.faiss_index.search(
            vector, n if exact else min(n, APPROX_CANDIDATES)
        )
        # Passages an approximate index did not return score as its worst returned one.
        floor = float(found[0][found[0] > -np.inf].min(initial=0.0))
        scores = np.full(n, floor, dtype=np.float32)
        valid = ids[0] >= 0
        scores[ids[0][valid]] = found[0][valid]
        return scores, self._per_passage(sentence_scores, floor)


def _article_years(passages: Sequence[Passage]) -> list[frozenset[int]]:
    """Per passage, the years its article is about: its date, headline and lead paragraph."""
    years: dict[tuple[str, int], set[int]] = {}
    lead: dict[tuple[str, int], int] = {}
    for p in passages:
        key = (p.doc_id, p.article)
        found = years.setdefault(key, set())
        found |= years_named(p.headline)
        if p.date[:4].isdigit():
            found.add(int(p.date[:4]))
        lead[key] = min(lead.get(key, p.paragraph), p.paragraph)
    for p in passages:
        key = (p.doc_id, p.article)
        if p.paragraph == lead[key]:
            years[key] |= years_named(p.text)
    return [frozenset(years[(p.doc_id, p.article)]) for p in passages]


def hit_json(hit: Hit) -> dict[str, Any]:
    """One result in the shape the CLI's --json and the HTTP API share."""
    p = hit.passage
    return {
        "rank": hit.rank,
        "score": round(hit.score, 4),
        "text": p.text,
        "highlights": [{"start": a, "end": b} for a, b in hit.highlights],
        "citation": {
            "doc_id": p.doc_id,
            "source": p.source,
            "headline": p.headline,
            "section": p.section,
            "paragraph": p.paragraph,
            "spans": [{"start": s.start, "end": s.end} for s in p.spans],
        },
    }


def citation_line(p: Passage) -> str:
    """headline · section · ¶n, as a reader sees it."""
    parts = [p.headline or p.doc_id, p.section, f"¶{p.paragraph}"]
    return " · ".join(part for part in parts if part)
