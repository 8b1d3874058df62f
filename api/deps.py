"""Dependencies injected into routes, so each route reads as what it does."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from api.errors import ApiError
from api.state import ServiceState
from rag.search.retriever import Retriever


def get_state(request: Request) -> ServiceState:
    return request.app.state.service


def get_retriever(state: Annotated[ServiceState, Depends(get_state)]) -> Retriever:
    if state.retriever is None:
        raise ApiError(503, "not_ready", "the model and index are still loading; retry shortly")
    return state.retriever


def require_key(request: Request, state: Annotated[ServiceState, Depends(get_state)]) -> None:
    key = state.settings.api_key
    if not key:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise ApiError(401, "missing_api_key", "this service needs 'Authorization: Bearer <key>'")
    if not hmac.compare_digest(given.strip().encode(), key.encode()):
        raise ApiError(401, "wrong_api_key", "the API key given is not valid")


State = Annotated[ServiceState, Depends(get_state)]
CurrentRetriever = Annotated[Retriever, Depends(get_retriever)]
KeyChecked = Depends(require_key)
