"""The FAISS index over passage vectors: exact while it is small, approximate above a size.

Exact search reads every vector (the archive's 16,582 in about 1.5 ms, as one matrix-vector
product). Above `RAG_APPROXIMATE_ABOVE` passages the index is an inverted file over 4-bit
product-quantised codes read by FAISS's fast-scan kernels (IVF-PQ fast-scan): the vectors are
grouped around `2 * sqrt(n)` centroids, coded by their residual to it, a question reads the
codes of the nearest quarter of the groups, and the best `RESCORED` of those are scored again
exactly from the vectors, which the leg holds anyway for fusion's cosines. Measured at
1,000,000 passages made from the archive's sentence vectors, real questions: 0.954 of the exact
ten in 8.6 ms (bench/README.md), where the inverted file of whole vectors (IVF-flat) found 0.815
in 10.5 ms and 0.925 in 45 ms, and HNSW (M=32) less than either at every cost; exact search
41-87 ms.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Share of the IVF groups a question reads, and how many of the codes' best are scored again
# exactly. At 1M passages and 2,000 groups, residual codes (bench/README.md): reading 300
# groups found 0.919 of the exact ten (6.1 ms), 400 0.942 (7.3 ms), 500 0.954 (8.6 ms); with
# codes of the vectors, rescoring 1,000 instead of 2,000 lost about 0.02 at each, and 4,000
# groups found less at every cost.
PROBED_SHARE = 0.25
RESCORED = 2000
# A filter admitting at most this many passages is searched exactly over them (about 5 ms).
EXACT_WITHIN = 50_000
# Above this many scores, top() guesses its cut from every _STRIDE-th score first.
_SAMPLED_ABOVE = 65_536
_STRIDE = 32
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
        lists = max(1, int(2 * np.sqrt(n)))
        # Two dimensions a 4-bit code: 192 bytes a 384-dimensional vector, a quarter of fp16.
        # The codes are of each vector's residual to its group's centroid (the "r"), which
        # they render closer than the vector itself: at 1M passages 0.954 of the exact ten
        # where codes of the vectors found 0.943, in the same 8.6 ms (bench/README.md).
        codes = f"PQ{dim // 2}x4fsr" if dim % 2 == 0 else "Flat"
        index = faiss.index_factory(dim, f"IVF{lists},{codes}", faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(
            n, size=min(n, lists * _TRAIN_PER_CENTROID), replace=False
        )
        index.train(np.ascontiguousarray(vectors[np.sort(sample)], dtype=np.float32))
    else:
        index = faiss.IndexFlatIP(dim)
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def search_parameters(index: Any, n: int, probes: int | None = None) -> Any:
    """How to search `index` for `n` neighbours: the IVF groups to read, HNSW's breadth."""
    import faiss

    if hasattr(index, "nprobe"):
        probes = probes or max(1, round(PROBED_SHARE * index.nlist))
        return faiss.SearchParametersIVF(nprobe=probes)  # type: ignore[call-arg]
    if hasattr(index, "hnsw"):
        return faiss.SearchParametersHNSW(efSearch=max(64, 2 * n))  # type: ignore[attr-defined]
    return faiss.SearchParameters()


def top(scores: np.ndarray, m: int) -> np.ndarray:
    """Indices of the `m` highest scores, best first (ties in index order)."""
    if m <= 0:
        return np.zeros(0, dtype=np.int64)
    if len(scores) >= _SAMPLED_ABOVE and m * _STRIDE * 4 <= len(scores):
        # A cut under the m-th score guessed from every _STRIDE-th score, then the exact top
        # among the scores above it: one comparison pass over the million, where the partial
        # sort of all of them cost about 4 ms (bench/search_scale.py). The scores above the
        # cut keep their index order, so ties still go to the lower index; when the guess
        # lets through fewer than m, or too many to gain, every score is sorted as before.
        sample = scores[::_STRIDE]
        k = min(len(sample), 2 * (m // _STRIDE) + 4)
        cut = np.partition(sample, len(sample) - k)[len(sample) - k]
        chosen = np.flatnonzero(scores >= cut)
        if m <= len(chosen) <= len(scores) // 4:
            return chosen[_top_all(scores[chosen], m)]
    return _top_all(scores, m)


def _top_all(scores: np.ndarray, m: int) -> np.ndarray:
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
        self, query: np.ndarray, n: int, mask: np.ndarray | None, *, probes: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The `n` passages closest to the unit `query` among those `mask` admits (all when
        None): their indices and cosines, closest first. `probes`: the IVF groups to read, when
        not the default share (bench/dense_recall.py)."""
        import faiss

        admitted = None if mask is None else np.flatnonzero(mask)
        n = min(n, len(self.vectors) if admitted is None else len(admitted))
        if n <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if admitted is not None and len(admitted) <= EXACT_WITHIN:
            # A filter that admits few passages leaves few of them in the groups a question
            # reads (a province's 5% of 1M, in a quarter of the groups): fewer than `n`, or
            # none. Their exact cosines cost less than reading the groups.
            scores = self.vectors[admitted] @ query
            best = top(scores, n)
            return admitted[best], scores[best]
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
        params = search_parameters(self.index, n, probes)
        if selector is not None:
            params.sel = selector
        # The codes' cosines are approximate: the best RESCORED of them are scored again from
        # the vectors, and the best `n` of those kept, with their exact cosines.
        wanted = max(n, RESCORED) if hasattr(self.index, "nprobe") else n
        _, ids = self.index.search(query[None, :].astype(np.float32), wanted, params=params)
        found = ids[0][ids[0] >= 0].astype(np.int64)
        cosines = self.cosines(query, found)
        best = top(cosines, min(n, len(found)))
        return found[best], cosines[best]

    def cosines(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """The exact cosines of the passages `ids`."""
        return self.vectors[ids] @ query
