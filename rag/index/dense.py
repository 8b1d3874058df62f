"""The FAISS index over passage vectors: exact while it is small, approximate above a size.

Exact search reads every vector (the archive's 16,589 in about 4 ms, as one matrix-vector
product). Above `RAG_APPROXIMATE_ABOVE` passages the index is an inverted file (IVF): the
vectors are grouped around `sqrt(n) * 4` centroids found by k-means on a sample, and a question
reads the groups of its `IVF_PROBES` nearest centroids only. IVF over HNSW because, measured at
300,000 passages (bench/dense_recall.py, vectors made from the archive's sentence vectors, real
questions), it found more of the exact ten at every cost: IVF reading 128 lists 0.850 in 11 ms,
HNSW (M=32) at efSearch 256 0.728 in 3 ms and at 400 0.786 in 8 ms; and it built faster (211 s
against 281 s). Neither reaches 0.95 in 15 ms there; not yet measured at 1M.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Groups a question reads, of the 4*sqrt(n) lists (2,190 at 300,000 passages, 4,000 at 1M). At
# 300,000: 48 found 0.711 of the exact ten (3 ms), 128 0.850 (11 ms), 256 0.923 (20 ms), on a
# machine shared with other work; the leg gives candidates that fusion re-scores exactly, so
# recall is worth the milliseconds.
IVF_PROBES = 128
# Vectors k-means sees per centroid when training: FAISS warns below 39.
_TRAIN_PER_CENTROID = 40


def dense_index(vectors: np.ndarray, kind: str) -> Any:
    """A FAISS inner-product index of the unit rows `vectors`, of kind flat, hnsw or ivf."""
    import faiss

    n, dim = vectors.shape
    index: Any
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    elif kind == "ivf":
        lists = max(1, int(4 * np.sqrt(n)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(
            n, size=min(n, lists * _TRAIN_PER_CENTROID), replace=False
        )
        index.train(np.ascontiguousarray(vectors[np.sort(sample)]))
    else:
        index = faiss.IndexFlatIP(dim)
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def search_parameters(index: Any, n: int) -> Any:
    """How to search `index` for `n` neighbours: the IVF groups to read, HNSW's breadth."""
    import faiss

    if hasattr(index, "nprobe"):
        return faiss.SearchParametersIVF(nprobe=min(IVF_PROBES, index.nlist))  # type: ignore[call-arg]
    if hasattr(index, "hnsw"):
        return faiss.SearchParametersHNSW(efSearch=max(64, 2 * n))  # type: ignore[attr-defined]
    return faiss.SearchParameters()


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
    """Passage vectors and their FAISS index (rag.index.dense: exact, or approximate)."""

    def __init__(self, vectors: np.ndarray, faiss_index: Any) -> None:
        self.vectors = vectors
        self.index = faiss_index

    def top(
        self, query: np.ndarray, n: int, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The `n` passages closest to the unit `query` among those `mask` admits (all when
        None): their indices and cosines, closest first."""
        import faiss

        n = min(n, len(self.vectors) if mask is None else int(mask.sum()))
        if n <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if isinstance(self.index, faiss.IndexFlat):
            # Exact: one matrix-vector product and a partial sort. FAISS's flat search took
            # 12.5 ms for 200 of the archive's 16k passages; this takes about 4.
            scores = self.vectors @ query
            if mask is not None:
                scores = np.where(mask, scores, -np.inf)
            ids = top(scores, n)
            return ids, scores[ids]
        selector = None
        if mask is not None and not mask.all():
            bits = np.packbits(mask.astype(np.uint8), bitorder="little")
            selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits))
        params = search_parameters(self.index, n)
        if selector is not None:
            params.sel = selector
        cosines, ids = self.index.search(query[None, :].astype(np.float32), n, params=params)
        found = ids[0] >= 0
        return ids[0][found].astype(np.int64), cosines[0][found]

    def cosines(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """The exact cosines of the passages `ids`."""
        return self.vectors[ids] @ query
