"""Every error leaves the service as JSON {"error": {"code", "message"}}: a 4xx for the request,
a 503 when the index store cannot be reached."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.index.faults import BackendUnavailable

log = logging.getLogger("api")


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers


def error_response(
    status: int, code: str, message: str, headers: dict | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _describe(errors: list[dict]) -> tuple[int, str, str]:
    """One readable sentence for pydantic's validation errors, and a stable code."""
    first = errors[0]
    kind = first.get("type", "")
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
    if kind == "json_invalid":
        return 400, "invalid_json", "the request body is not valid JSON"
    if kind in ("model_attributes_type", "dict_type") and not where:
        return 422, "invalid_body", 'the request body must be a JSON object like {"query": "…"}'
    if kind == "extra_forbidden":
        return 422, "unknown_field", f"unknown field '{where}'"
    if kind == "missing" and not where:
        return 422, "missing_field", 'the request body is empty; send {"query": "…"}'
    if kind == "missing":
        return 422, "missing_field", f"'{where}' is required"
    return 422, "invalid_field", f"'{where}': {first.get('msg', 'invalid value')}"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return error_response(exc.status, exc.code, exc.message, headers or None)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, code, message = _describe(list(exc.errors()))
        return error_response(status, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        message = "no such route" if exc.status_code == 404 else str(exc.detail)
        return error_response(exc.status_code, codes.get(exc.status_code, "http_error"), message)

    @app.exception_handler(BackendUnavailable)
    async def unreachable(request: Request, exc: BackendUnavailable) -> JSONResponse:
        # Milvus lost mid-request: the service is fine, its store is not; /readyz looks again.
        request.app.state.service.doubt()
        return error_response(
            503, "index_unreachable", f"{exc}; retry shortly", {"Retry-After": "5"}
        )

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        # A search that crashes may mean the index no longer answers: /readyz looks again.
        request.app.state.service.doubt()
        return error_response(
            500, "internal_error", "the service failed on this request; it is logged"
        )
