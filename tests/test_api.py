"""The HTTP API, in-process with the fake embedder; one test runs the real server process."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from uvicorn.config import Config
from uvicorn.lifespan.on import LifespanOn

from api.app import create_app
from api.state import service_loader
from rag.index.build import build_index
from rag.ingest.load import load_bulletins
from rag.search.retriever import Retriever
from rag.settings import Settings
from tests.conftest import BULLETIN, REPO, FakeEmbedder, fake_load, running_server

DOC_ID = "000_a1e9ce7368794dc6"
SOURCE = f"corpus/{DOC_ID}.txt"
BEIJING = "北京将建设具有全球影响力的商业航天创新发展高地"
EXAMPLE = "北京商业航天2028目标是什么"
RESULT_KEYS = {"rank", "score", "text", "highlights", "citation", "duplicates"}
CITATION_KEYS = {"doc_id", "source", "headline", "section", "paragraph", "spans"}
SECOND = (
    "江苏推进智能制造\n本报记者 张三\n"
    "江苏省日前出台方案，推动制造业企业开展智能化改造和数字化转型。\n"
    "方案还提出，培育一批智能工厂，建设一批数字化车间。\n"
)


# The fake embedder's cosines have no meaning as closeness, so the service under test keeps
# only the unknown-place test unless a test sets floors of its own.
NO_FLOORS = {"answer_floor_zh": 0.0, "answer_floor_en": 0.0}


load = fake_load  # the service's loading, with the fake embedder (tests/conftest.py)


@pytest.fixture(scope="module")
def bulletin_text() -> str:
    return load_bulletins([BULLETIN], REPO)[0].text


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    """An index of the corpus bulletin, built once for the module with the fake embedder."""
    index_dir = tmp_path_factory.mktemp("api") / "index"
    settings = Settings(root=REPO, index_dir=index_dir)
    build_index(load_bulletins([BULLETIN], REPO), FakeEmbedder(), settings)
    return index_dir


def _client(index_dir: Path, **overrides) -> TestClient:
    settings = Settings(root=REPO, index_dir=index_dir, **{**NO_FLOORS, **overrides})
    return TestClient(create_app(settings, load=load))


@pytest.fixture(scope="module")
def client(index_dir):
    with _client(index_dir) as client:
        yield client


@pytest.fixture(scope="module")
def keyed(index_dir):
    with _client(index_dir, api_key="s3cret") as client:
        yield client


def _error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    """The response is the JSON error shape with this status (and code)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def _check_results(body: dict, text: str, top_k: int) -> list[dict]:
    assert set(body) == {"query", "took_ms", "answerable", "message", "results"}
    assert isinstance(body["took_ms"], int | float) and body["took_ms"] >= 0
    results = body["results"]
    assert 1 <= len(results) <= top_k
    assert [r["rank"] for r in results] == list(range(1, len(results) + 1))
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    for r in results:
        assert set(r) == RESULT_KEYS
        citation = r["citation"]
        assert set(citation) == CITATION_KEYS
        assert citation["source"] == SOURCE
        assert citation["doc_id"] == DOC_ID
        assert citation["spans"]
        quoted = "".join(text[s["start"] : s["end"]] for s in citation["spans"])
        assert quoted == r["text"]
        assert r["highlights"]
        for h in r["highlights"]:
            assert set(h) == {"start", "end"}
            assert 0 <= h["start"] < h["end"] <= len(r["text"])
    return results


# --- search ------------------------------------------------------------------------------------


