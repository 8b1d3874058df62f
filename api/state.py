"""What the service holds between requests: the settings and the current retriever."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from rag.retrieve import Retriever
from rag.settings import Settings

# Builds a retriever (model + index); the service calls it at start-up and on reload.
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


def default_loader(settings: Settings, previous: Retriever | None) -> Retriever:
    """The real model and index; on reload the loaded model and glossary are kept and only the
    index is read."""
    from rag.cli import open_retriever
    from rag.index import load_index

    if previous is None:
        return open_retriever(settings, build_if_missing=True)
    embedder = previous.embedder
    index = load_index(settings, model_id=embedder.model_id, dim=embedder.dim)
    return Retriever.from_settings(embedder, index, settings, glossary=previous.glossary)
