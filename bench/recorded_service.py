"""`rag serve` with each question's vector kept after its first encoding: what the service
costs besides the question encoder.

The service is the real one (the same app, index, limits and HTTP stack) but for the model: a
question seen before gets the vector the real encoder gave it the first time. After a pass over
the questions, a load measures everything but encoding: the legs, fusion, the sentences, the
verdict, folding, JSON and HTTP. Not a product setting: a cache of questions' vectors would
make a benchmark that repeats its questions measure the cache. bench/throughput.py starts it
with `--without-encoder`.
Run: .venv/bin/python bench/recorded_service.py --port 8123
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from api.app import create_app
from api.server import serve
from rag.pipeline import load_model, open_retriever
from rag.search.retriever import Retriever
from rag.settings import Settings


class Recorded:
    """An embedder whose questions are encoded once each by the real one, then remembered."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self._seen: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            new = [t for t in dict.fromkeys(texts) if t not in self._seen]
        if new:
            vectors = self._real.encode_queries(new)
            with self._lock:
                self._seen.update(zip(new, vectors, strict=True))
        return np.stack([self._seen[t] for t in texts])

    def __getattr__(self, name: str) -> Any:  # model_id, dim, encode_passages...: the real one's
        return getattr(self._real, name)


def load(settings: Settings, previous: Retriever | None) -> Retriever:
    if previous is not None:  # a reload keeps the model, as the service's own loader does
        return open_retriever(settings, build_if_missing=False, embedder=previous.embedder)
    embedder = Recorded(load_model(settings, show_progress=False))
    return open_retriever(settings, build_if_missing=False, embedder=embedder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = Settings().model_copy(update={"host": "127.0.0.1", "port": args.port})
    serve(create_app(settings, load=load), settings)


if __name__ == "__main__":
    main()
