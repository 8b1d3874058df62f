"""Search an index kept in Milvus, behind the same seam as the local one (rag.index.backend).

Milvus does what grows with the archive: each leg's top candidates, found with the filters as
Milvus expressions (never by filtering its answers here), the dense leg by its vector index,
the lexical leg by an inner product over our own BM25 weights (rag.index.sparse); the vectors
and weights of passages and sentences stay in Milvus and only the candidates' are fetched. This
process keeps a catalog of the passages (provenance and text, no vectors) and of the sentence
spans, read from Milvus at open, so that results, highlights and the verdict read as they do
for a local index. The candidates' exact scores are then worked out here, as locally: fusion
never reads a BM25 value computed with Milvus Lite's per-segment statistics.

Every call to Milvus that fails raises BackendUnavailable (the service answers 503).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np

from rag.documents import Passage, Span
from rag.index import sparse
from rag.index.backend import Scope, rows_of
from rag.index.faults import BackendUnavailable
from rag.index.lexical import Tokenizer, tokenize, word_terms
from rag.index.milvus import store
from rag.settings import Settings

T = TypeVar("T")
# Where the lexical leg's candidates come from (RAG_MILVUS_LEXICAL): our BM25 weights (`lex`),
# or Milvus's BM25 function over the text cut by its jieba analyzer (`bm25`). Chosen by the eval
# (README, "Milvus").
LEXICAL_FIELDS = {"weights": "lex", "analyzer": "bm25"}
# Fetched vectors and weights kept, by key: a question's candidates are fetched once for all
# the scores read of them, and a repeated question's not at all.
CACHED_ROWS = 20_000
# Stored bulletins kept read: a PDF's citations read its layout (its lines' boxes) at every
# search that cites it, and one PDF's JSON is some hundreds of kilobytes to fetch and parse.
CACHED_DOCUMENTS = 32


class IndexRefused(RuntimeError):
    """The collection is missing, built for other settings, or not what its build wrote; the
    message says what to do."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind  # "missing", "stale" or "damaged"


