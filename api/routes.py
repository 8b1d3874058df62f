"""The HTTP routes: search, documents, health, info and reload.

Two routers: `router` for every route that returns bulletin text or the inventory of the
bulletins (it checks the API key once one is set), `open_routes` for health only, which says
nothing of them. A new route goes on `router` unless it can be shown to the world
(tests/test_api_security.py walks every route and holds each to that).
"""

from __future__ import annotations

import time
from importlib.metadata import version
from typing import Any

from fastapi import APIRouter, Query, Request, Response

from api.deps import CurrentRetriever, KeyChecked, SearchSlot, State
from api.errors import ApiError
from api.schemas import EXAMPLE_QUERY, ISO_DATE, ErrorResponse, SearchFilters, SearchRequest
from rag.mode import MODES, as_mode
from rag.pipeline import PipelineError
from rag.response import SearchResponse, search_response
from rag.search.retriever import Filters, QueryError, Retriever
from rag.settings import Settings

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 415, 422, 503)
}
router = APIRouter(dependencies=[KeyChecked])
# Health for load balancers and probes: a status word, nothing from the bulletins.
open_routes = APIRouter()


def _search(
    retriever: Retriever,
    settings: Settings,
    query: str,
    top_k: int,
    filters: SearchFilters | None,
    mode: str | None,
) -> Response:
    started = time.perf_counter()
    query = query.strip()
    if not query:
        raise ApiError(422, "empty_query", "the query is empty; send a question")
    if len(query) > settings.max_query_chars:
        raise ApiError(
            422,
            "query_too_long",
            f"the query has {len(query)} characters; the limit is {settings.max_query_chars}",
        )
    try:
        chosen = None if mode is None else as_mode(mode)
    except ValueError as exc:
        raise ApiError(422, "invalid_field", f"'mode' {exc}") from exc
    try:
        answer = retriever.answer(
            query,
            k=top_k,
            filters=Filters(**filters.model_dump()) if filters else None,
            mode=chosen,
        )
    except QueryError as exc:
        raise ApiError(422, "invalid_query", str(exc)) from exc
    took_ms = round((time.perf_counter() - started) * 1000, 2)
    # Serialised here by pydantic-core, in one call: returned as a model, FastAPI would
    # validate it field by field once more and encode it through Python dicts (about a
    # millisecond for five results, on the one thread every request needs).
    body = search_response(query, answer, took_ms, retriever.backend.document)
    return Response(body.model_dump_json(), media_type="application/json")


# The key is checked (by the router) before a slot is taken: no key, no slot held.
@router.post(
    "/v1/search", response_model=SearchResponse, responses=ERRORS, dependencies=[SearchSlot]
)
def search(
    body: SearchRequest, request: Request, retriever: CurrentRetriever, state: State
) -> Response:
    """Ranked passages that answer the question, each with its citation."""
    return _search(retriever, state.settings, body.query, body.top_k, body.filters, body.mode)


@router.get(
    "/v1/search", response_model=SearchResponse, responses=ERRORS, dependencies=[SearchSlot]
)
def search_get(
    retriever: CurrentRetriever,
    state: State,
    q: str = Query(description="the question", examples=[EXAMPLE_QUERY]),
    top_k: int = Query(5, ge=1, le=50),
    mode: str | None = Query(None, description=", ".join(MODES)),
    region: str | None = Query(None, description="only articles about this region"),
    doc_id: str | None = Query(None, description="only this bulletin"),
    article: int | None = Query(None, ge=1, description="only this article of the bulletin"),
    date_from: str | None = Query(None, pattern=ISO_DATE, description="ISO date, inclusive"),
    date_to: str | None = Query(None, pattern=ISO_DATE, description="ISO date, inclusive"),
) -> Response:
    """The same search for curl and the browser: /v1/search?q=…&top_k=…&region=…"""
    given = {
        "region": region,
        "doc_id": doc_id,
        "article": article,
        "date_from": date_from,
        "date_to": date_to,
    }
    filters = SearchFilters(**given) if any(v is not None for v in given.values()) else None
    return _search(retriever, state.settings, q, top_k, filters, mode)


@router.get("/v1/documents/{doc_id}", responses=ERRORS)
def document(doc_id: str, retriever: CurrentRetriever) -> dict[str, Any]:
    """A bulletin's source text and its articles, to show a citation in context."""
    found = retriever.backend.document(doc_id)
    if found is None:
        raise ApiError(404, "unknown_document", f"no bulletin with doc_id {doc_id!r}")
    return found


@open_routes.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@open_routes.get("/readyz", responses=ERRORS)
def readyz(state: State) -> dict[str, str]:
    """The loaded index answers: a probe search ran through it lately (api.readiness)."""
    outcome = state.readiness()
    if not outcome.ok:
        raise ApiError(503, "not_ready", str(outcome.failure), headers={"Retry-After": "5"})
    return {"status": "ready"}


@router.get("/v1/info", responses=ERRORS)
def info(retriever: CurrentRetriever) -> dict[str, Any]:
    """Corpus size, model, index build time and version."""
    manifest = retriever.backend.manifest
    return {
        "version": version("bulletin-rag"),
        "model": manifest["model_id"],
        "dim": manifest["dim"],
        "index_built_at": manifest["built_at"],
        "index_kind": manifest["index_kind"],
        "search_mode": retriever.mode,
        "corpus": manifest["counts"],
        "chunker": manifest["chunker"],
    }


@router.post("/v1/admin/reload", responses={**ERRORS, 409: {"model": ErrorResponse}})
def reload(state: State) -> dict[str, Any]:
    """Load the index as it is now on disk and swap it in without a restart."""
    try:
        fresh = state.reload()
    except PipelineError as exc:
        raise ApiError(
            409, "index_unusable", f"{exc}; the previous index stays in service"
        ) from exc
    return {"status": "reloaded", "index_built_at": fresh.backend.manifest["built_at"]}
