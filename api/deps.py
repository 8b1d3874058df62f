"""Dependencies injected into routes, so each route reads as what it does."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError
from api.state import ServiceState
from rag.search.retriever import Retriever

# Declared through FastAPI's security class so the OpenAPI schema shows the scheme; the errors
# stay the service's own (auto_error=False), so a missing and a wrong key are told apart.
bearer = HTTPBearer(
    auto_error=False,
    description="the service's API key (RAG_API_KEY), when one is set",
)


# The dependencies are coroutines although none of them waits on anything: FastAPI runs a plain
# function on its thread pool, and each such hop (three a search) costs a thread hand-off that,
# with 32 searches in flight, queues behind them.
async def get_state(request: Request) -> ServiceState:
    return request.app.state.service


async def get_retriever(state: Annotated[ServiceState, Depends(get_state)]) -> Retriever:
    if state.retriever is None:
        # Still loading, or (RAG_BACKEND=milvus) waiting for Milvus to answer: the probe says.
        raise ApiError(
            503,
            "not_ready",
            f"{state.probed.failure or 'the index is not loaded'}; retry shortly",
            headers={"Retry-After": "5"},
        )
    return state.retriever


async def require_key(
    state: Annotated[ServiceState, Depends(get_state)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    key = state.settings.api_key
    if not key:
        return
    if credentials is None:
        raise ApiError(401, "missing_api_key", "this service needs 'Authorization: Bearer <key>'")
    # Constant time, so the answer's timing says nothing about how much of a guess was right.
    if not hmac.compare_digest(credentials.credentials.strip().encode(), key.encode()):
        raise ApiError(401, "wrong_api_key", "the API key given is not valid")


async def search_slot(request: Request) -> AsyncIterator[None]:
    """One of the service's search slots, held while the search runs (api.limits)."""
    async with request.app.state.search_slots.held():
        yield


State = Annotated[ServiceState, Depends(get_state)]
CurrentRetriever = Annotated[Retriever, Depends(get_retriever)]
KeyChecked = Depends(require_key)
SearchSlot = Depends(search_slot)