def test_post_search_shape_and_citations(client, bulletin_text):
    response = client.post("/v1/search", json={"query": "北京商业航天", "top_k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["query"] == "北京商业航天"
    results = _check_results(body, bulletin_text, 3)
    assert results[0]["citation"]["headline"] == BEIJING


def test_answerable_flag_and_message(client):
    answered = client.post("/v1/search", json={"query": "北京商业航天"}).json()
    assert answered["answerable"] is True and answered["message"] is None
    # No article is about Shanghai and no passage mentions it.
    body = client.post("/v1/search", json={"query": "上海集成电路产业目标是什么"}).json()
    assert body["answerable"] is False
    assert "上海" in body["message"]
    # The nearest passages still come back, for a client that wants to show them folded.
    assert body["results"]
    english = client.get("/v1/search", params={"q": "What is Shanghai's 2024 target?"}).json()
    assert english["answerable"] is False and "Shanghai" not in english["message"]
    assert english["message"].startswith("The bulletins say nothing about 上海")


def test_a_question_in_words_the_bulletins_never_use(client):
    body = client.post("/v1/search", json={"query": "红烧肉怎么做才好吃？"}).json()
    assert body["answerable"] is False
    assert body["message"] == "公报里没有出现这个问题的词语（红烧肉、好吃）。"
    assert body["results"]  # the nearest passages, for a client to fold away
    english = client.get("/v1/search", params={"q": "How do I bake sourdough bread?"}).json()
    assert english["answerable"] is False
    assert english["message"] == (
        "The bulletins do not use this question's words (bake, sourdough, bread)."
    )


def test_nothing_close_enough_over_http(index_dir):
    # Floors above any cosine: every question is too far, in its own language.
    with _client(index_dir, answer_floor_zh=1.0, answer_floor_en=1.0) as strict:
        chinese = strict.post("/v1/search", json={"query": "北京商业航天"}).json()
        english = strict.get("/v1/search", params={"q": "What is 北京's 2028 goal?"}).json()
    assert chinese["answerable"] is False and english["answerable"] is False
    assert chinese["message"].startswith("公报中没有与这个问题足够接近的内容")
    assert english["message"].startswith("Nothing in the bulletins is close")
    assert chinese["results"] and english["results"]


def test_a_lone_surrogate_is_refused_not_a_crash(client):
    body = b'{"query": "\\ud800\xe5\x8c\x97\xe4\xba\xac"}'
    reply = client.post("/v1/search", content=body, headers={"Content-Type": "application/json"})
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["code"] == "invalid_query"
    assert "not valid Unicode" in reply.json()["error"]["message"]


@pytest.mark.parametrize("query", ["？？？", "的", "what?", "😀"])
def test_a_question_with_nothing_to_search_for_gets_no_passages(client, query):
    # The model finds something "close" to any string; none of it would answer.
    reply = client.post("/v1/search", json={"query": query})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["answerable"] is False and body["results"] == []
    assert "没有可以检索的词语" in body["message"] or "no words to search" in body["message"]


def test_filters_that_admit_nothing(client):
    body = {"query": "Beijing space plan", "filters": {"date_from": "2099"}}
    reply = client.post("/v1/search", json=body)
    assert reply.status_code == 200, reply.text
    assert reply.json()["results"] == []
    assert reply.json()["answerable"] is False
    assert reply.json()["message"] == "No passage matches the filters."


def test_get_search_shape(client, bulletin_text):
    response = client.get("/v1/search", params={"q": "北京商业航天", "top_k": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["query"] == "北京商业航天"
    _check_results(body, bulletin_text, 2)


def test_get_search_takes_the_filters_too(client):
    response = client.get("/v1/search", params={"q": "产业发展", "top_k": 50, "region": "北京"})
    assert response.status_code == 200, response.text
    assert {r["citation"]["headline"] for r in response.json()["results"]} == {BEIJING}
    dated = client.get("/v1/search", params={"q": "产业发展", "date_from": "2024-01-23"})
    assert {r["citation"]["headline"] for r in dated.json()["results"]} == {BEIJING}
    for bad, field in (({"date_from": "20x4"}, "date_from"), ({"article": "0"}, "article")):
        refused = client.get("/v1/search", params={"q": "产业发展", **bad})
        assert refused.status_code == 422 and field in refused.json()["error"]["message"]


def test_query_is_stripped(client):
    body = client.post("/v1/search", json={"query": "  光伏产业 \n"}).json()
    assert body["query"] == "光伏产业"
    assert len(body["results"]) == 5  # the default top_k


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_modes(client, bulletin_text, mode):
    response = client.post("/v1/search", json={"query": "北京商业航天", "mode": mode, "top_k": 4})
    assert response.status_code == 200, response.text
    _check_results(response.json(), bulletin_text, 4)
    get = client.get("/v1/search", params={"q": "北京商业航天", "mode": mode})
    assert get.status_code == 200, get.text


def test_region_filter(client, bulletin_text):
    response = client.post(
        "/v1/search", json={"query": "产业发展", "top_k": 50, "filters": {"region": "北京"}}
    )
    assert response.status_code == 200, response.text
    results = _check_results(response.json(), bulletin_text, 50)
    assert {r["citation"]["headline"] for r in results} == {BEIJING}


def test_date_filter(client, bulletin_text):
    response = client.post(
        "/v1/search",
        json={"query": "产业发展", "top_k": 50, "filters": {"date_from": "2024-01-23"}},
    )
    assert response.status_code == 200, response.text
    results = _check_results(response.json(), bulletin_text, 50)
    # Only the Beijing article is dated after 22 January; the others are a month or earlier.
    assert {r["citation"]["headline"] for r in results} == {BEIJING}


def test_article_and_doc_id_filters(client, bulletin_text):
    response = client.post(
        "/v1/search",
        json={"query": "光伏", "top_k": 50, "filters": {"doc_id": DOC_ID, "article": 4}},
    )
    assert response.status_code == 200, response.text
    results = _check_results(response.json(), bulletin_text, 50)
    assert {r["citation"]["headline"] for r in results} == {"四川进一步加大发展光伏产业力度"}


def test_filter_admitting_nothing_is_empty(client):
    response = client.post("/v1/search", json={"query": "产业", "filters": {"region": "西藏"}})
    assert response.status_code == 200, response.text
    assert response.json()["results"] == []


@pytest.mark.parametrize(
    ("filters", "code"),
    [
        ({"doc_id": "nope"}, "invalid_query"),
        ({"city": "x"}, "unknown_field"),
        ({"date_from": "January"}, "invalid_field"),
        ({"date_to": "2024-1-5"}, "invalid_field"),
        ({"article": 0}, "invalid_field"),
        ({"article": "four"}, "invalid_field"),
        ("北京", "invalid_field"),
    ],
)
def test_bad_filters(client, filters, code):
    response = client.post("/v1/search", json={"query": "产业", "filters": filters})
    error = _error(response, 422, code)
    if code == "unknown_field":
        assert "city" in error["message"]
    if filters == {"doc_id": "nope"}:
        assert "nope" in error["message"]


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"query": ""}, 422, "empty_query"),
        ({"query": "   "}, 422, "empty_query"),
        ({"query": "\n\t"}, 422, "empty_query"),
        ({"query": "北" * 501}, 422, "query_too_long"),
        ({"query": "北京", "top_k": 0}, 422, "invalid_field"),
        ({"query": "北京", "top_k": 51}, 422, "invalid_field"),
        ({"query": "北京", "top_k": "x"}, 422, "invalid_field"),
        ({"query": "北京", "top_k": 2.5}, 422, "invalid_field"),
        ({"query": "北京", "mode": "fast"}, 422, "invalid_field"),
        ({"query": 42}, 422, "invalid_field"),
        ({"query": None}, 422, "invalid_field"),
        ({"top_k": 3}, 422, "missing_field"),
        ({}, 422, "missing_field"),
        ({"query": "北京", "limit": 3}, 422, "unknown_field"),
        ([{"query": "北京"}], 422, "invalid_body"),
        ("北京", 422, "invalid_body"),
    ],
)
def test_bad_body(client, body, status, code):
    _error(client.post("/v1/search", json=body), status, code)


