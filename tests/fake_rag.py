"""The `rag` command as a process of its own, with the fake embedder: for tests of what the
command prints where and exits with, without loading the model.

    python -m tests.fake_rag ask "问题" --json
"""

from __future__ import annotations

import sys

import rag.model.embed
from rag.cli import main
from tests.conftest import FakeEmbedder


def _fake_embedder(settings, *, show_progress: bool = False) -> FakeEmbedder:
    return FakeEmbedder()


if __name__ == "__main__":
    # rag.pipeline imports load_embedder when it loads the model, so this is what it finds.
    rag.model.embed.load_embedder = _fake_embedder  # type: ignore[assignment]
    sys.exit(main())
