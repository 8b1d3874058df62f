"""Questions that arrive together are encoded together, in one forward pass.

The service answers each request on a thread of its own. Under load, many threads would each run
the model on one short question at the same moment, every run asking for both cores. Here the
first thread to arrive encodes what is waiting (its own question and any that came with it);
those arriving meanwhile wait and go in the next pass, led by the first of them. An idle service
encodes a question at once, alone: batching costs nothing when nothing arrives together.

A question's vector does not depend on what it was batched with beyond float rounding: padding
is masked out of attention and of the mean (rag.model.onnx_encoder), the same as
sentence-transformers' own batches.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rag.model.embed import Embedder


@dataclass(eq=False)
class _Asked:
    """One caller's questions, and what it is waiting for: its vectors, or its turn to lead."""

    texts: list[str]
    ready: threading.Event = field(default_factory=threading.Event)
    leads: bool = False
    vectors: np.ndarray | None = None
    error: BaseException | None = None


class QueryBatcher:
    """An embedder whose `encode_queries` gathers the questions of concurrent callers into
    batches of at most `max_batch` questions. Everything else is the wrapped embedder's."""

    def __init__(self, embedder: Embedder, max_batch: int = 16) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self.embedder = embedder
        self.model_id = embedder.model_id
        self.dim = embedder.dim
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._waiting: list[_Asked] = []
        self._leading = False
        self.passes = 0  # forward passes run, for tests and benches
        self.encoded = 0  # questions encoded in them

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        asked = _Asked(list(texts))
        with self._lock:
            self._waiting.append(asked)
            asked.leads = not self._leading
            self._leading = True
        while True:
            if asked.leads and asked.vectors is None and asked.error is None:
                asked.leads = False
                self._lead()
            asked.ready.wait()
            if asked.vectors is not None or asked.error is not None:
                break
            asked.ready.clear()  # woken to lead the next pass, not with an answer
        if asked.error is not None:
            raise asked.error
        assert asked.vectors is not None
        return asked.vectors

    def encode_passages(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        return self.embedder.encode_passages(texts, show_progress=show_progress)

    def __getattr__(self, name: str) -> Any:
        # What else the wrapped encoder offers (token_ids, pooled sentence vectors, max_tokens).
        return getattr(self.embedder, name)

    def _lead(self) -> None:
        """One pass over what is waiting; then hand the lead to the first still waiting, so no
        caller keeps encoding others' questions after its own are done."""
        with self._lock:
            batch: list[_Asked] = []
            size = 0
            while self._waiting:
                more = len(self._waiting[0].texts)
                if batch and size + more > self.max_batch:
                    break
                size += more
                batch.append(self._waiting.pop(0))
        try:
            vectors = self.embedder.encode_queries([t for a in batch for t in a.texts])
        except BaseException as exc:  # every caller of the pass hears of it
            for a in batch:
                a.error = exc
        else:
            start = 0
            for a in batch:
                a.vectors = vectors[start : start + len(a.texts)]
                start += len(a.texts)
        with self._lock:
            self.passes += 1
            self.encoded += size
            if self._waiting:
                self._waiting[0].leads = True
                self._waiting[0].ready.set()
            else:
                self._leading = False
        for a in batch:
            a.ready.set()