def test_query_too_long_message_names_the_limit(client):
    error = _error(client.post("/v1/search", json={"query": "a" * 501}), 422, "query_too_long")
    assert "501" in error["message"] and "500" in error["message"]


def test_query_at_the_limit_is_accepted(client):
    assert client.post("/v1/search", json={"query": "北" * 500}).status_code == 200


@pytest.mark.parametrize("raw", [b'{"query": "\xe5\x8c\x97', b"{query: 1}", b"not json", b"{"])
def test_malformed_json(client, raw):
    response = client.post("/v1/search", content=raw, headers={"Content-Type": "application/json"})
    _error(response, 400, "invalid_json")


def test_empty_body(client):
    # FastAPI treats an empty JSON body as a missing one.
    response = client.post("/v1/search", content=b"", headers=_json())
    _error(response, 422, "missing_field")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/v1/search", content='{"query": "北京"}'.encode(), headers=headers)
    _error(response, 415, "unsupported_media_type")


def test_json_content_type_with_charset_is_accepted(client):
    response = client.post(
        "/v1/search",
        content=json.dumps({"query": "北京"}).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200, response.text


def test_body_over_limit(client):
    body = json.dumps({"query": "北京", "pad": "x" * 17_000})
    _error(client.post("/v1/search", content=body, headers=_json()), 413, "body_too_large")


def test_chunked_body_over_limit(client):
    def chunks():
        yield b'{"query": "'
        for _ in range(20):
            yield b"x" * 1024
        yield b'"}'

    response = client.post("/v1/search", content=chunks(), headers=_json())
    _error(response, 413, "body_too_large")


def _json() -> dict[str, str]:
    return {"Content-Type": "application/json"}


def test_get_search_without_q(client):
    error = _error(client.get("/v1/search"), 422, "missing_field")
    assert "q" in error["message"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"q": "北京", "top_k": "abc"}, "invalid_field"),
        ({"q": "北京", "top_k": 0}, "invalid_field"),
        ({"q": "北京", "top_k": 51}, "invalid_field"),
        ({"q": "   "}, "empty_query"),
        ({"q": ""}, "empty_query"),
        ({"q": "北" * 501}, "query_too_long"),
        ({"q": "北京", "mode": "fast"}, "invalid_field"),
    ],
)
def test_get_search_bad_params(client, params, code):
    _error(client.get("/v1/search", params=params), 422, code)


