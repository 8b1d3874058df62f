"""The lexical leg's top N without reading every posting of every term (MaxScore, term at a time).

A question's terms are single characters and character pairs. The common ones (是, 业, 发展)
are held by a large share of the passages, and summing their whole postings is what the
lexical leg cost at 1,000,000 passages; yet each adds little (its IDF is low). So the terms are
read rarest first, each one's postings in full, until what all the remaining terms could still
add to a passage never seen (the sum of their highest weights) falls below the N-th best score
so far: no unseen passage can then enter the N. The remaining, common terms are only looked up
for the passages that can still reach the N (a binary search in each posting list), and those
that no longer can are dropped as the bound shrinks. The result is the exact top N of full
BM25 (ties to the lower index), found from a fraction of the postings.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from rag.index.dense import top

# A term whose postings are shorter than this is read whole without first asking whether the
# N is settled: reading it costs less than the test.
_SHORT = 2048


@dataclass(frozen=True)
class Postings:
    """bm25s's postings by term: term t's documents (ascending) are indices[indptr[t]:
    indptr[t + 1]] with their BM25 weights in data; bounds[t] is the highest of t's weights."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    bounds: np.ndarray
    documents: int

    @classmethod
    def of(
        cls, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, documents: int
    ) -> Postings:
        lengths = np.diff(indptr)
        bounds = np.zeros(len(lengths), dtype=np.float32)
        held = lengths > 0
        if held.any():
            bounds[held] = np.maximum.reduceat(data, indptr[:-1][held])
        return cls(indptr, indices, data, bounds, documents)


class Ranked(NamedTuple):
    """The best documents, best first, their scores, and how many postings were read to find
    them (of those the terms hold) and looked up."""

    ids: np.ndarray
    scores: np.ndarray
    read: int
    looked_up: int


class Scratch(threading.local):
    """Per-thread arrays kept zero between searches, so that a search touches only the entries
    its postings name rather than allocating and scanning an array the size of the corpus (or
    of its vocabulary). Whoever writes into one sets those entries back before returning."""

    def zeros(self, name: str, size: int, dtype: type) -> np.ndarray:
        arrays: dict[str, np.ndarray] = self.__dict__.setdefault("arrays", {})
        found = arrays.get(name)
        if found is None or len(found) != size:
            found = arrays[name] = np.zeros(size, dtype=dtype)
        return found


def top_n(
    postings: Postings,
    terms: np.ndarray,
    n: int,
    admitted: np.ndarray | None,
    scratch: Scratch,
    *,
    short: int = _SHORT,
) -> Ranked:
    """The `n` best documents by BM25 for the term slots `terms` (a term given twice counts
    twice) among those `admitted` (a mask; all when None), best first, with their scores. Only
    documents holding some term are returned. `short`: postings shorter than this are read
    whole without asking first whether the N is settled."""
    if n <= 0 or not len(terms):
        return Ranked(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), 0, 0)
    slots, times = np.unique(terms, return_counts=True)
    indptr, indices, data = postings.indptr, postings.indices, postings.data
    starts, ends = indptr[slots], indptr[slots + 1]
    order = np.argsort(ends - starts, kind="stable")  # rarest first
    slots, times, starts, ends = slots[order], times[order], starts[order], ends[order]
    bounds = postings.bounds[slots].astype(np.float64) * times
    # What the terms from i on could still add to one document.
    remaining = np.concatenate([np.cumsum(bounds[::-1])[::-1], [0.0]])
    scores = scratch.zeros("scores", postings.documents, np.float32)
    seen = scratch.zeros("seen", postings.documents, np.bool_)
    found: list[np.ndarray] = []
    count = read = looked_up = 0
    try:
        i = 0
        threshold = 0.0
        while i < len(slots):
            if count >= n and ends[i] - starts[i] >= short:
                threshold = _nth_best(scores, found, n)
                # A hair of slack: the bound is summed in float64, the scores in float32.
                if remaining[i] * (1 + 1e-5) < threshold:
                    break
            docs = indices[starts[i] : ends[i]]
            weights = data[starts[i] : ends[i]]
            if admitted is not None:
                keep = admitted[docs]
                docs, weights = docs[keep], weights[keep]
            scores[docs] += weights * np.float32(times[i])
            new = docs[~seen[docs]]
            seen[new] = True
            found.append(new)
            count += len(new)
            read += int(ends[i] - starts[i])
            i += 1
        candidates = np.sort(np.concatenate(found)) if found else np.zeros(0, indices.dtype)
        # The common terms left: looked up only for the documents that can still reach the N.
        for j in range(i, len(slots)):
            candidates = candidates[scores[candidates] + remaining[j] >= threshold]
            docs = indices[starts[j] : ends[j]]
            at = np.minimum(np.searchsorted(docs, candidates), len(docs) - 1)
            hit = docs[at] == candidates
            looked_up += len(candidates)
            scores[candidates[hit]] += data[starts[j] + at[hit]] * np.float32(times[j])
        # Candidates are ascending, so ties go to the lower document, as over all scores.
        ranked = candidates[top(scores[candidates], min(n, len(candidates)))]
        return Ranked(ranked.astype(np.int64), scores[ranked].copy(), read, looked_up)
    finally:
        for docs in found:
            scores[docs] = 0.0
            seen[docs] = False


def _nth_best(scores: np.ndarray, found: list[np.ndarray], n: int) -> float:
    """The n-th highest score among the documents seen so far: a floor under the final N-th,
    since scores only grow as terms are added."""
    held = scores[np.concatenate(found)]
    return float(np.partition(held, len(held) - n)[len(held) - n])
