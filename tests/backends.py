"""The three places an index can live, for tests that must hold on each: the local files,
Milvus Lite in a file (embedded), and a `milvus-lite server` reached over 127.0.0.1 (the path a
cluster is reached by). Each test gets collections of its own."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import pytest

from rag.documents import Bulletin
from rag.pipeline import build, open_index, open_milvus
from rag.search.retriever import Retriever
from rag.settings import Settings
from tests.conftest import REPO, shared_glossary

KINDS = ["local", "lite", "server"]
_names = itertools.count()


def settings_for(kind: str, folder: Path, request: pytest.FixtureRequest, **over: Any) -> Settings:
    """Settings putting the index in `folder` (local, Lite) or on the test server."""
    if kind == "local":
        return Settings(root=REPO, index_dir=folder / "index", **over)
    if kind == "lite":
        uri = str(folder / "milvus.db")
    else:
        uri = request.getfixturevalue("milvus_server").uri
    collection = f"t{os.getpid()}_{next(_names)}"
    return Settings(
        root=REPO,
        index_dir=folder / "index",
        backend="milvus",
        milvus_uri=uri,
        milvus_collection=collection,
        milvus_switch_grace_seconds=0,
        **over,
    )


def opened(settings: Settings, embedder: Any) -> Retriever:
    """The index as the settings place it, opened for search with the shared glossary."""
    if settings.backend == "milvus":
        backend = open_milvus(settings, embedder)
        return Retriever.from_settings(embedder, backend, settings, shared_glossary())
    return Retriever.from_settings(
        embedder, open_index(settings, embedder), settings, shared_glossary()
    )


def built(settings: Settings, embedder: Any, bulletins: list[Bulletin]) -> Retriever:
    build(bulletins, embedder, settings, show_progress=False)
    return opened(settings, embedder)
