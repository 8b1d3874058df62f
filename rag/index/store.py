"""The index on disk: passages with provenance, their vectors, a FAISS index and a manifest.

Layout: `<index_dir>/current` is a symlink to `<index_dir>/builds/<id>/`. A build writes a new
folder and then swaps the symlink with one atomic rename (rag.index.build), so an interrupted
build leaves the previous index in place and readers never see a half-written one. This module
reads the current build, and refuses one that does not fit the running settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.documents import Passage, Span
from rag.settings import Settings

FORMAT = 3
# Bumped whenever parsing or chunking changes what passages a bulletin yields.
PARSER_VERSION = 3


class IndexUnusable(RuntimeError):
    """The index is missing or does not fit the running settings; the message says what to do."""


@dataclass
class LoadedIndex:
    """An index in memory: passages, their vectors, the FAISS index and the manifest."""

    path: Path
    manifest: dict[str, Any]
    passages: list[Passage]
    vectors: np.ndarray
    sentence_vectors: np.ndarray
    sentences: np.ndarray  # rows of (passage index, start, end) into the passage's text
    faiss_index: Any
    documents: dict[str, dict[str, Any]]  # doc_id -> document_json()


def chunker_settings(settings: Settings) -> dict[str, Any]:
    return {
        "tiktoken_encoding": settings.tiktoken_encoding,
        "chunk_tokens": settings.chunk_tokens,
        "embed_context": settings.embed_context,
        "sentence_vectors": settings.sentence_vectors,
        "parser_version": PARSER_VERSION,
    }


def load_index(settings: Settings, *, model_id: str, dim: int) -> LoadedIndex:
    """The current build, refused with a clear message when it does not fit the settings."""
    import faiss

    root = settings.index_path
    current = root / "current"
    manifest_path = current / "manifest.json"
    if not manifest_path.is_file():
        raise IndexUnusable(f"no index at {root}; build one with `rag index`")
    path = current.resolve()
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    expected = {"model_id": model_id, "dim": dim, "chunker": chunker_settings(settings)}
    found = {key: manifest.get(key) for key in expected}
    if manifest.get("format") != FORMAT or found != expected:
        differences = (
            ", ".join(
                f"{key}: index has {found[key]!r}, settings want {expected[key]!r}"
                for key in expected
                if found[key] != expected[key]
            )
            or f"index format {manifest.get('format')} (this version reads {FORMAT})"
        )
        raise IndexUnusable(
            f"the index at {root} does not match the running settings ({differences}); "
            "rebuild it with `rag index`"
        )
    passages = []
    with (path / "passages.jsonl").open(encoding="utf-8") as rows:
        for line in rows:
            row = json.loads(line)
            row["spans"] = tuple(Span(**s) for s in row["spans"])
            passages.append(Passage(**row))
    bulletins = json.loads((path / "bulletins.json").read_text(encoding="utf-8"))
    return LoadedIndex(
        path=path,
        manifest=manifest,
        passages=passages,
        vectors=np.load(path / "vectors.npy"),
        sentence_vectors=np.load(path / "sentence_vectors.npy"),
        sentences=np.load(path / "sentences.npy"),
        faiss_index=faiss.read_index(str(path / "vectors.faiss")),
        documents=bulletins,
    )
