"""The FastAPI application: model and index loaded once at start-up, injected into routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response, install_error_handlers
from api.limits import SearchSlots
from api.routes import open_routes, router
from api.state import RetrieverLoader, ServiceState, default_loader
from api.widget import router as widget_router
from rag.pipeline import PipelineError
from rag.settings import Settings


class BodyLimit:
    """Refuse request bodies over `limit` bytes (413) before they are parsed, and non-JSON posts."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        too_big = error_response(
            413, "body_too_large", f"the request body is over the {self.limit}-byte limit"
        )
        if declared and declared.isdigit() and int(declared) > self.limit:
            await too_big(scope, receive, send)
            return
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if scope["path"].startswith("/v1/search") and content_type != b"application/json":
            wrong = error_response(
                415,
                "unsupported_media_type",
                "send the body as JSON (Content-Type: application/json)",
            )
            await wrong(scope, receive, send)
            return
        # A body without Content-Length (chunked) is counted as it arrives.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away (or api.server cut it off for sending too slowly):
                # there is no one to answer.
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await too_big(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


class StartupFailure:
    """Report a start-up the user can mend (no index, a stale one, no model) as its one-line
    message, where Starlette would hand the server a traceback of its lifespan to log."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def sending(message: Message) -> None:
            # Held back until the failure is known: Starlette sends it, then raises.
            if message["type"] == "lifespan.startup.failed":
                held.append(message)
            else:
                await send(message)

        try:
            await self.app(scope, receive, sending)
        except PipelineError as exc:
            line = f"the service cannot start: {exc}"
            await send({"type": "lifespan.startup.failed", "message": line})
        except BaseException:
            for failure in held:
                await send(failure)
            raise


def create_app(settings: Settings | None = None, load: RetrieverLoader = default_loader) -> FastAPI:
    """The service; `load` builds the retriever (tests pass one with a fake embedder)."""
    settings = settings or Settings()
    state = ServiceState(settings=settings, load=load)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Loading takes seconds; off the event loop, so /healthz answers meanwhile.
        await run_in_threadpool(state.start)
        yield
        state.stop()

    app = FastAPI(
        title="bulletin retrieval",
        version=version("bulletin-rag"),
        description="Question answering over Chinese bulletins by retrieval only: every word "
        "returned is a word of a bulletin, with an exact citation.",
        lifespan=lifespan,
    )
    app.state.service = state
    app.state.search_slots = SearchSlots(
        settings.max_concurrent_searches, settings.search_wait_seconds
    )
    install_error_handlers(app)
    app.include_router(open_routes)
    app.include_router(router)
    app.include_router(widget_router)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(StartupFailure)
    return app
