"""Answer a question with ranked, cited passages of the index."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from rag.documents import Passage
from rag.index.backend import LocalBackend, Scope, SearchBackend
from rag.index.dense import top
from rag.index.lexical import Tokenizer, tokenize, word_terms
from rag.index.store import LoadedIndex
from rag.mode import Mode
from rag.model.embed import Embedder
from rag.script import ScriptReader, script_of
from rag.search.articles import ArticleTable
from rag.search.candidates import (
    Candidates,
    LexicalScores,
    best_per,
    joined,
    lexical_scores,
    min_max,
)
from rag.search.duplicates import fold
from rag.search.highlight import answering_span
from rag.search.question import QueryError, Question, parse
from rag.settings import Settings
from rag.verdict.answerable import Verdict, judge, nothing_admitted, nothing_to_search
from rag.verdict.support import held_together, places_not_named, words_apart, years_not_stated
from rag.verdict.topic import Glossary, words_not_found

# Threads for the legs, shared by every retriever of the process. The lexical leg needs no
# vector, so it runs while the question is encoded and then beside the dense leg, which the
# encoder and FAISS (or the remote store) leave the interpreter free for; it scores its own
# candidates for fusion there too (rag.search.candidates). Archive, served
# (bench/throughput.py, with rag.pipeline's switch interval): one client 25.4 -> 23.4 ms p50,
# 32 clients 46 -> 51 searches/s. 1M passages, one BLAS thread as served: p50 31 -> 22 ms with
# the dense leg beside the lexical one (bench/search_scale.py; with OpenBLAS's two threads
# spinning beside them, no gain). More than the cores: a search waits on its own legs only.
_LEGS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="search-leg")
FILTER_FIELDS = ("doc_id", "article", "region", "date_from", "date_to")
# The settings' declared defaults (not the environment's values).
_DEFAULTS: dict[str, Any] = {name: f.default for name, f in Settings.model_fields.items()}


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
        return self.admits_date(p.date)

    def admits_date(self, date: str) -> bool:
        # Dates compare as ISO prefixes, so a month ("2024-01") admits its days. An unknown date
        # never passes a date filter.
        if self.date_from is not None and (
            date == "unknown" or date[: len(self.date_from)] < self.date_from
        ):
            return False
        return not (
            self.date_to is not None
            and (date == "unknown" or date[: len(self.date_to)] > self.date_to)
        )


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float
    passage: Passage
    # The sentence(s) that best answer the question: [start, end) offsets into passage.text.
    highlights: tuple[tuple[int, int], ...] = ()
    # Near-duplicates of this passage elsewhere in the index, collapsed into this result.
    duplicates: tuple[Passage, ...] = ()


@dataclass(frozen=True)
class Answer:
    """The ranked passages and the verdict on whether they answer the question."""

    hits: tuple[Hit, ...]
    answerable: bool
    message: str | None
    # The cosine of the closest passage or sentence: what the verdict was judged on.
    best_similarity: float
    reason: str | None = None  # see rag.verdict.answerable.Verdict


# An index this large (in passages) uses nearly every everyday word somewhere, so a question
# word it never uses is evidence the question is not about the bulletins (rag.verdict.support).
LARGE_INDEX = 5000
# How far past the k-th result copies of a result are looked for and folded into it; a copy
# ranked lower than this is not listed in `duplicates`.
FOLD_WINDOW = 50


class Retriever:
    """The embedder, the loaded index and its lexical twin, held for the life of the process.

    A question walks one way: parsed once (rag.search.question), each leg's candidates
    (rag.index.backend), their sentences scored, fused, judged (rag.verdict.answerable,
    rag.verdict.support),
    copies folded, highlighted. Keyword defaults are the settings' declared defaults, so a
    retriever built without settings (tests, notebooks) ranks and judges as the service does.
    """

    def __init__(
        self,
        embedder: Embedder,
        index: LoadedIndex | SearchBackend,
        *,
        mode: Mode = _DEFAULTS["search_mode"],
        dense_weight: float = _DEFAULTS["dense_weight"],
        lexical_tokenizer: Tokenizer = _DEFAULTS["lexical_tokenizer"],
        preference: float = _DEFAULTS["place_time_preference"],
        answer_floors: tuple[float, float] = (
            _DEFAULTS["answer_floor_zh"],
            _DEFAULTS["answer_floor_en"],
        ),
        candidates: int = _DEFAULTS["candidates"],
        support_depth: int = _DEFAULTS["support_depth"],
        approximate_above: int = _DEFAULTS["approximate_above"],
        glossary: Glossary | None = None,
    ) -> None:
        if candidates < 1:
            raise ValueError(f"candidates must be at least 1, not {candidates}")
        self.embedder = embedder
        self.mode = mode
        self.dense_weight = dense_weight
        self.preference = preference
        self.floor_zh, self.floor_en = answer_floors
        self.candidates = candidates
        self.support_depth = support_depth
        # A built index on disk is searched here (FAISS + bm25s); any other backend (Milvus,
        # rag.index.milvus) comes ready-made.
        self.backend: SearchBackend = (
            LocalBackend(index, lexical_tokenizer, approximate_above=approximate_above)
            if isinstance(index, LoadedIndex)
            else index
        )
        passages = self.backend.passages
        texts = [p.text for p in passages]
        # CC-CEDICT for the off-topic test: read once (about a second), shared on reload.
        self.glossary = glossary or Glossary()
        import jieba

        jieba.initialize()  # its dictionary now (0.5 s), not on the first question
        # Questions are read in the bulletins' script: 重慶 finds 重庆.
        self.reader = ScriptReader(script_of(texts))
        self._doc_ids = {p.doc_id for p in passages}
        self.passage_texts = texts
        self.articles = ArticleTable(passages)

    @classmethod
    def from_settings(
        cls,
        embedder: Embedder,
        index: LoadedIndex | SearchBackend,
        settings: Settings,
        glossary: Glossary | None = None,
    ) -> Retriever:
        """A retriever with the search mode, weights and tokenizer the settings name."""
        return cls(
            embedder,
            index,
            mode=settings.search_mode,
            dense_weight=settings.dense_weight,
            lexical_tokenizer=settings.lexical_tokenizer,
            preference=settings.place_time_preference,
            answer_floors=(settings.answer_floor_zh, settings.answer_floor_en),
            candidates=settings.candidates,
            support_depth=settings.support_depth,
            approximate_above=settings.approximate_above,
            glossary=glossary,
        )

    def search(
        self, query: str, k: int = 5, filters: Filters | None = None, mode: Mode | None = None
    ) -> list[Hit]:
        """The `k` passages that best answer the question, best first."""
        return list(self.answer(query, k, filters, mode).hits)

    def parse(self, query: str) -> Question:
        """The question read once, in the bulletins' script (QueryError when unusable)."""
        return parse(query, reader=self.reader, render=self._rendered)

    def answer(
        self, query: str, k: int = 5, filters: Filters | None = None, mode: Mode | None = None
    ) -> Answer:
        """The ranked passages and whether they can answer the question at all."""
        question = self.parse(query)
        if filters and filters.doc_id is not None and filters.doc_id not in self._doc_ids:
            raise QueryError(f"unknown doc_id {filters.doc_id!r}")
        mode = mode or self.mode
        scope = None if filters is None else _scope(filters, self.articles.mask(filters))
        if scope is not None and scope.mask is not None and not scope.mask.any():
            nothing = nothing_admitted(question.text)
            return Answer((), False, nothing.message, 0.0, nothing.reason)
        if not question.has_terms:
            # Any passage would come back "close" to "？？？": better none, and say why.
            nothing = nothing_to_search(question.text)
            return Answer((), False, nothing.message, 0.0, nothing.reason)
        per_search = max(1, self.candidates // len(question.searches))
        # The lexical leg needs no vector: it runs while the question is encoded.
        lexical_leg = _LEGS.submit(self._lexical_leg, question, per_search, scope)
        vector = self.embedder.encode_queries([question.text])[0]
        found = self._candidates(question, vector, scope, per_search, lexical_leg)
        share = {"dense": 1.0, "lexical": 0.0}.get(mode, self.dense_weight)
        if mode == "dense":
            dense = min_max(np.maximum(found.passage_cos, found.sentence_cos))
        else:
            dense = (min_max(found.passage_cos) + min_max(found.sentence_cos)) / 2
        preferred = self.preference * self.articles.preferred(question, found.ids)
        scores = share * dense + (1 - share) * found.lexical + preferred
        best_similarity = float(np.maximum(found.passage_cos, found.sentence_cos).max())
        ranked = top(scores, min(len(scores), k + FOLD_WINDOW))
        passages = self.backend.passages
        hits = [
            Hit(
                rank=rank,
                score=float(scores[j]),
                passage=passages[found.ids[j]],
                highlights=self._best_sentence(found, int(j), mode),
                duplicates=tuple(passages[found.ids[c]] for c in copies),
            )
            for rank, (j, copies) in enumerate(
                fold(ranked, {j: self.passage_texts[found.ids[j]] for j in ranked}, k), start=1
            )
        ]
        verdict = self._verdict(question, hits, best_similarity)
        return Answer(
            tuple(hits), verdict.answerable, verdict.message, best_similarity, verdict.reason
        )

    def _lexical_leg(
        self, question: Question, per_search: int, scope: Scope | None
    ) -> tuple[list[np.ndarray], LexicalScores]:
        """The lexical leg: each search's best `per_search` passages, and the BM25 of them all
        and of their sentences for fusion, scored here while the dense leg runs (1M passages:
        about half the candidates' BM25 off the search's path, bench/README.md)."""
        tops = [self.backend.lexical_top(s, per_search, scope)[0] for s in question.searches]
        found = np.unique(np.concatenate(tops)) if tops else np.zeros(0, dtype=np.int64)
        return tops, lexical_scores(self.backend, question.searches, found)

    def _candidates(
        self,
        question: Question,
        vector: np.ndarray,
        scope: Scope | None,
        per_search: int,
        lexical_leg: Future[tuple[list[np.ndarray], LexicalScores]],
    ) -> Candidates:
        """The dense leg's best `candidates` passages with the lexical leg's (for English,
        those are shared between its searches, `per_search` each), scored on every measure
        fusion mixes."""
        backend = self.backend
        # The passages of articles about the province the question names compete too: in a
        # national daily the article about 宁夏 may rank below 200 others by both legs and still
        # be the answer. (Those about a year it names do not: the articles of 1996 then crowded
        # in passages that name 1996 without answering, and near misses were no longer told.)
        # Searched on a leg's thread beside the dense leg: at 1M passages a province's 50,000
        # cost as much as the whole leg.
        favoured = self.articles.about_places(question)
        within: Future[tuple[np.ndarray, np.ndarray]] | None = None
        if favoured is not None and self.preference > 0:
            mask = None if scope is None else scope.mask
            regions = tuple(sorted(self.articles.named_regions(question)))
            scoped = Scope(
                favoured if mask is None else favoured & mask, **_conditions(scope), regions=regions
            )
            within = _LEGS.submit(backend.dense_top, vector, per_search, scoped)
        found_by = [backend.dense_top(vector, self.candidates, scope)[0]]
        if within is not None:
            found_by.append(within.result()[0])
        tops, early = lexical_leg.result()
        ids = np.unique(np.concatenate(found_by + tops))
        # What the dense leg alone found is scored by BM25 now; the rest was on the leg's thread.
        late = ids[~np.isin(ids, early.ids, assume_unique=True)]
        bm25 = joined(early, lexical_scores(backend, question.searches, late))
        rows, offsets, lengths = backend.sentence_rows(ids)
        passage_cos = backend.dense_cosines(vector, ids)
        sentence_scores = backend.sentence_cosines(vector, rows)
        # A passage without sentences (a head alone) takes the lowest passage cosine here:
        # its sentences add nothing to it.
        sentence_cos = best_per(
            sentence_scores, offsets, lengths, fallback=np.full(len(ids), passage_cos.min())
        )
        # Each search (for English: the question's own words and numbers, then its words'
        # renderings) is scored over passages and over sentences, and the scales are averaged;
        # the highlight weighs each sentence by all of them.
        lexical = np.zeros(len(ids), dtype=np.float32)
        sentence_bm25 = np.zeros(len(rows), dtype=np.float32)
        for passage_bm25, found in zip(bm25.passages, bm25.sentences, strict=True):
            sentence_bm25 += found
            best = best_per(found, offsets, lengths, fallback=np.zeros(len(ids), np.float32))
            lexical += (min_max(passage_bm25) + min_max(best)) / (2 * len(question.searches))
        return Candidates(
            ids, passage_cos, sentence_cos, lexical, rows, offsets, lengths,
            sentence_scores, sentence_bm25,
        )  # fmt: skip

    def _verdict(self, question: Question, hits: list[Hit], best_similarity: float) -> Verdict:
        """Whether the hits answer the question (rag.verdict.answerable; the support tests read the
        best few, none when they are off)."""
        closest = [h.passage for h in hits[: self.support_depth]]
        leads = [self.articles.lead_of(p) for p in closest]
        named = set(question.provinces)
        content = [(w, list(parts)) for w, parts in question.content]
        return judge(
            question.text,
            best_similarity,
            unknown_places=self.articles.unknown_places(named),
            words_not_found=words_not_found(question.text, self._uses, self.glossary, content),
            words_apart=self._words_apart(question, hits),
            years_not_found=years_not_stated(question.text, closest, leads) if closest else (),
            places_not_found=places_not_named(named, closest) if closest else (),
            floor_zh=self.floor_zh,
            floor_en=self.floor_en,
        )

    def _rendered(self, query: str) -> str:
        """An English question's words as the Chinese words the bulletins use for them
        (rag.verdict.topic.Glossary.translate)."""
        return " ".join(self.glossary.translate(query, self._uses))

    def _words_apart(self, question: Question, hits: list[Hit]) -> list[str]:
        """A Chinese question's content words when no passage uses two of them together
        (rag.verdict.support.words_apart). Not for English: a word rendered alone, out of its
        phrase, misses the passage the phrase names (hydrogen corridor). The hits are read
        first: when one holds two of the words, as for most answerable questions, no postings
        are."""
        if not question.chinese:
            return []
        how = self.backend.tokenizer
        wanted = [
            [word_terms(self.reader(form), how) for form in parts] for _, parts in question.content
        ]
        if held_together(wanted, (set(tokenize(h.passage.text, how)) for h in hits)):
            return []

        def containing(form: str) -> np.ndarray:
            return self.backend.containing(self.reader(form))

        forms = [list(parts) for _, parts in question.content]
        large = len(self.backend.passages) >= LARGE_INDEX
        if not words_apart(forms, containing, large=large):
            return []
        return [w for w, _ in question.content]

    def _uses(self, word: str) -> bool:
        """Whether the bulletins use `word` (written in either script)."""
        return self.backend.knows(self.reader(word))

    def _best_sentence(self, found: Candidates, j: int, mode: Mode) -> tuple[tuple[int, int]]:
        """The candidate's answering sentence, weighed as the passages were
        (rag.search.highlight)."""
        rows = slice(int(found.offsets[j]), int(found.offsets[j] + found.lengths[j]))
        weight = {"dense": 1.0, "lexical": 0.0}.get(mode, self.dense_weight)
        span = answering_span(
            self.backend.passages[found.ids[j]].text,
            self.backend.sentence_spans(found.rows[rows]),
            found.sentence_scores[rows],
            found.sentence_bm25[rows],
            weight,
        )
        return (span,)


def _scope(filters: Filters, mask: np.ndarray) -> Scope:
    return Scope(mask, **{name: getattr(filters, name) for name in FILTER_FIELDS})


def _conditions(scope: Scope | None) -> dict[str, Any]:
    """The metadata conditions of `scope` (none when there is no scope), without its mask."""
    return {name: None if scope is None else getattr(scope, name) for name in FILTER_FIELDS}


def citation_line(p: Passage) -> str:
    """headline · section · ¶n, as a reader sees it."""
    parts = [p.headline or p.doc_id, p.section, f"¶{p.paragraph}"]
    return " · ".join(part for part in parts if part)
