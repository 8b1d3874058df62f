"""The index on disk: passages with provenance, their vectors, a FAISS index and a manifest.

Layout: `<index_dir>/current` is a symlink to `<index_dir>/builds/<id>/`. A build writes a new
folder and then swaps the symlink with one atomic rename (rag.index.build), so an interrupted
build leaves the previous index in place and readers never see a half-written one. This module
reads the current build, and refuses one that does not fit the running settings, or whose files
are not what the build wrote (rag.index.integrity: one line naming the file, never a traceback).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.documents import Passage, Span
from rag.index.integrity import (
    MANIFEST,
    Checked,
    DamagedFile,
    check_files,
    check_seal,
    load_array,
    read_manifest,
)
from rag.settings import Settings

# 4: the manifest lists every file with its size and checksum, and is sealed.
FORMAT = 4
# Bumped whenever parsing or chunking changes what passages a bulletin yields, or what is
# stored of a bulletin (5: a PDF's pages and layout, for its citations' pages and boxes;
# 6: a web page's kicker, headline and byline read as a printed page's, its site and address).
PARSER_VERSION = 6


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


def current_build(settings: Settings) -> tuple[Path, dict[str, Any]]:
    """The current build's folder and its manifest, refused when there is none, when it is of
    another format, or when the manifest is damaged."""
    root = settings.index_path
    manifest_path = root / "current" / MANIFEST
    if not manifest_path.is_file():
        raise IndexUnusable(f"no index at {root}; build one with `rag index`")
    path = manifest_path.resolve().parent
    manifest = read_manifest(path / MANIFEST)
    if manifest.get("format") != FORMAT:
        raise IndexUnusable(
            f"the index at {root} does not match the running settings (index format "
            f"{manifest.get('format')}, this version reads {FORMAT}); rebuild it with `rag index`"
        )
    check_seal(manifest, path / MANIFEST)
    return path, manifest


def verify_index(settings: Settings) -> Checked:
    """Check every file of the current build against its size and checksum (the bulk arrays
    too, which a quick load checks by size only); what was checked. Nothing is rebuilt."""
    path, manifest = current_build(settings)
    return check_files(path, manifest.get("contents"), full=True)


def load_index(settings: Settings, *, model_id: str, dim: int) -> LoadedIndex:
    """The current build, refused with a clear message when it does not fit the settings, and
    with rag.index.integrity.DamagedFile when one of its files is not what the build wrote."""
    root = settings.index_path
    path, manifest = current_build(settings)
    expected = {"model_id": model_id, "dim": dim, "chunker": chunker_settings(settings)}
    found = {key: manifest.get(key) for key in expected}
    if found != expected:
        differences = ", ".join(
            f"{key}: index has {found[key]!r}, settings want {expected[key]!r}"
            for key in expected
            if found[key] != expected[key]
        )
        raise IndexUnusable(
            f"the index at {root} does not match the running settings ({differences}); "
            "rebuild it with `rag index`"
        )
    check_files(path, manifest.get("contents"), full=settings.index_checks == "full")
    passages = _read_passages(path / "passages.jsonl")
    n = len(passages)
    if n != manifest.get("counts", {}).get("passages"):
        raise DamagedFile(path / "passages.jsonl", f"{n} passages, the manifest counts another")
    sentences = load_array(path / "sentences.npy", np.int64, (None, 3))
    _check_sentences(sentences, passages, path / "sentences.npy")
    vectors = load_array(path / "vectors.npy", np.float32, (n, dim))
    sentence_vectors = load_array(path / "sentence_vectors.npy", np.float32, (len(sentences), dim))
    for name, array in (("vectors.npy", vectors), ("sentence_vectors.npy", sentence_vectors)):
        # A garbled exponent makes a NaN or an infinity, which would rank first or nowhere.
        if not np.isfinite(array).all():
            raise DamagedFile(path / name, "it holds values that are not finite")
    return LoadedIndex(
        path=path,
        manifest=manifest,
        passages=passages,
        vectors=vectors,
        sentence_vectors=sentence_vectors,
        sentences=sentences,
        faiss_index=_read_faiss(path / "vectors.faiss", n, dim),
        documents=_read_json(path / "bulletins.json"),
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise DamagedFile(path, f"{type(exc).__name__}: {exc}") from exc


def _read_passages(path: Path) -> list[Passage]:
    passages = []
    try:
        with path.open(encoding="utf-8") as rows:
            for number, line in enumerate(rows, 1):
                try:
                    row = json.loads(line)
                    row["spans"] = tuple(Span(**s) for s in row["spans"])
                    passages.append(Passage(**row))
                except (ValueError, KeyError, TypeError) as exc:
                    raise DamagedFile(path, f"line {number}: {type(exc).__name__}: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DamagedFile(path, f"{type(exc).__name__}: {exc}") from exc
    return passages


def _check_sentences(sentences: np.ndarray, passages: list[Passage], path: Path) -> None:
    """Rows of (passage, start, end) grouped by passage, each inside its passage's text:
    search indexes passages and slices their texts by these without looking again."""
    if not len(sentences):
        return
    owner, start, end = sentences[:, 0], sentences[:, 1], sentences[:, 2]
    if owner.min() < 0 or owner.max() >= len(passages) or (np.diff(owner) < 0).any():
        raise DamagedFile(path, "its rows name passages out of order or out of range")
    lengths = np.array([len(p.text) for p in passages], dtype=np.int64)[owner]
    if (start < 0).any() or (end < start).any() or (end > lengths).any():
        raise DamagedFile(path, "its rows reach outside their passages")


def _read_faiss(path: Path, n: int, dim: int) -> Any:
    import faiss

    try:
        index = faiss.read_index(str(path))
    except RuntimeError as exc:  # what faiss raises for a file it cannot parse
        raise DamagedFile(path, f"{type(exc).__name__}: {exc}") from exc
    if index.ntotal != n or index.d != dim:
        raise DamagedFile(path, f"{index.ntotal} vectors of {index.d}, expected {n} of {dim}")
    return index
