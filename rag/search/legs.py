"""The two legs, each returning its own best candidates with the filters applied inside it:
dense through FAISS (exact, or HNSW on a large index), lexical through the BM25 postings of the
question's terms. Fusion, the sentences, the highlight and the verdict then look only at the
union of the candidates, never at every passage.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rag.index.lexical import LexicalIndex

# HNSW's search breadth: what it explores for the candidates asked of it (at least that many).
# 2x the candidates kept recall@10 against exact above 0.95 at 1M passages (bench/search_scale.py).
HNSW_BREADTH = 2


def top(scores: np.ndarray, m: int) -> np.ndarray:
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


class DenseLeg:
    """Passage vectors and their FAISS index (flat: exact; HNSW: approximate)."""

    def __init__(self, vectors: np.ndarray, faiss_index: Any) -> None:
        self.vectors = vectors
        self.index = faiss_index
        self.approximate = hasattr(faiss_index, "hnsw")

    def top(
        self, query: np.ndarray, n: int, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The `n` passages closest to the unit `query` among those `mask` admits (all when
        None): their indices and cosines, closest first."""
        import faiss

        n = min(n, len(self.vectors) if mask is None else int(mask.sum()))
        if n <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        selector = None
        if mask is not None and not mask.all():
            bits = np.packbits(mask.astype(np.uint8), bitorder="little")
            selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits))
        if self.approximate:
            params: Any = faiss.SearchParametersHNSW(efSearch=max(64, HNSW_BREADTH * n))  # type: ignore[attr-defined]
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        cosines, ids = self.index.search(query[None, :].astype(np.float32), n, params=params)
        found = ids[0] >= 0
        return ids[0][found].astype(np.int64), cosines[0][found]

    def cosines(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """The exact cosines of the passages `ids`."""
        return self.vectors[ids] @ query


class LexicalLeg:
    """BM25 over passages (rag.index.lexical), searched by term postings."""

    def __init__(self, lexical: LexicalIndex) -> None:
        self.lexical = lexical

    def top(
        self, terms: np.ndarray, n: int, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The `n` best-scoring passages for the term slots `terms` among those `mask` admits,
        best first, with their scores; passages sharing no term are never candidates."""
        scores = self.lexical.scores_of(terms)
        if mask is not None:
            scores[~mask] = 0.0
        matched = int(np.count_nonzero(scores))
        ids = top(scores, min(n, matched))
        return ids, scores[ids]
