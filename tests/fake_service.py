"""`rag serve` with the fake embedder, as a process of its own on 127.0.0.1: for probes that
need a real server (connections, reloads under load) without loading the model.

    python -m tests.fake_service --port 8123      # settings from RAG_* as for `rag serve`
"""

from __future__ import annotations

import argparse

import uvicorn

from api.app import create_app
from rag.pipeline import open_retriever
from rag.search.retriever import Retriever
from rag.settings import Settings
from tests.conftest import FakeEmbedder


def load(settings: Settings, previous: Retriever | None) -> Retriever:
    """The service's loading with the fake embedder; a reload keeps it and the glossary."""
    return open_retriever(
        settings,
        build_if_missing=False,
        embedder=previous.embedder if previous else FakeEmbedder(),
        glossary=previous.glossary if previous else None,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = create_app(Settings(), load=load)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
