"""The rows a build writes into Milvus (rag.index.milvus.store's collections), made from
passages and their terms, and the term counts a build's writes change. Pure: no calls to
Milvus."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from rag.documents import Passage
from rag.index import sparse
from rag.index.milvus import store
from rag.index.store import IndexUnusable


@dataclasses.dataclass
class TermChanges:
    """What a build's deletes and inserts did to the term counts and lengths."""

    passages: Counter[int] = dataclasses.field(default_factory=Counter)
    sentences: Counter[int] = dataclasses.field(default_factory=Counter)
    passage_length: int = 0
    passage_count: int = 0
    sentence_length: int = 0
    sentence_count: int = 0


def term_rows(
    passages: Counter[int], sentences: Counter[int], hashes: Iterable[int]
) -> list[dict[str, Any]]:
    return [
        {
            "hash": h,
            "passages": max(0, passages[h]),
            "sentences": max(0, sentences[h]),
            "stub": store.stub(),
        }
        for h in sorted(hashes)
    ]


def sequence_numbers(passages: list[Passage]) -> list[int]:
    """Each passage's place among its bulletin's: the catalog's order, which is the build's."""
    seen: Counter[str] = Counter()
    out = []
    for p in passages:
        out.append(seen[p.doc_id])
        seen[p.doc_id] += 1
    return out


def passage_row(
    p: Passage, key: str, seq: int, terms: sparse.Terms, vector: np.ndarray, average: float
) -> dict[str, Any]:
    return {
        "key": key,
        "passage_id": p.passage_id,
        "doc_id": p.doc_id,
        "source": p.source,
        "seq": seq,
        "article": p.article,
        "headline": p.headline,
        "section": p.section,
        "paragraph": p.paragraph,
        "region": p.region,
        "date": p.date,
        "spans": [[s.start, s.end] for s in p.spans],
        "text": p.text,
        "lex": sparse.weights(terms, average),
        "terms": distinct(terms),
        "length": terms.length,
        "vector": vector.tolist(),
    }


def sentence_row(
    passage: str,
    number: int,
    start: int,
    end: int,
    terms: sparse.Terms,
    vector: np.ndarray,
    average: float,
) -> dict[str, Any]:
    return {
        "key": f"{passage}:{number}",
        "passage_key": passage,
        "number": number,
        "start": start,
        "end": end,
        "lex": sparse.weights(terms, average),
        "terms": distinct(terms),
        "length": terms.length,
        "vector": vector.tolist(),
    }


def distinct(terms: sparse.Terms) -> list[int]:
    found = sorted(terms.counts)
    if len(found) > store.MAX_TERMS:
        raise IndexUnusable(f"a text holds {len(found)} distinct terms, over Milvus's {store.MAX_TERMS}")
    return found
