"""Answer a question with ranked, cited passages of the index."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

import numpy as np

from rag.answerable import has_terms, is_chinese, judge, nothing_admitted, nothing_to_search
from rag.articles import ArticleTable
from rag.documents import Passage
from rag.duplicates import fold
from rag.embed import Embedder
from rag.highlight import answering_span
from rag.index import LoadedIndex
from rag.lexical import LEXICAL_DIR, LexicalIndex, Tokenizer, sentence_texts
from rag.mode import Mode
from rag.places import provinces_named
from rag.script import ScriptReader, script_of
from rag.settings import Settings
from rag.support import places_not_named, words_apart, years_not_stated
from rag.topic import Glossary, chinese_words, words_not_found

FILTER_FIELDS = ("doc_id", "article", "region", "date_from", "date_to")
# The settings' declared defaults (not the environment's values).
_DEFAULTS: dict[str, Any] = {name: f.default for name, f in Settings.model_fields.items()}


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
    reason: str | None = None  # see rag.answerable.Verdict


# How many dense candidates an approximate (HNSW) index returns for fusion.
APPROX_CANDIDATES = 200
# An index this large (in passages) uses nearly every everyday word somewhere, so a question
# word it never uses is evidence the question is not about the bulletins (rag.support).
LARGE_INDEX = 5000
# How far past the k-th result copies of a result are looked for and folded into it; a copy
# ranked lower than this is not listed in `duplicates`.
FOLD_WINDOW = 50


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
    """The embedder, the loaded index and its lexical twin, held for the life of the process.

    Keyword defaults are the settings' declared defaults, so a retriever built without settings
    (tests, notebooks) ranks and judges as the service does.
    """

    def __init__(
        self,
        embedder: Embedder,
        index: LoadedIndex,
        *,
        mode: Mode = _DEFAULTS["search_mode"],
        dense_weight: float = _DEFAULTS["dense_weight"],
        lexical_tokenizer: Tokenizer = _DEFAULTS["lexical_tokenizer"],
        preference: float = _DEFAULTS["place_time_preference"],
        answer_floors: tuple[float, float] = (
            _DEFAULTS["answer_floor_zh"],
            _DEFAULTS["answer_floor_en"],
        ),
        sentence_candidates: int = _DEFAULTS["sentence_candidates"],
        support_depth: int = _DEFAULTS["support_depth"],
        glossary: Glossary | None = None,
    ) -> None:
        if sentence_candidates < 1:
            raise ValueError(f"sentence_candidates must be at least 1, not {sentence_candidates}")
        self.embedder = embedder
        self.index = index
        self.mode = mode
        self.dense_weight = dense_weight
        self.preference = preference
        self.floor_zh, self.floor_en = answer_floors
        self.sentence_candidates = sentence_candidates
        self.support_depth = support_depth
        # A fixed sample of passages whose sentences are always scored on a large index: their
        # lowest best-sentence cosine estimates everyone's, the bottom of that leg's min-max.
        n = len(index.passages)
        self._sampled_passages = np.sort(
            np.random.default_rng(0).choice(n, size=min(n, sentence_candidates), replace=False)
        )
        passages = index.passages
        texts = [p.text for p in passages]
        saved = index.path / LEXICAL_DIR
        self.lexical = LexicalIndex.saved_or_built(saved / "passages", texts, lexical_tokenizer)
        # Sentence-level BM25 as well: a long passage whose one sentence answers should not lose
        # to a short one that merely shares the question's words.
        self.sentence_lexical = LexicalIndex.saved_or_built(
            saved / "sentences", sentence_texts(texts, index.sentences), lexical_tokenizer
        )
        # CC-CEDICT for the off-topic test: read once (about a second), shared on reload.
        self.glossary = glossary or Glossary()
        import jieba

        jieba.initialize()  # its dictionary now (0.5 s), not on the first question
        # Questions are read in the bulletins' script: 重慶 finds 重庆.
        self.reader = ScriptReader(script_of(texts))
        self._doc_ids = {p.doc_id for p in passages}
        self.passage_texts = texts
        self.articles = ArticleTable(passages)
        # Sentences are stored grouped by passage: passage i's rows are bounds[i]:bounds[i + 1].
        self._sentence_bounds = np.searchsorted(
            index.sentences[:, 0], np.arange(len(passages) + 1), side="left"
        )

    @classmethod
    def from_settings(
        cls,
        embedder: Embedder,
        index: LoadedIndex,
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
            sentence_candidates=settings.sentence_candidates,
            support_depth=settings.support_depth,
            glossary=glossary,
        )

    def search(
        self, query: str, k: int = 5, filters: Filters | None = None, mode: Mode | None = None
    ) -> list[Hit]:
        """The `k` passages that best answer the question, best first."""
        return list(self.answer(query, k, filters, mode).hits)

    def answer(
        self, query: str, k: int = 5, filters: Filters | None = None, mode: Mode | None = None
    ) -> Answer:
        """The ranked passages and whether they can answer the question at all."""
        if not query.strip():
            raise QueryError("the question is empty")
        # Zero-width and other format characters split words for BM25 and for jieba (重\u200b庆).
        query = "".join(c for c in query if unicodedata.category(c) != "Cf").strip()
        if not query:
            raise QueryError("the question has only invisible characters (format controls)")
        try:
            query.encode("utf-8")
        except UnicodeEncodeError as exc:
            # A lone surrogate: JSON can carry "\ud800", and a command line undecodable bytes.
            raise QueryError(f"the question is not valid Unicode at character {exc.start}") from exc
        query = self.reader(query)
        if filters and filters.doc_id is not None and filters.doc_id not in self._doc_ids:
            raise QueryError(f"unknown doc_id {filters.doc_id!r}")
        mode = mode or self.mode
        passages = self.index.passages
        if filters is None:
            mask = np.ones(len(passages), dtype=bool)
        else:
            mask = self.articles.mask(filters.admits)
        if not mask.any():
            nothing = nothing_admitted(query)
            return Answer((), False, nothing.message, 0.0, nothing.reason)
        if not has_terms(query):
            # Any passage would come back "close" to "？？？": better none, and say why.
            nothing = nothing_to_search(query)
            return Answer((), False, nothing.message, 0.0, nothing.reason)
        vector = self.embedder.encode_queries([query])
        passage_cos, floor = self._passage_cosines(vector)
        # An English question is searched by words in the bulletins' language: its words'
        # CC-CEDICT renderings that the bulletins use (digits alone would otherwise decide).
        searches = [query]
        if not is_chinese(query):
            searches += [t for t in [self._rendered(query)] if t]
        share = {"dense": 1.0, "lexical": 0.0}.get(mode, self.dense_weight)
        lexical = np.zeros(len(passages), dtype=np.float32)
        # Each search (for English: the question's own words and numbers, then its words'
        # renderings) is scored over passages and over sentences, and the scales are averaged;
        # the highlight weighs each sentence by all of them.
        sentence_bm25 = np.zeros(len(self.index.sentences), dtype=np.float32)
        for terms in searches:
            passage_bm25 = self.lexical.scores(terms)
            found = self.sentence_lexical.scores(terms)
            sentence_bm25 = sentence_bm25 + found
            if mode != "dense":
                lexical += (
                    min_max(passage_bm25, mask) + min_max(self._per_passage(found, 0.0), mask)
                ) / (2 * len(searches))
        # Named once: the preference and the verdict both need it, and it runs jieba.
        named = provinces_named(query)
        preferred = self.preference * self.articles.preferred(query, named)
        # Sentence cosines are needed in every mode: they pick the highlighted sentence and tell
        # whether anything is close enough to answer. Only the passages that rank best without
        # them have theirs computed (all of them, unless the index is large).
        provisional = share * min_max(passage_cos, mask) + (1 - share) * lexical + preferred
        provisional[~mask] = -np.inf
        sentence_scores = self._sentence_cosines(vector, provisional, mask, floor)
        sentence_cos = self._per_passage(sentence_scores, floor)
        if mode == "dense":
            dense = min_max(np.maximum(passage_cos, sentence_cos), mask)
        else:
            dense = (min_max(passage_cos, mask) + min_max(sentence_cos, mask)) / 2
        scores = share * dense + (1 - share) * lexical + preferred
        scores[~mask] = -np.inf
        best_similarity = float(np.maximum(passage_cos, sentence_cos)[mask].max())
        candidates = _top(scores, min(int(mask.sum()), k + FOLD_WINDOW))
        hits = [
            Hit(
                rank=rank,
                score=float(scores[i]),
                passage=passages[i],
                highlights=self._best_sentence(int(i), sentence_scores, sentence_bm25, mode),
                duplicates=tuple(passages[c] for c in copies),
            )
            for rank, (i, copies) in enumerate(fold(candidates, self.passage_texts, k), start=1)
        ]
        # The passages the support tests read: the best few (none when the tests are off).
        closest = [h.passage for h in hits[: self.support_depth]]
        leads = [self.articles.lead_of(p) for p in closest]
        verdict = judge(
            query,
            best_similarity,
            unknown_places=self.articles.unknown_places(named),
            words_not_found=words_not_found(query, self._uses, self.glossary),
            words_apart=self._words_apart(query),
            years_not_found=years_not_stated(query, closest, leads) if closest else (),
            places_not_found=places_not_named(named, closest) if closest else (),
            floor_zh=self.floor_zh,
            floor_en=self.floor_en,
        )
        return Answer(
            tuple(hits), verdict.answerable, verdict.message, best_similarity, verdict.reason
        )

    def _rendered(self, query: str) -> str:
        """An English question's words as the Chinese words the bulletins use for them
        (rag.topic.Glossary.translate)."""
        return " ".join(self.glossary.translate(query, self._uses))

    def _words_apart(self, query: str) -> list[str]:
        """A Chinese question's content words when no passage uses two of them together
        (rag.support.words_apart). Not for English: a word rendered alone, out of its phrase,
        misses the passage the phrase names (hydrogen corridor)."""
        folded = unicodedata.normalize("NFKC", query)
        if not is_chinese(folded):
            return []
        chinese = chinese_words(folded)

        def containing(form: str) -> np.ndarray:
            return self.lexical.containing(self.reader(form))

        forms = [parts for _, parts in chinese]
        large = len(self.index.passages) >= LARGE_INDEX
        return [w for w, _ in chinese] if words_apart(forms, containing, large=large) else []

    def _uses(self, word: str) -> bool:
        """Whether the bulletins use `word` (written in either script)."""
        return self.lexical.knows(self.reader(word))

    def _best_sentence(
        self, passage: int, cosines: np.ndarray, bm25: np.ndarray, mode: Mode
    ) -> tuple[tuple[int, int]]:
        """The passage's answering sentence, weighed as the passages were (rag.highlight)."""
        rows = slice(self._sentence_bounds[passage], self._sentence_bounds[passage + 1])
        weight = {"dense": 1.0, "lexical": 0.0}.get(mode, self.dense_weight)
        span = answering_span(
            self.index.passages[passage].text,
            self.index.sentences[rows, 1:],
            cosines[rows],
            bm25[rows],
            weight,
        )
        return (span,)

    def _per_passage(self, sentence_scores: np.ndarray, floor: float) -> np.ndarray:
        """Each passage's best sentence score (`floor` for a passage without sentences)."""
        bounds = self._sentence_bounds
        has = bounds[1:] > bounds[:-1]
        best = np.full(len(self.index.passages), floor, dtype=np.float32)
        if has.any():
            best[has] = np.maximum.reduceat(sentence_scores, bounds[:-1][has])
        return best

    def _passage_cosines(self, vector: np.ndarray) -> tuple[np.ndarray, float]:
        """Every passage's cosine, and the score a passage without sentences takes for them."""
        n = len(self.index.passages)
        if self.index.manifest.get("index_kind", "flat") == "flat":
            # Fusion needs every passage's score: a matrix-vector product gives them, where
            # asking FAISS for all n neighbours would also sort all n (3x slower at 100k).
            scores = self.index.vectors @ vector[0]
            return scores, float(scores.min())
        found, ids = self.index.faiss_index.search(vector, min(n, APPROX_CANDIDATES))
        # Passages the approximate index did not return score as its worst returned one.
        valid = ids[0] >= 0
        floor = float(found[0][valid].min()) if valid.any() else 0.0
        scores = np.full(n, floor, dtype=np.float32)
        scores[ids[0][valid]] = found[0][valid]
        return scores, floor

    def _sentence_cosines(
        self, vector: np.ndarray, provisional: np.ndarray, mask: np.ndarray, fallback: float
    ) -> np.ndarray:
        """Every sentence's cosine, computed for the sentences of the `sentence_candidates` best
        passages by `provisional` and of a fixed sample of passages (every sentence while the
        index has no more passages). The others take the lowest best-sentence cosine of the
        admitted passages computed (`fallback` when none has a sentence): never a passage's
        best, and close to the bottom of the leg's scale had all been computed."""
        if len(self.index.passages) <= self.sentence_candidates:
            return self.index.sentence_vectors @ vector[0]
        best = _top(provisional, min(int(mask.sum()), self.sentence_candidates))
        chosen = np.union1d(best, self._sampled_passages)
        starts = self._sentence_bounds[chosen]
        lengths = self._sentence_bounds[chosen + 1] - starts
        # The rows of each chosen passage's sentences, run together.
        offsets = np.cumsum(lengths) - lengths
        rows = np.arange(lengths.sum()) + np.repeat(starts - offsets, lengths)
        computed = self.index.sentence_vectors[rows] @ vector[0]
        # Each chosen passage's best; empty ones have no rows, so the rest partition `rows`.
        nonempty = lengths > 0
        admitted = mask[chosen][nonempty]
        lowest = fallback
        if admitted.any():
            lowest = float(np.maximum.reduceat(computed, offsets[nonempty])[admitted].min())
        scores = np.full(len(self.index.sentences), lowest, dtype=np.float32)
        scores[rows] = computed
        return scores


def _top(scores: np.ndarray, m: int) -> np.ndarray:
    """Indices of the `m` highest scores, best first (ties in index order)."""
    if m <= 0:
        return np.zeros(0, dtype=np.int64)
    if m < len(scores):
        cut = scores[np.argpartition(-scores, m - 1)[m - 1]]
        # Ties at the cut go to the lower index, as a stable sort would have it.
        above = np.flatnonzero(scores > cut)
        chosen = np.concatenate([above, np.flatnonzero(scores == cut)[: m - len(above)]])
        return chosen[np.lexsort((chosen, -scores[chosen]))]
    return np.argsort(-scores, kind="stable")


def citation_line(p: Passage) -> str:
    """headline · section · ¶n, as a reader sees it."""
    parts = [p.headline or p.doc_id, p.section, f"¶{p.paragraph}"]
    return " · ".join(part for part in parts if part)
