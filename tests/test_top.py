"""rag.index.dense.top: the m highest scores, best first, ties to the lower index, whichever way
it finds them (the cut guessed from a sample above 65,536 scores, or a partial sort of all)."""

from __future__ import annotations

import numpy as np
import pytest

from rag.index.dense import top


def reference(scores: np.ndarray, m: int) -> list[int]:
    return np.argsort(-scores, kind="stable")[:m].tolist()


@pytest.mark.parametrize("size", [1000, 70_000, 300_000])
def test_top_is_a_stable_sort_cut_at_m(size: int) -> None:
    rng = np.random.default_rng(size)
    draws = {
        "continuous": rng.random(size).astype(np.float32),
        # BM25 over a few terms: most scores 0, the rest from few values (many ties).
        "ties": (rng.integers(0, 6, size) * (rng.random(size) < 0.2)).astype(np.float32),
        # The best scores all together at the end, where a stride sees few of them.
        "clustered": np.sort(rng.random(size)).astype(np.float32),
        "masked": np.where(rng.random(size) < 0.99, -np.inf, rng.random(size)).astype(np.float32),
        "constant": np.ones(size, dtype=np.float32),
    }
    for name, scores in draws.items():
        for m in (1, 10, 200, 2000):
            assert top(scores, m).tolist() == reference(scores, m), (name, m)
    assert top(draws["continuous"], 0).tolist() == []
    assert top(draws["continuous"], size + 5).tolist() == reference(draws["continuous"], size)


def test_a_large_top_sorts_only_the_scores_above_its_guessed_cut(monkeypatch) -> None:
    import rag.index.dense as dense

    sorted_sizes: list[int] = []
    real = dense._top_all

    def recording(scores: np.ndarray, m: int) -> np.ndarray:
        sorted_sizes.append(len(scores))
        return real(scores, m)

    monkeypatch.setattr(dense, "_top_all", recording)
    scores = np.random.default_rng(3).random(300_000).astype(np.float32)
    assert top(scores, 200).tolist() == reference(scores, 200)
    assert sorted_sizes and max(sorted_sizes) < 2000  # not the 300,000
