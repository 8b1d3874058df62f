"""The real server (api.server, as `rag serve` runs it) over an index built with the fake
embedder: `python -m tests.fake_service [--port N]`, settings from RAG_* as always. For tests
that need a real process and real sockets but not the real model."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from api.app import create_app
from api.server import serve
from rag.index.build import build_index
from rag.ingest.load import load_bulletins
from rag.settings import Settings
from tests.conftest import BULLETIN, REPO, FakeEmbedder, fake_load, free_port, serving


def build_fake_index(index_dir: Path) -> None:
    """An index of the corpus bulletin with the fake embedder, as the server here loads it."""
    build_index(
        load_bulletins([BULLETIN], REPO), FakeEmbedder(), Settings(root=REPO, index_dir=index_dir)
    )


@contextmanager
def fake_server(home: Path, index_dir: Path, **env_vars: str) -> Iterator[tuple[str, Path]]:
    """This module as a server process on a free port of 127.0.0.1 over `index_dir`, with these
    RAG_* settings; its base URL and its log (stdout and stderr). Stopped on exit."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env |= {
        "RAG_ROOT": str(REPO),
        "RAG_INDEX_DIR": str(index_dir),
        "RAG_PORT": str(port),
        "PYTHONPATH": str(REPO),
    }
    env |= env_vars
    with serving(["tests.fake_service"], env, home, port, 120) as base:
        yield base, home / "server.log"


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, help="instead of RAG_PORT")
    args = parser.parse_args()
    settings = Settings(port=args.port) if args.port else Settings()
    serve(create_app(settings, load=fake_load), settings)