HOSTILE = [
    "<script>alert(1)</script>",
    "\u0000",
    "北京\u0000航天",
    "' OR 1=1 --",
    "🚀🛰️ 北京 🚀",
    "x" * 500,
    "航" * 500,
    "\u202e\u200b\ufeff北京",
    "../../etc/passwd",
    "%00%ff{}[]\\",
    "\ud7ff\ue000\U0010ffff",
]


def test_a_question_of_invisible_characters_is_refused(client):
    reply = client.post("/v1/search", json={"query": "\u202e\u200b\ufeff"})
    assert reply.status_code == 422
    assert "invisible characters" in reply.json()["error"]["message"]


def test_invisible_characters_do_not_split_words(client):
    plain = client.post("/v1/search", json={"query": "重庆工业投资"}).json()
    split = client.post("/v1/search", json={"query": "重\u200b庆工业\u200d投资"}).json()
    assert [r["text"] for r in split["results"]] == [r["text"] for r in plain["results"]]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_queries_never_fail(client, query):
    response = client.post("/v1/search", json={"query": query, "top_k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["query"] == query.strip()
    assert len(body["results"]) <= 3
    get = client.get("/v1/search", params={"q": query, "top_k": 3})
    assert get.status_code == 200, get.text
    assert get.json()["results"] == body["results"]


def test_unknown_route_and_method(client):
    _error(client.get("/v1/nothing"), 404, "not_found")
    _error(client.delete("/v1/search"), 405, "method_not_allowed")


# --- API key -------------------------------------------------------------------------------------


def test_search_without_key(keyed):
    response = keyed.post("/v1/search", json={"query": "北京"})
    _error(response, 401, "missing_api_key")
    assert response.headers["www-authenticate"] == "Bearer"
    _error(keyed.get("/v1/search", params={"q": "北京"}), 401, "missing_api_key")


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Basic s3cret", "s3cret", "Token s3cret"])
def test_malformed_authorization(keyed, header):
    response = keyed.post("/v1/search", json={"query": "北京"}, headers={"Authorization": header})
    _error(response, 401, "missing_api_key")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("key", ["wrong", "s3cre", "s3cret2", "S3CRET", "北京"])
def test_wrong_key(keyed, key):
    header = f"Bearer {key}".encode()  # non-ASCII bytes must not crash the comparison
    response = keyed.post("/v1/search", json={"query": "北京"}, headers={"Authorization": header})
    _error(response, 401, "wrong_api_key")
    assert response.headers["www-authenticate"] == "Bearer"


def test_right_key(keyed, bulletin_text):
    auth = {"Authorization": "Bearer s3cret"}
    response = keyed.post("/v1/search", json={"query": "北京商业航天"}, headers=auth)
    assert response.status_code == 200, response.text
    _check_results(response.json(), bulletin_text, 5)
    lower = {"Authorization": "bearer s3cret"}
    assert keyed.get("/v1/search", params={"q": "北京"}, headers=lower).status_code == 200


def test_open_routes_need_no_key(keyed):
    assert keyed.get("/healthz").status_code == 200
    assert keyed.get("/readyz").status_code == 200


def test_reload_needs_key(keyed):
    _error(keyed.post("/v1/admin/reload"), 401, "missing_api_key")
    _error(
        keyed.post("/v1/admin/reload", headers={"Authorization": "Bearer nope"}),
        401,
        "wrong_api_key",
    )
    ok = keyed.post("/v1/admin/reload", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("body", [{"query": ""}, {"query": "x", "top_k": "x"}, {"nope": 1}])
def test_key_is_checked_before_the_body(keyed, body):
    # A caller without a key learns nothing about whether its body was valid.
    _error(keyed.post("/v1/search", json=body), 401, "missing_api_key")


# --- documents, health, info ---------------------------------------------------------------------


def test_document(client, bulletin_text):
    response = client.get(f"/v1/documents/{DOC_ID}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["doc_id"] == DOC_ID
    assert body["source"] == SOURCE
    assert body["text"] == bulletin_text
    assert body["text"] == BULLETIN.read_text(encoding="utf-8")
    articles = body["articles"]
    assert len(articles) == 4
    assert [a["number"] for a in articles] == [1, 2, 3, 4]
    assert all(a["headline"] for a in articles)
    assert articles[1]["headline"] == BEIJING
    for a in articles:
        span = a["headline_span"]
        assert body["text"][span["start"] : span["end"]] == a["headline"]


@pytest.mark.parametrize("doc_id", ["nope", "000_a1e9ce7368794dc7", "a..b", "%00", "北京"])
def test_unknown_document(client, doc_id):
    error = _error(client.get(f"/v1/documents/{doc_id}"), 404, "unknown_document")
    assert "doc_id" in error["message"]


def test_health_and_ready(client):
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


def test_info(client):
    response = client.get("/v1/info")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "fake/char-hash"
    assert body["dim"] == FakeEmbedder.dim
    assert body["corpus"]["files"] == 1
    assert body["corpus"]["articles"] == 4
    assert body["corpus"]["passages"] > 4
    assert isinstance(body["index_built_at"], str) and body["index_built_at"][:2] == "20"
    assert body["search_mode"] == "hybrid"
    assert body["index_kind"] == "flat"


def test_not_ready_before_start_up(index_dir):
    # Without `with`, the lifespan does not run: nothing is loaded yet.
    client = _client(index_dir)
    assert client.get("/healthz").status_code == 200
    _error(client.get("/readyz"), 503, "not_ready")
    _error(client.post("/v1/search", json={"query": "北京"}), 503, "not_ready")
    _error(client.get("/v1/info"), 503, "not_ready")
    _error(client.get(f"/v1/documents/{DOC_ID}"), 503, "not_ready")


# --- reload --------------------------------------------------------------------------------------


@pytest.fixture
def growing(tmp_path) -> tuple[Settings, Path]:
    """An index of a tmp corpus holding only the real bulletin; root is tmp_path."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(BULLETIN, corpus / BULLETIN.name)
    sidecar = BULLETIN.with_name(BULLETIN.stem + ".meta.json")
    shutil.copy(sidecar, corpus / sidecar.name)
    settings = Settings(root=tmp_path, index_dir=tmp_path / "index", **NO_FLOORS)
    build_index(load_bulletins([corpus / BULLETIN.name], tmp_path), FakeEmbedder(), settings)
    return settings, corpus


def test_the_service_reload_keeps_the_model_and_applies_every_setting(growing):
    from api.state import default_loader

    settings, _ = growing
    previous = load(settings, None)
    tuned = settings.model_copy(
        update={
            "search_mode": "dense",
            "dense_weight": 0.3,
            "lexical_tokenizer": "jieba",
            "place_time_preference": 0.7,
            "answer_floor_zh": 0.5,
            "answer_floor_en": 0.4,
            "candidates": 300,
        }
    )
    reloaded = default_loader(tuned, previous)
    assert reloaded.embedder is previous.embedder and reloaded.glossary is previous.glossary
    assert (reloaded.mode, reloaded.dense_weight, reloaded.backend.lexical.how) == (
        "dense",
        0.3,
        "jieba",
    )
    assert (reloaded.preference, reloaded.floor_zh, reloaded.floor_en) == (0.7, 0.5, 0.4)
    assert reloaded.candidates == 300


def test_reload_swaps_in_a_rebuilt_index(growing):
    settings, corpus = growing
    app = create_app(settings, load=load)
    with TestClient(app) as client:
        before = client.get("/v1/info").json()
        assert before["corpus"]["files"] == 1
        old = app.state.service.retriever
        hits = client.post("/v1/search", json={"query": "培育一批智能工厂", "top_k": 50}).json()
        assert all(r["citation"]["source"] == SOURCE for r in hits["results"])

        time.sleep(1.1)  # built_at has one-second resolution
        (corpus / "second.txt").write_text(SECOND, encoding="utf-8")
        build_index(load_bulletins([corpus], settings.root), FakeEmbedder(), settings)
        # Not served until reloaded.
        assert client.get("/v1/info").json() == before

        response = client.post("/v1/admin/reload")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "reloaded"
        assert body["index_built_at"] != before["index_built_at"]

        after = client.get("/v1/info").json()
        assert after["corpus"]["files"] == 2
        assert after["corpus"]["passages"] > before["corpus"]["passages"]
        assert after["index_built_at"] == body["index_built_at"]

        found = client.post("/v1/search", json={"query": "培育一批智能工厂", "top_k": 3}).json()
        top = found["results"][0]
        assert top["citation"]["source"] == "corpus/second.txt"
        assert "培育一批智能工厂" in top["text"]
        assert client.get("/v1/documents/second").status_code == 200

        fresh = app.state.service.retriever
        assert fresh is not old
        # A request that started before the reload keeps a working retriever.
        old_hits = old.search("培育一批智能工厂", k=3)
        assert old_hits and all(h.passage.source == SOURCE for h in old_hits)


def test_reload_of_unusable_index_keeps_the_old_one(growing):
    settings, _ = growing
    app = create_app(settings, load=load)
    with TestClient(app) as client:
        old = app.state.service.retriever
        (settings.index_path / "current").unlink()
        error = _error(client.post("/v1/admin/reload"), 409, "index_unusable")
        assert "previous index" in error["message"]
        assert app.state.service.retriever is old
        assert client.post("/v1/search", json={"query": "北京商业航天"}).status_code == 200


# --- start-up ------------------------------------------------------------------------------------


def _start_under_uvicorn(app, caplog) -> tuple[bool, list[logging.LogRecord]]:
    """Run the app's start-up as uvicorn does; whether it failed, and uvicorn's error records."""
    config = Config(app, lifespan="on", log_config=None)
    config.load()
    lifespan = LifespanOn(config)
    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        asyncio.run(lifespan.startup())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    return lifespan.startup_failed, errors


def test_start_up_without_an_index_fails_in_one_line(tmp_path, caplog, monkeypatch):
    def refuse(settings, *, show_progress=False):
        raise AssertionError("the model was loaded for an index that is not there")

    monkeypatch.setattr("rag.model.embed.load_embedder", refuse)
    settings = Settings(root=REPO, index_dir=tmp_path / "index")
    app = create_app(settings, load=service_loader(build_if_missing=False))
    failed, errors = _start_under_uvicorn(app, caplog)
    assert failed
    assert errors[0].getMessage() == (
        f"the service cannot start: no index at {tmp_path / 'index'}; build one with `rag index`"
    )
    assert all(r.exc_info is None and "Traceback" not in r.getMessage() for r in errors)


def test_start_up_with_a_stale_index_fails_in_one_line(index_dir, caplog, monkeypatch):
    monkeypatch.setattr(
        "rag.model.embed.load_embedder", lambda s, show_progress=False: FakeEmbedder()
    )
    settings = Settings(root=REPO, index_dir=index_dir, chunk_tokens=128)
    app = create_app(settings, load=service_loader(build_if_missing=False))
    failed, errors = _start_under_uvicorn(app, caplog)
    line = errors[0].getMessage()
    assert failed and "\n" not in line
    assert line.startswith(f"the service cannot start: the index at {index_dir} does not match")
    assert line.endswith("rebuild it with `rag index`")
    assert all(r.exc_info is None and "Traceback" not in r.getMessage() for r in errors)


def test_a_bug_at_start_up_still_shows_its_traceback(index_dir, caplog):
    def broken(settings: Settings, previous: Retriever | None) -> Retriever:
        raise ZeroDivisionError("a bug, not something the user can mend")

    failed, errors = _start_under_uvicorn(create_app(Settings(), load=broken), caplog)
    assert failed and "Traceback" in errors[0].getMessage()
    assert "ZeroDivisionError" in errors[0].getMessage()


# --- CORS, OpenAPI -------------------------------------------------------------------------------


def test_cors_preflight(index_dir):
    with _client(index_dir, cors_origins=["https://host.example"]) as client:
        allowed = client.options(
            "/v1/search",
            headers={
                "Origin": "https://host.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "Content-Type, Authorization",
            },
        )
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["access-control-allow-origin"] == "https://host.example"
        assert "POST" in allowed.headers["access-control-allow-methods"]

        refused = client.options(
            "/v1/search",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in refused.headers

        simple = client.get(
            "/v1/search", params={"q": "北京"}, headers={"Origin": "https://host.example"}
        )
        assert simple.status_code == 200
        assert simple.headers["access-control-allow-origin"] == "https://host.example"


def test_no_cors_by_default(client):
    response = client.get(
        "/v1/search", params={"q": "北京"}, headers={"Origin": "https://host.example"}
    )
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def test_openapi(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    schema = spec["components"]["schemas"]["SearchResponse"]
    assert set(schema["properties"]) == {"query", "took_ms", "answerable", "message", "results"}
    assert EXAMPLE in json.dumps(spec, ensure_ascii=False)
    assert {"/v1/search", "/v1/documents/{doc_id}", "/healthz", "/readyz", "/v1/info"} <= set(
        spec["paths"]
    )
    assert "ErrorResponse" in spec["components"]["schemas"]


# --- the real server -----------------------------------------------------------------------------


@pytest.mark.server
def test_real_server(tmp_path):
    index_dir = tmp_path / "index"
    with running_server(tmp_path, RAG_INDEX_DIR=str(index_dir), RAG_ROOT=str(REPO)) as base:
        response = httpx.get(f"{base}/v1/search", params={"q": EXAMPLE}, timeout=60)
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert results
        # The README's example: the answering paragraph comes first.
        assert "到2028年，北京商业航天创新能力显著增强" in results[0]["text"], results[0]
        assert httpx.get(f"{base}/v1/info", timeout=10).json()["model"] != "fake/char-hash"
