"""Open the retriever for the command line and the service: the model, then the index, built
from the corpus first when it is missing and the caller asks for that.

Failures come out as the typed errors below, never as exit codes or HTTP statuses: the command
line maps them to a message and an exit status, the service to one log line at start-up or a
409 on reload. Heavy libraries are imported inside the functions, so importing this module
(as the command line does for its error types) costs nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rag.settings import Settings

if TYPE_CHECKING:
    from rag.documents import Bulletin
    from rag.index.backend import SearchBackend
    from rag.index.build import BuildReport
    from rag.index.integrity import Checked
    from rag.index.store import LoadedIndex
    from rag.model.embed import Embedder
    from rag.search.retriever import Retriever
    from rag.verdict.topic import Glossary

# Seconds a thread holds the interpreter while another waits for it (see open_retriever).
SWITCH_INTERVAL = 0.0005


class PipelineError(Exception):
    """The retriever cannot be opened; the message says what was wrong and what to do."""


class CorpusUnusable(PipelineError):
    """The bulletins to index cannot be read, or hold nothing to index."""


class ModelUnavailable(PipelineError):
    """The embedding model cannot be loaded."""


class IndexMissing(PipelineError):
    """No index has been built yet."""


class IndexStale(PipelineError):
    """The index was built with other settings (model, chunking, format)."""


class IndexDamaged(PipelineError):
    """The index's files are there but cannot be read."""


class IndexUnreachable(PipelineError):
    """The store holding the index (a Milvus server) cannot be reached; trying again may work."""


def _quiet(note: str) -> None:
    pass


def has_index(settings: Settings) -> bool:
    """Whether a build has been pointed at as the current index."""
    return (settings.index_path / "current" / "manifest.json").is_file()


def read_bulletins(paths: Sequence[str | Path], settings: Settings) -> list[Bulletin]:
    """The bulletins under `paths` (the corpus folder when none are given)."""
    from rag.ingest.load import BulletinError, load_bulletins

    targets = [Path(p) for p in paths] or [settings.corpus_path]
    try:
        return load_bulletins(
            targets, settings.root, settings.max_bulletin_bytes, settings.max_pdf_pages
        )
    except BulletinError as exc:
        raise CorpusUnusable(str(exc)) from exc


def build(
    bulletins: list[Bulletin], embedder: Embedder, settings: Settings, *, show_progress: bool
) -> BuildReport:
    """A new build of the index from these bulletins, made current once it is complete."""
    from rag.index.build import build_index
    from rag.index.faults import BackendUnavailable
    from rag.index.store import IndexUnusable
    from rag.ingest.load import BulletinError
    from rag.verdict.topic import Glossary

    if settings.backend == "milvus":
        from rag.index.milvus.build import build_milvus as build_index
    try:
        report = build_index(bulletins, embedder, settings, show_progress=show_progress)
    except (IndexUnusable, BulletinError) as exc:
        # What build_index refuses is its input: nothing to index, or a bulletin that outlasts
        # its time limit (rag.ingest.budget).
        raise CorpusUnusable(str(exc)) from exc
    except BackendUnavailable as exc:
        raise IndexUnreachable(f"{exc}; the index there is as it was") from exc
    # Saved now, so that the service reads it compactly from the first start (Glossary.cached).
    Glossary.cached(settings.cache_dir)
    return report


def load_model(settings: Settings, *, show_progress: bool) -> Embedder:
    """The configured embedding model (the default one is built offline on first use)."""
    from rag.model.embed import load_embedder
    from rag.model.onnx_encoder import EncoderUnsupported

    try:
        return load_embedder(settings, show_progress=show_progress)
    except OSError as exc:  # what model folders and the hub raise for a name they cannot serve
        raise ModelUnavailable(f"cannot load the model {settings.model!r}: {exc}") from exc
    except EncoderUnsupported as exc:
        raise ModelUnavailable(str(exc)) from exc


def _missing(settings: Settings) -> IndexMissing:
    if settings.backend == "milvus":
        return IndexMissing(
            f"no index in Milvus at {settings.milvus_shown} (collection "
            f"{settings.milvus_collection!r}); build one with `rag index`"
        )
    return IndexMissing(f"no index at {settings.index_path}; build one with `rag index`")


def open_milvus(settings: Settings, embedder: Embedder) -> SearchBackend:
    """The index in Milvus, refused like a local one when missing or built for other settings,
    IndexUnreachable when Milvus does not answer."""
    from rag.index.faults import BackendUnavailable
    from rag.index.milvus.build import expected
    from rag.index.milvus.search import IndexRefused, MilvusBackend
    from rag.index.milvus.store import connect

    try:
        client = connect(settings)
        return MilvusBackend(client, settings, expected(settings, embedder))
    except BackendUnavailable as exc:
        raise IndexUnreachable(str(exc)) from exc
    except IndexRefused as exc:
        kinds = {"missing": IndexMissing, "stale": IndexStale}
        raise kinds.get(exc.kind, IndexDamaged)(str(exc)) from exc


