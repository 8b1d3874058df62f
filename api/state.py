"""What the service holds between requests: the settings and the current retriever."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from rag.pipeline import open_retriever
from rag.search.retriever import Retriever
from rag.settings import Settings

# Builds a retriever (model + index); the service calls it at start-up and on reload. It raises
# rag.pipeline's errors, which the service reports as one line (start-up) or a 409 (reload).
RetrieverLoader = Callable[[Settings, Retriever | None], Retriever]


@dataclass
class ServiceState:
    settings: Settings
    load: RetrieverLoader
    retriever: Retriever | None = None
    _reload_lock: threading.Lock = field(default_factory=threading.Lock)

    def reload(self) -> Retriever:
        """Load the current index beside the old one, then swap in one assignment.

        Requests already running keep the retriever they started with; new ones get the new
        one; none sees a half-loaded index.
        """
        with self._reload_lock:
            fresh = self.load(self.settings, self.retriever)
            self.retriever = fresh
            return fresh


def _to_stderr(note: str) -> None:
    # Where `rag serve` has always said it is building a missing index: the server's own console.
    print(note, file=sys.stderr)


def service_loader(*, build_if_missing: bool = True) -> RetrieverLoader:
    """The real model and index (rag.pipeline); on reload the loaded model and glossary are kept
    and only the index is read, never built."""

    def load(settings: Settings, previous: Retriever | None) -> Retriever:
        if previous is None:
            return open_retriever(
                settings,
                build_if_missing=build_if_missing,
                show_progress=sys.stderr.isatty(),
                say=_to_stderr,
            )
        return open_retriever(
            settings,
            build_if_missing=False,
            embedder=previous.embedder,
            glossary=previous.glossary,
        )

    return load


default_loader = service_loader()
