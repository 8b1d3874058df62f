"""What the service holds between requests: the settings and the current retriever."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from api.readiness import Probe, probe
from rag.index.faults import BackendUnavailable
from rag.pipeline import IndexDamaged, IndexUnreachable, open_retriever
from rag.search.retriever import Retriever
from rag.settings import Settings

# Builds a retriever (model + index); the service calls it at start-up and on reload. It raises
# rag.pipeline's errors, which the service reports as one line (start-up) or a 409 (reload).
RetrieverLoader = Callable[[Settings, Retriever | None], Retriever]

LOADING = Probe(False, "the model and index are still loading")


@dataclass
class ServiceState:
    settings: Settings
    load: RetrieverLoader
    retriever: Retriever | None = None
    # The last probe of the retriever in service, and when it ran (time.monotonic()).
    probed: Probe = LOADING
    probed_at: float = float("-inf")
    _reload_lock: threading.Lock = field(default_factory=threading.Lock)
    # Set when the service shuts down: the threads that retry and follow Milvus stop.
    _stopping: threading.Event = field(default_factory=threading.Event)
    _probe_lock: threading.Lock = field(default_factory=threading.Lock)

    def reload(self) -> Retriever:
        """Load the current index beside the old one, probe it, then swap in one assignment.

        Requests already running keep the retriever they started with; new ones get the new
        one; none sees a half-loaded index. An index that loads but cannot answer the probe is
        refused like one that cannot be read (IndexDamaged), and the old one stays.
        """
        with self._reload_lock:
            fresh = self.load(self.settings, self.retriever)
            outcome = probe(fresh)
            if not outcome.ok and outcome.unreachable:
                # Milvus went away between the load and the probe: try again, not rebuild.
                raise IndexUnreachable(str(outcome.failure))
            if not outcome.ok:
                where = (
                    f"Milvus at {self.settings.milvus_shown}"
                    if self.settings.backend == "milvus"
                    else str(self.settings.index_path)
                )
                raise IndexDamaged(
                    f"the index at {where} loaded but cannot answer: "
                    f"{outcome.failure}; rebuild it with `rag index`"
                )
            with self._probe_lock:
                self.retriever = fresh
                self.probed, self.probed_at = outcome, time.monotonic()
            return fresh

    def start(self) -> None:
        """The first load, at start-up. A store that cannot be reached yet (Milvus starting, or
        down) does not stop the service: it starts not ready, says why at /readyz, and tries
        again every `milvus_retry_seconds` until the load succeeds. Every other failure stops
        the start-up, as it would stop `rag serve`."""
        if self.settings.backend == "milvus":
            threading.Thread(target=self._follow, name="index-follow", daemon=True).start()
        try:
            self.reload()
        except IndexUnreachable as exc:
            self._not_ready(exc)
            threading.Thread(target=self._retry, name="index-retry", daemon=True).start()

    def _follow(self) -> None:
        """Load the new build when a `rag index` elsewhere has moved Milvus's alias to it: the
        service follows within `milvus_retry_seconds`, before the next build may write into the
        side it reads (`milvus_switch_grace_seconds`, rag.index.milvus.build)."""
        refused: str | None = None  # a new build that could not be loaded: not tried again
        while not self._stopping.wait(self.settings.milvus_retry_seconds):
            retriever = self.retriever
            moved = getattr(retriever.backend, "moved", None) if retriever else None
            target = None
            try:
                target = moved() if moved is not None else None
                if target is None or target == refused:
                    continue
                self.reload()
                refused = None
                print("the index in Milvus was rebuilt; the new build is in service",
                      file=sys.stderr)  # fmt: skip
            except (IndexUnreachable, BackendUnavailable) as exc:  # away for now: tried again
                print(f"the new build in Milvus cannot be loaded yet: {exc}", file=sys.stderr)
            except Exception as exc:  # refused (damaged, other settings): the old one stays
                refused = target
                print(f"the new build in Milvus is refused, the old one stays: {exc}",
                      file=sys.stderr)  # fmt: skip

    def stop(self) -> None:
        self._stopping.set()

    def _not_ready(self, exc: Exception) -> None:
        wait = self.settings.milvus_retry_seconds
        self.probed = Probe(False, f"{exc}; trying again every {wait:g} s")
        print(f"the service is not ready: {self.probed.failure}", file=sys.stderr)

    def _retry(self) -> None:
        while self.retriever is None:
            if self._stopping.wait(self.settings.milvus_retry_seconds):
                return
            try:
                self.reload()
            except Exception as exc:  # still away, or answering with no usable index yet (one
                # being built there): said, and tried again
                self._not_ready(exc)
        print("the service is ready: the index store answers", file=sys.stderr)

    def readiness(self) -> Probe:
        """Whether the retriever in service answers: the last probe, repeated when older than
        `ready_probe_seconds` (or doubted); one probe at a time, others read the last one."""
        retriever = self.retriever
        if retriever is None:
            return self.probed
        stale = time.monotonic() - self.probed_at > self.settings.ready_probe_seconds
        if stale and self._probe_lock.acquire(blocking=False):
            try:
                outcome = probe(retriever)
                if retriever is self.retriever:  # not swapped out meanwhile by a reload
                    self.probed, self.probed_at = outcome, time.monotonic()
            finally:
                self._probe_lock.release()
        return self.probed

    def doubt(self) -> None:
        """A request failed unexpectedly: the next /readyz probes again instead of trusting
        the last probe."""
        self.probed_at = float("-inf")


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
