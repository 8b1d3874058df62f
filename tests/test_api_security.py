"""The API key guards every route that returns bulletin text or its inventory.

Walks every route the app has, so a route added later is held to the rule without anyone
remembering to add it here: either it is on the open list and says nothing of the bulletins,
or it answers 401 without the key and with a wrong one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Route

from api.app import create_app
from rag.index.build import build_index
from rag.ingest.load import load_bulletins
from rag.settings import Settings
from tests.conftest import FakeEmbedder, fake_load

KEY = "k3y-for-tests"
# A bulletin made up for this test, so anything of it in an answer can only come from the index
# (the bundled bulletin's doc_id is also an example in the OpenAPI schema).
DOC_ID = "secret_bulletin"
HEADLINE = "青海建设零碳示范园区"
MARKER = "零碳示范园区年产绿电四十亿千瓦时"
SECRET = (
    f"{HEADLINE}\n本报记者 赵六\n"
    f"青海省日前公布规划，{MARKER}，并配套建设储能电站。\n"
    "园区还将引进一批新能源装备制造企业。\n"
)
# Routes anyone may call: health, the widget's static files and the API's own description.
OPEN = {"/healthz", "/readyz", "/", "/widget.js", "/openapi.json", "/docs", "/redoc"}
OPEN |= {"/docs/oauth2-redirect"}
# What a route's answer must not contain when it is open: the bulletin's id, headline, text.
TELLTALES = (DOC_ID, HEADLINE, MARKER, "青海", "储能电站")


load = fake_load  # the service's loading, with the fake embedder (tests/conftest.py)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("security")
    corpus = home / "corpus"
    corpus.mkdir()
    (corpus / f"{DOC_ID}.txt").write_text(SECRET, encoding="utf-8")
    settings = Settings(root=home, index_dir=home / "index")
    build_index(load_bulletins([corpus], home), FakeEmbedder(), settings)
    return home


def _settings(home: Path, **overrides) -> Settings:
    return Settings(root=home, index_dir=home / "index", **overrides)


@pytest.fixture(scope="module")
def keyed(home) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(home, api_key=KEY), load=load)) as client:
        yield client


def _routes(routes: list, prefix: str = "") -> Iterator[tuple[str, Route]]:
    """Every route with its full path, inside included routers too (FastAPI keeps an included
    router as one entry of app.routes; its routes are under `original_router`)."""
    for route in routes:
        if hasattr(route, "original_router"):
            inner = prefix + route.include_context.prefix
            yield from _routes(route.original_router.routes, inner)
            continue
        assert isinstance(route, APIRoute | Route), f"a route of an unknown kind: {route!r}"
        yield prefix + route.path, route


def _calls(app) -> list[tuple[str, str, str]]:
    """(route path, method, a concrete URL) for every method of every route of the app."""
    calls = []
    for path, route in _routes(app.routes):
        url = path.replace("{doc_id}", DOC_ID)
        assert "{" not in url, f"give the test a value for the parameters of {path}"
        calls += [(path, method, url) for method in sorted(route.methods or ())]
    return calls


def _ask(client: TestClient, method: str, url: str, headers: dict[str, str]) -> httpx.Response:
    if method in ("POST", "PUT", "PATCH"):
        body = json.dumps({"query": "青海零碳园区"})
        headers = {**headers, "Content-Type": "application/json"}
        return client.request(method, url, content=body, headers=headers)
    params = {"q": "青海零碳园区"} if "search" in url else None
    return client.request(method, url, params=params, headers=headers)


def test_the_walk_covers_the_routes_that_matter(keyed):
    seen = {(path, method) for path, method, _ in _calls(keyed.app)}
    expected = {
        ("/v1/search", "GET"),
        ("/v1/search", "POST"),
        ("/v1/documents/{doc_id}", "GET"),
        ("/v1/info", "GET"),
        ("/v1/admin/reload", "POST"),
        ("/healthz", "GET"),
        ("/readyz", "GET"),
    }
    assert expected <= seen


def test_every_route_is_open_and_silent_or_keyed(keyed):
    opened, guarded = [], []
    for path, method, url in _calls(keyed.app):
        if path in OPEN:
            answer = _ask(keyed, method, url, {})
            assert answer.status_code < 400, (method, url, answer.status_code)
            for telltale in TELLTALES:
                assert telltale not in answer.text, (method, url, telltale)
            opened.append(url)
            continue
        missing = _ask(keyed, method, url, {})
        assert missing.status_code == 401, (method, url, missing.status_code)
        wrong = _ask(keyed, method, url, {"Authorization": f"Bearer {KEY}x"})
        assert wrong.status_code == 401, (method, url, wrong.status_code)
        for answer in (missing, wrong):
            assert answer.headers["www-authenticate"] == "Bearer"
            if method != "HEAD":
                assert answer.json()["error"]["code"] in ("missing_api_key", "wrong_api_key")
                for telltale in TELLTALES:
                    assert telltale not in answer.text, (method, url, telltale)
        # And the key is all it takes: the same call with it is not refused.
        right = _ask(keyed, method, url, {"Authorization": f"Bearer {KEY}"})
        assert right.status_code == 200, (method, url, right.text)
        guarded.append(url)
    assert {"/healthz", "/readyz"} <= set(opened)
    assert {"/v1/search", f"/v1/documents/{DOC_ID}", "/v1/info", "/v1/admin/reload"} <= set(guarded)


def test_keyed_routes_carry_bulletin_text_with_the_key(keyed):
    # The walk's premise: what the keyed routes guard is the bulletins themselves.
    auth = {"Authorization": f"Bearer {KEY}"}
    document = keyed.get(f"/v1/documents/{DOC_ID}", headers=auth)
    assert MARKER in document.json()["text"]
    info = keyed.get("/v1/info", headers=auth).json()
    assert info["corpus"]["files"] == 1
    found = keyed.get("/v1/search", params={"q": "青海零碳园区"}, headers=auth).json()
    assert found["results"][0]["citation"]["headline"] == HEADLINE


def test_without_a_key_set_nothing_asks_for_one(home):
    with TestClient(create_app(_settings(home), load=load)) as client:
        assert client.get(f"/v1/documents/{DOC_ID}").status_code == 200
        assert client.get("/v1/info").status_code == 200
        assert client.get("/v1/search", params={"q": "青海"}).status_code == 200


def test_openapi_declares_the_bearer_scheme_on_the_keyed_routes(keyed):
    spec = keyed.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert {"type": "http", "scheme": "bearer"}.items() <= schemes["HTTPBearer"].items()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            declared = [name for need in operation.get("security", []) for name in need]
            if path in OPEN:
                assert declared == [], (method, path)
            else:
                assert declared == ["HTTPBearer"], (method, path)
                assert "401" in operation["responses"], (method, path)