class MilvusBackend:
    """A Milvus collection pair (see rag.index.milvus.store) as a SearchBackend."""

    def __init__(self, client: Any, settings: Settings, expected: dict[str, Any]) -> None:
        self.client, self.settings = client, settings
        self.timeout = settings.milvus_timeout
        self.how: Tokenizer = settings.lexical_tokenizer
        self.lexical_field = LEXICAL_FIELDS[settings.milvus_lexical]
        base = settings.milvus_collection
        collection = self._call(store.current_collection, client, base, self.timeout)
        if collection is None:
            raise IndexRefused(
                f"no index in Milvus at {settings.milvus_shown} (no collection {base!r}); "
                "build one with `rag index`",
                "missing",
            )
        self.names = store.names(base, store.side_of(collection))
        self._call(
            store.loaded, client, self.names.values(), self.timeout, settings.milvus_replicas
        )
        manifest = self._call(store.read_manifest, client, collection, self.timeout)
        if not manifest or not manifest.get("complete"):
            raise IndexRefused(
                f"the collection {collection!r} holds no complete build; rebuild it with "
                "`rag index`",
                "damaged",
            )
        differences = [
            f"{k}: index has {manifest.get(k)!r}, settings want {v!r}"
            for k, v in expected.items()
            if manifest.get(k) != v
        ]
        if differences:
            raise IndexRefused(
                f"the index in Milvus collection {collection!r} does not match the running "
                f"settings ({', '.join(differences)}); rebuild it with `rag index`",
                "stale",
            )
        self._manifest = manifest
        bm25 = manifest.get("bm25", {})
        self.documents_count = int(bm25.get("passage_count", 0))
        self.sentences_count = int(bm25.get("sentence_count", 0))
        self._lock = threading.Lock()
        self._rows: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._frequencies: OrderedDict[int, tuple[int, int]] = OrderedDict()
        self._documents: OrderedDict[str, dict[str, Any] | None] = OrderedDict()
        self._read_catalog()
        self._warm()

    # --- the catalog, read once ---

    def _read_catalog(self) -> None:
        fields = [
            "key", "passage_id", "doc_id", "source", "seq", "article", "headline", "section",
            "paragraph", "region", "date", "spans", "text", "terms",
        ]  # fmt: skip
        rows = self._call(
            lambda: list(store.every_row(self.client, self.names["passages"], fields))
        )
        rows.sort(key=lambda r: (r["source"], r["seq"]))
        try:
            self._passages = [_passage(r) for r in rows]
        except (KeyError, TypeError, ValueError) as exc:  # a row not as a build writes one
            raise IndexRefused(
                f"the Milvus collection {self.names['passages']!r} holds a passage that cannot "
                f"be read ({type(exc).__name__}: {exc}); rebuild it with `rag index`",
                "damaged",
            ) from exc
        self._keys = [r["key"] for r in rows]
        self._holders = _Postings([r["terms"] for r in rows])
        self._row_of = {key: i for i, key in enumerate(self._keys)}
        sentences = self._call(
            lambda: list(
                store.every_row(
                    self.client,
                    self.names["sentences"],
                    ["key", "passage_key", "number", "start", "end"],
                )
            )
        )
        strays = sum(s["passage_key"] not in self._row_of for s in sentences)
        counted = self._manifest.get("bm25", {}).get("sentence_count")
        if strays or len(sentences) != counted:
            raise IndexRefused(
                f"the Milvus collection {self.names['sentences']!r} holds {len(sentences)} "
                f"sentences ({strays} of passages it lacks), its manifest counts {counted}; "
                "rebuild it with `rag index`",
                "damaged",
            )
        owned = [(self._row_of[s["passage_key"]], s["number"], s) for s in sentences]
        owned.sort(key=lambda t: (t[0], t[1]))
        self._sentences = np.array(
            [(i, s["start"], s["end"]) for i, _, s in owned], dtype=np.int64
        ).reshape(-1, 3)
        self._sentence_keys = [s["key"] for _, _, s in owned]
        self._sentence_bounds = np.searchsorted(
            self._sentences[:, 0], np.arange(len(self._passages) + 1), side="left"
        )
        if len(self._passages) != self._manifest.get("counts", {}).get("passages"):
            raise IndexRefused(
                f"the Milvus collection {self.names['passages']!r} holds "
                f"{len(self._passages)} passages, its manifest counts another; rebuild it with "
                "`rag index`",
                "damaged",
            )

    def moved(self) -> str | None:
        """The build the alias now points at when it is another than the one this reads (a
        build has finished since), else None: the service then loads the new one (api.state)."""
        now = self._call(
            store.current_collection, self.client, self.settings.milvus_collection, self.timeout
        )
        return now if now != self.names["passages"] else None

    def _warm(self) -> None:
        """One search of each leg now: Milvus Lite reads a sparse index into memory on its first
        search (6 s for the archive's), which would otherwise be the first question's wait."""
        if not self._passages:
            return
        self.dense_top(self._fetch("passages", self._keys[:1])[0]["vector"], 1, None)
        self.lexical_top(self._passages[0].text[:16], 1, None)

    @property
    def passages(self) -> Sequence[Passage]:
        return self._passages

    @property
    def manifest(self) -> dict[str, Any]:
        return self._manifest

    def document(self, doc_id: str) -> dict[str, Any] | None:
        """The stored bulletin (as /v1/documents returns it), read through a small cache: this
        backend serves one build, whose documents do not change."""
        with self._lock:
            if doc_id in self._documents:
                self._documents.move_to_end(doc_id)
                return self._documents[doc_id]
        found = self._read_document(doc_id)
        with self._lock:
            self._documents[doc_id] = found
            while len(self._documents) > CACHED_DOCUMENTS:
                self._documents.popitem(last=False)
        return found

    def _read_document(self, doc_id: str) -> dict[str, Any] | None:
        rows = self._call(
            self.client.query,
            self.names["documents"],
            filter=f"doc_id == {store.quoted(doc_id)}",
            output_fields=["part", "body"],
            limit=store.PAGE,
            timeout=self.timeout,
        )
        if not rows:
            return None
        body = "".join(r["body"] for r in sorted(rows, key=lambda r: r["part"]))
        try:
            found: dict[str, Any] = json.loads(body)
        except ValueError as exc:  # a part missing: a build killed while writing it
            raise BackendUnavailable(
                f"the bulletin {doc_id!r} in Milvus at {self.settings.milvus_shown} is "
                "incomplete; rebuild the index with `rag index`"
            ) from exc
        return found

    # --- the legs ---

    def dense_top(
        self, vector: np.ndarray, n: int, scope: Scope | None
    ) -> tuple[np.ndarray, np.ndarray]:
        return self._top(
            [np.asarray(vector, dtype=np.float32).tolist()], "vector", n, scope, negate=False
        )

    def lexical_top(
        self, search: str, n: int, scope: Scope | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The `n` best BM25 passages for `search` among the admitted; none sharing no term."""
        if self.lexical_field == "bm25":
            # Milvus Lite gives BM25 distances negated: ranked by position, scores re-signed.
            return self._top([search], "bm25", n, scope, negate=True)
        asked = self._question(search, "passages")
        if not asked:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return self._top([asked], "lex", n, scope, negate=False)

    def _top(
        self, data: list[Any], field: str, n: int, scope: Scope | None, *, negate: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        expression = store.scope_expression(scope)
        found = self._call(
            self.client.search,
            self.names["passages"],
            data=data,
            anns_field=field,
            limit=max(1, min(n, 16_384)),
            filter=expression,
            output_fields=["key"],
            timeout=self.timeout,
        )[0]
        unknown = [h["key"] for h in found if h["key"] not in self._row_of]
        if unknown:
            raise BackendUnavailable(
                f"Milvus at {self.settings.milvus_shown} holds passages the index in service "
                "does not (rebuilt underneath it?); reload the service"
            )
        ids = np.array([self._row_of[h["key"]] for h in found], dtype=np.int64)
        scores = np.array([h["distance"] for h in found], dtype=np.float32)
        return ids, -scores if negate else scores

    # --- exact scores of the candidates ---

    def dense_cosines(self, vector: np.ndarray, ids: np.ndarray) -> np.ndarray:
        rows = self._fetch("passages", [self._keys[i] for i in ids])
        return _stack(rows, len(vector)) @ vector

    def lexical_scores(self, search: str, ids: np.ndarray) -> np.ndarray:
        asked = self._question(search, "passages")
        rows = self._fetch("passages", [self._keys[i] for i in ids])
        return np.array(sparse.scores(asked, [r["lex"] for r in rows]), dtype=np.float32)

    def sentence_rows(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return rows_of(self._sentence_bounds, ids)

    def sentence_spans(self, rows: np.ndarray) -> np.ndarray:
        return self._sentences[rows, 1:]

    def sentence_cosines(self, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        found = self._fetch("sentences", [self._sentence_keys[r] for r in rows])
        return _stack(found, len(vector)) @ vector

    def sentence_lexical_scores(self, search: str, rows: np.ndarray) -> np.ndarray:
        asked = self._question(search, "sentences")
        found = self._fetch("sentences", [self._sentence_keys[r] for r in rows])
        return np.array(sparse.scores(asked, [r["lex"] for r in found]), dtype=np.float32)

    # --- the words the bulletins use ---

    @property
    def tokenizer(self) -> Tokenizer:
        """What the texts were cut into search terms by (the seam's)."""
        return self.how

    def knows(self, word: str) -> bool:
        """Whether the passages use every search term of `word` (LexicalIndex.knows)."""
        terms = [sparse.term_hash(t) for t in tokenize(word, self.how)]
        return bool(terms) and all(len(self._holders.of(h)) for h in terms)

    def containing(self, word: str) -> np.ndarray:
        """The passages holding every search term of `word` (LexicalIndex.containing), from the
        catalog's postings: Milvus Lite scans an array field for `array_contains_all` (3.5 s a
        word over the archive), and the verdict asks this of every content word."""
        found: np.ndarray | None = None
        for h in sorted({sparse.term_hash(t) for t in word_terms(word, self.how)}):
            rows = self._holders.of(h)
            found = rows if found is None else np.intersect1d(found, rows, assume_unique=True)
        return np.zeros(0, dtype=np.int64) if found is None else found

    # --- fetching, cached ---

    def _question(self, search: str, kind: str) -> dict[int, float]:
        """The question as a sparse vector of IDFs over passages or over sentences."""
        asked = sparse.question_terms(search, self.how)
        counts = self._counts(list(asked))
        column = 0 if kind == "passages" else 1
        documents = self.documents_count if kind == "passages" else self.sentences_count
        frequency = {h: c[column] for h, c in counts.items()}
        return sparse.question_vector(asked, frequency, documents)

    def _counts(self, hashes: list[int]) -> dict[int, tuple[int, int]]:
        """How many passages and sentences hold each term (the terms collection), cached."""
        with self._lock:
            found = {h: self._frequencies[h] for h in hashes if h in self._frequencies}
        missing = sorted(set(hashes) - found.keys())
        if missing:
            rows = self._call(
                self.client.query,
                self.names["terms"],
                filter=f"hash in {missing}",
                output_fields=["hash", "passages", "sentences"],
                limit=len(missing),
                timeout=self.timeout,
            )
            fetched = {h: (0, 0) for h in missing}
            fetched.update({r["hash"]: (r["passages"], r["sentences"]) for r in rows})
            with self._lock:
                for h, c in fetched.items():
                    self._frequencies[h] = c
                while len(self._frequencies) > CACHED_ROWS * 10:
                    self._frequencies.popitem(last=False)
            found.update(fetched)
        return found

    def _fetch(self, kind: str, keys: list[str]) -> list[dict[str, Any]]:
        """The vector and BM25 weights of these passages or sentences, in order."""
        with self._lock:
            held = {k: self._rows[(kind, k)] for k in keys if (kind, k) in self._rows}
        missing = [k for k in dict.fromkeys(keys) if k not in held]
        if missing:
            rows = self._call(
                lambda: list(
                    store.query_in(
                        self.client, self.names[kind], "key", missing, ["key", "vector", "lex"],
                        self.timeout,
                    )
                )
            )  # fmt: skip
            with self._lock:
                for r in rows:
                    self._rows[(kind, r["key"])] = r
                    held[r["key"]] = r
                while len(self._rows) > CACHED_ROWS:
                    self._rows.popitem(last=False)
            absent = [k for k in missing if k not in held]
            if absent:
                raise BackendUnavailable(
                    f"Milvus at {self.settings.milvus_shown} no longer holds {len(absent)} "
                    f"{kind} of the index in service (rebuilt underneath it?); reload the service"
                )
        return [held[k] for k in keys]

    def _call(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            try:
                return call(*args, **kwargs)
            except Exception as exc:
                # A Milvus restarted since comes back with its collections released: loaded
                # again, the call is tried once more.
                if not store.released(exc) or not hasattr(self, "names"):
                    raise
                store.loaded(
                    self.client, self.names.values(), self.timeout, self.settings.milvus_replicas
                )
                return call(*args, **kwargs)
        except (BackendUnavailable, IndexRefused):
            raise
        except Exception as exc:  # pymilvus and grpc errors, a connection refused or reset
            raise store.unavailable(self.settings, exc) from exc


class _Postings:
    """Which passages (rows) hold each term hash: the hashes sorted, their rows beside them."""

    def __init__(self, terms: list[list[int]]) -> None:
        lengths = np.array([len(t) for t in terms], dtype=np.int64)
        hashes = np.fromiter((h for t in terms for h in t), dtype=np.int64, count=int(lengths.sum()))
        rows = np.repeat(np.arange(len(terms), dtype=np.int64), lengths)
        order = np.argsort(hashes, kind="stable")  # rows stay ascending within a hash
        self.hashes, self.rows = hashes[order], rows[order]

    def of(self, term: int) -> np.ndarray:
        lo, hi = np.searchsorted(self.hashes, [term, term + 1])
        return self.rows[lo:hi]


def _stack(rows: Iterable[dict[str, Any]], dim: int) -> np.ndarray:
    vectors = [r["vector"] for r in rows]
    if not vectors:
        return np.zeros((0, dim), dtype=np.float32)
    return np.asarray(vectors, dtype=np.float32)


def _passage(row: dict[str, Any]) -> Passage:
    return Passage(
        passage_id=row["passage_id"],
        doc_id=row["doc_id"],
        source=row["source"],
        article=int(row["article"]),
        headline=row["headline"],
        section=row["section"],
        paragraph=int(row["paragraph"]),
        region=row["region"],
        date=row["date"],
        spans=tuple(Span(int(a), int(b)) for a, b in row["spans"]),
        text=row["text"],
    )
