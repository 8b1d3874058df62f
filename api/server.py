"""Run the service under uvicorn with bounds on what slow or many clients can hold.

uvicorn bounds how long an idle keep-alive connection stays, but not how long a client may
take to send a request: a connection that sends nothing, or a head or body a byte at a time,
is kept forever, and enough of them exhaust the process's open files (seen at about 20,000,
when every other client timed out). Two small additions close that:

- a deadline per request, from its first byte (or the connection's opening) until it has been
  wholly received, head and body; past it the connection is closed. It lives in the HTTP
  protocol (a subclass of uvicorn's h11 one, driven by h11's own state) rather than in ASGI
  middleware, because a request head is never seen by the app until it is complete, and so one
  mechanism covers head and body on every route;
- a cap on open connections, checked as each is accepted: one over it is answered 503 with
  Retry-After and closed at once, so the open-file limit is never reached. (uvicorn's own
  limit_concurrency counts the same connections but answers only once a request head has
  arrived, which a slow client never finishes, and without Retry-After.)

Concurrent searches are capped in the app (api.limits), log lines in api.logs.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import resource
from typing import Any

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import H11Protocol

from api.logs import RateLimit
from rag.settings import Settings

log = logging.getLogger("api")

# Open files the process needs besides its connections: index and model files, the log, the
# thread pool's, the listening socket. Generous on purpose.
RESERVED_FILES = 256
RETRY_AFTER = 1


def _refusal(max_connections: int) -> bytes:
    body = json.dumps(
        {
            "error": {
                "code": "too_many_connections",
                "message": f"the service holds its limit of {max_connections} connections; "
                f"retry in {RETRY_AFTER} s",
            }
        }
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "content-type: application/json\r\n"
        f"retry-after: {RETRY_AFTER}\r\n"
        "connection: close\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a receive deadline per request and a connection cap; the
    class attributes are set by `guarded_protocol`."""

    request_timeout: float = 10.0
    max_connections: int = 2048
    refusal: bytes = _refusal(2048)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            # Answered before it asks: the request is never read, the file freed at once.
            log.warning("refused a connection: %d are open", len(self.connections) - 1)
            transport.write(self.refusal)
            transport.close()
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        # A request begins: its first bytes arrive, or a pipelined one was already buffered.
        if self._deadline is None and self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
            self._arm()
        super().data_received(data)
        if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
            self._disarm()  # wholly received: from here on the app's time, not the client's

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(self.request_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        # Not logged: a slow client is routine, and a flood of them must not flood the log.
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(request_timeout: float, max_connections: int) -> type[GuardedH11Protocol]:
    """The protocol class with these bounds (uvicorn instantiates the class it is given)."""
    return type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {
            "request_timeout": request_timeout,
            "max_connections": max_connections,
            "refusal": _refusal(max_connections),
        },
    )


def fit_open_files(max_connections: int) -> int:
    """The connection cap the process can honour: the soft open-file limit is raised towards
    the hard one to fit `max_connections`, and the cap lowered when even that is too few."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + RESERVED_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        soft = raised
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return max_connections
    fitted = max(1, soft - RESERVED_FILES)
    log.warning(
        "RAG_MAX_CONNECTIONS=%d does not fit the open-file limit (%d); serving at most %d",
        max_connections,
        soft,
        fitted,
    )
    return fitted


def log_config(settings: Settings) -> dict[str, Any]:
    """uvicorn's logging, with the service's own loggers and one rate limit over every line."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {
        "rate": {
            "()": RateLimit,
            "per_second": settings.log_lines_per_second,
            "burst": settings.log_burst_lines,
        }
    }
    for handler in config["handlers"].values():
        handler["filters"] = ["rate"]
    # asyncio reports accept() failures, one line with a traceback each.
    for name, level in (("api", "INFO"), ("asyncio", "WARNING")):
        config["loggers"][name] = {"handlers": ["default"], "level": level, "propagate": False}
    return config


def serve(app: FastAPI, settings: Settings) -> None:
    """Serve `app` on the settings' host and port until interrupted."""
    connections = fit_open_files(settings.max_connections)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        log_config=log_config(settings),
        http=guarded_protocol(settings.request_timeout, connections),
    )