def milvus_has_index(settings: Settings) -> bool:
    """Whether Milvus holds an index under the configured alias (IndexUnreachable if it cannot
    be asked)."""
    from rag.index.faults import BackendUnavailable
    from rag.index.milvus.store import connect, current_collection

    try:
        client = connect(settings)
        try:
            return current_collection(client, settings.milvus_collection) is not None
        finally:
            client.close()
    except BackendUnavailable as exc:
        raise IndexUnreachable(str(exc)) from exc
    except Exception as exc:  # a server that answers the connection but fails the call
        raise IndexUnreachable(f"Milvus at {settings.milvus_shown} failed ({exc})") from exc


def open_index(settings: Settings, embedder: Embedder) -> LoadedIndex:
    """The current index, refused when it is missing, built for other settings, or unreadable."""
    from rag.index.integrity import DamagedFile
    from rag.index.store import IndexUnusable, load_index

    root = settings.index_path
    if not has_index(settings):
        raise _missing(settings)
    try:
        return load_index(settings, model_id=embedder.model_id, dim=embedder.dim)
    except DamagedFile as exc:  # a file that is not what the build wrote: named, one line
        raise IndexDamaged(str(exc)) from exc
    except IndexUnusable as exc:
        # The manifest was there a moment ago; a rebuild may have swapped it out since.
        raise (IndexStale if has_index(settings) else IndexMissing)(str(exc)) from exc
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        # A file removed or cut short: json and numpy raise ValueError, faiss RuntimeError, a
        # passage row without its fields KeyError or TypeError.
        raise IndexDamaged(
            f"the index at {root} cannot be read ({type(exc).__name__}: {exc}); "
            "rebuild it with `rag index`"
        ) from exc


def verify_index(settings: Settings) -> Checked:
    """Every file of the current index checked against the manifest's sizes and checksums (the
    bulk arrays too, which a quick load checks by size only); nothing is rebuilt."""
    from rag.index.integrity import DamagedFile
    from rag.index.store import IndexUnusable
    from rag.index.store import verify_index as verify_current

    if not has_index(settings):
        raise _missing(settings)
    try:
        return verify_current(settings)
    except DamagedFile as exc:
        raise IndexDamaged(str(exc)) from exc
    except IndexUnusable as exc:
        raise (IndexStale if has_index(settings) else IndexMissing)(str(exc)) from exc


def sweep_abandoned(settings: Settings, say: Callable[[str], None] = _quiet) -> tuple[str, ...]:
    """Remove what killed builds left in the index folder (never a running build's); what."""
    from rag.index.staging import remove_abandoned

    swept = remove_abandoned(settings.index_path)
    if swept:
        say(f"removed {len(swept)} leftovers of killed builds from {settings.index_path}")
    return swept


def open_retriever(
    settings: Settings,
    *,
    build_if_missing: bool,
    embedder: Embedder | None = None,
    glossary: Glossary | None = None,
    show_progress: bool = False,
    say: Callable[[str], None] = _quiet,
) -> Retriever:
    """The model and the index, ready to answer questions.

    `embedder` and `glossary` are reused when given (a reload keeps the loaded model); `say`
    hears what is being done that takes a while (building a missing index). What killed builds
    left behind is removed first, so `rag serve`'s start cleans up after them.
    """
    from threadpoolctl import threadpool_limits

    from rag.index.integrity import DamagedFile
    from rag.model.batching import QueryBatcher
    from rag.search.retriever import Retriever
    from rag.verdict.topic import Glossary

    sweep_abandoned(settings, say)
    milvus = settings.backend == "milvus"
    present = milvus_has_index if milvus else has_index
    if not build_if_missing and not present(settings):
        # Refused before the model loads: seconds, for a start-up that would fail anyway.
        raise _missing(settings)
    model = embedder or load_model(settings, show_progress=show_progress)
    if build_if_missing and not present(settings):
        say(f"no index yet; building it from {settings.corpus_path}")
        build(read_bulletins([], settings), model, settings, show_progress=show_progress)
    index = open_milvus(settings, model) if milvus else open_index(settings, model)
    # A search's numpy work is matrix-vector products over a few hundred rows: one BLAS thread
    # does them as fast, where OpenBLAS's threads, spinning after each, took the cores from the
    # encoder (archive, in process: 60 ms a question with two BLAS threads, 22 ms with one).
    threadpool_limits(limits=1, user_api="blas")
    # The lexical leg runs on a thread of its own while the question is encoded
    # (rag.search.retriever); at Python's 5 ms switch interval a thread waiting for the
    # interpreter (to tokenize the question, to start the encoder) waits out the other's
    # turn. Archive, side by side (bench/README.md): one client 29.2 ms p50 at 5 ms, 23.4 at
    # 0.5 ms, 25.4 for the code before the leg moved; without the leg beside the encoder the
    # interval changed nothing.
    sys.setswitchinterval(SWITCH_INTERVAL)
    if not isinstance(model, QueryBatcher):
        # The service answers on many threads: their questions share forward passes.
        model = QueryBatcher(model, settings.query_batch)
    try:
        return Retriever.from_settings(
            model, index, settings, glossary=glossary or Glossary.cached(settings.cache_dir)
        )
    except DamagedFile as exc:  # the saved BM25 postings, read by the search backend
        raise IndexDamaged(str(exc)) from exc
