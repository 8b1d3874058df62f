"""BM25 as sparse vectors, for a store that keeps passages elsewhere (rag.index.milvus).

The local lexical leg (rag.index.lexical) holds bm25s's postings; a remote store holds, per
text, a sparse vector of its terms' frequency parts, and the question becomes a sparse vector of
its terms' IDFs, so that their inner product is the BM25 score bm25s gives (Lucene's variant:
the same k1, the same b, the same terms from rag.index.lexical.tokenize). The remote store's
sparse inner-product search is then BM25 over our own terms, where its built-in BM25 function
would cut Chinese with an analyzer of its own.

A term is known by a 32-bit hash, not a vocabulary slot: slots would have to be agreed across
builds and machines, a hash needs nothing kept. Two terms share a hash about once per 8,600
pairs among a million terms (n^2 / 2^33), when each adds the other's weight.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rag.index.lexical import LENGTH_NORMALISATION, Tokenizer, tokenize

# bm25s's default k1, which the local lexical leg uses.
K1 = 1.5
# Milvus's sparse dimensions are below 2**32 - 1.
_DIMENSIONS = 2**32 - 1
# What bm25s indexes for a text with no terms (rag.index.lexical.LexicalIndex): counts stay aligned.
_EMPTY = "\u0000"


def term_hash(term: str) -> int:
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=8).digest()) % _DIMENSIONS


@dataclass(frozen=True)
class Terms:
    """One text's terms: each term's hash with how often it occurs, and the text's length."""

    counts: dict[int, int]
    length: int

    @classmethod
    def of(cls, text: str, how: Tokenizer) -> Terms:
        terms = tokenize(text, how) or [_EMPTY]
        return cls(dict(Counter(term_hash(t) for t in terms)), len(terms))


def weights(terms: Terms, average_length: float) -> dict[int, float]:
    """The text's side of BM25: each term's frequency part, tf / (tf + k1 (1 - b + b dl/avgdl))."""
    b = LENGTH_NORMALISATION
    norm = K1 * ((1 - b) + b * terms.length / average_length)
    return {h: tf / (tf + norm) for h, tf in terms.counts.items()}


def idf(documents_with: int, documents: int) -> float:
    return math.log(1 + (documents - documents_with + 0.5) / (documents_with + 0.5))


def question_terms(search: str, how: Tokenizer) -> Counter[int]:
    """The question's term hashes, each with how often the question says it (bm25s counts a
    repeated term again)."""
    return Counter(term_hash(t) for t in tokenize(search, how))


def question_vector(
    asked: Mapping[int, int], frequency: Mapping[int, int], documents: int
) -> dict[int, float]:
    """The question's side: each known term's IDF times how often it is asked. A term no text
    holds is left out, as bm25s leaves out a term outside its vocabulary."""
    return {
        h: idf(frequency[h], documents) * times
        for h, times in asked.items()
        if frequency.get(h, 0) > 0
    }


def scores(question: Mapping[int, float], texts: Sequence[Mapping[int, float]]) -> list[float]:
    """BM25 of each text (its weights) for the question vector: their inner products."""
    return [sum(w * text.get(h, 0.0) for h, w in question.items()) for text in texts]


def frequencies(texts: Iterable[Terms]) -> Counter[int]:
    """How many of the texts hold each term."""
    found: Counter[int] = Counter()
    for terms in texts:
        found.update(terms.counts.keys())
    return found
