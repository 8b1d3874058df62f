"""The service's bounds, in-process: the log's rate, the search slots, readiness as a probe, and
a refused reload that leaves the old index serving."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from uvicorn.config import Config
from uvicorn.lifespan.on import LifespanOn

from api.app import create_app
from api.logs import NOTE_EVERY, RateLimit
from api.readiness import probe, probe_questions
from api.server import log_config
from rag.index.build import build_index
from rag.ingest.load import load_bulletins
from rag.pipeline import IndexDamaged, IndexMissing, IndexStale
from rag.search.retriever import Retriever
from rag.settings import Settings
from tests.conftest import BULLETIN, REPO, FakeEmbedder, fake_load

SECOND = "江苏推进智能制造\n本报记者 张三\n江苏省日前出台方案，推动制造业企业开展智能化改造。\n"


load = fake_load  # the service's loading, with the fake embedder (tests/conftest.py)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    index_dir = tmp_path_factory.mktemp("limits") / "index"
    build_index(
        load_bulletins([BULLETIN], REPO), FakeEmbedder(), Settings(root=REPO, index_dir=index_dir)
    )
    return index_dir


def _app(index_dir: Path, loader=load, **overrides):
    return create_app(Settings(root=REPO, index_dir=index_dir, **overrides), load=loader)


# --- the log's rate ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _record(message: str = "a line") -> logging.LogRecord:
    return logging.makeLogRecord({"name": "uvicorn.error", "msg": message})


def test_the_rate_limit_lets_a_burst_through_then_its_rate():
    clock = Clock()
    limit = RateLimit(per_second=10, burst=5, clock=clock)
    assert [limit.filter(_record()) for _ in range(8)] == [True] * 5 + [False] * 3
    clock.now += 0.25  # two and a half lines' worth: two pass
    assert [limit.filter(_record()) for _ in range(4)] == [True, True, False, False]
    assert limit.dropped == 2  # the first three were reported as the next line passed


def test_the_rate_limit_says_how_many_it_dropped_once_lines_flow_again(caplog):
    clock = Clock()
    limit = RateLimit(per_second=1, burst=1, clock=clock)
    with caplog.at_level(logging.WARNING, logger="api.logs"):
        assert limit.filter(_record())
        assert not any(limit.filter(_record()) for _ in range(7))
        clock.now += 1
        assert limit.filter(_record())
        notes = [r for r in caplog.records if r.name == "api.logs"]
        assert [n.getMessage() for n in notes] == ["7 log lines dropped: more than 1 a second"]
        # The note itself is never dropped, and not repeated within NOTE_EVERY seconds.
        assert limit.filter(notes[0])
        assert not limit.filter(_record())
        clock.now += 1
        assert limit.filter(_record())
        assert len([r for r in caplog.records if r.name == "api.logs"]) == 1
        clock.now += NOTE_EVERY
        assert limit.filter(_record())
        assert caplog.records[-1].getMessage() == "1 log lines dropped: more than 1 a second"


def test_one_rate_limit_over_every_handler_of_the_server_log():
    config = log_config(Settings(log_lines_per_second=7, log_burst_lines=70))
    assert config["filters"]["rate"]["()"] is RateLimit
    assert (config["filters"]["rate"]["per_second"], config["filters"]["rate"]["burst"]) == (7, 70)
    assert all(h["filters"] == ["rate"] for h in config["handlers"].values())
    # The service's own errors and asyncio's accept() failures go through it too.
    assert config["loggers"]["api"]["handlers"] == ["default"]
    assert config["loggers"]["asyncio"]["handlers"] == ["default"]


# --- search slots --------------------------------------------------------------------------------


def test_a_search_over_the_cap_is_answered_503_with_retry_after(index_dir):
    app = _app(index_dir, max_concurrent_searches=1, search_wait_seconds=0.2)
    entered, release = threading.Event(), threading.Event()
    with TestClient(app) as client:
        retriever = app.state.service.retriever
        answer = retriever.answer

        def slow_answer(*args, **kwargs):
            entered.set()
            release.wait(30)
            return answer(*args, **kwargs)

        retriever.answer = slow_answer
        first: list = []
        holder = threading.Thread(
            target=lambda: first.append(client.get("/v1/search", params={"q": "北京"}))
        )
        holder.start()
        try:
            assert entered.wait(30)
            busy = client.post("/v1/search", json={"query": "四川光伏"})
            assert busy.status_code == 503, busy.text
            assert busy.headers["retry-after"] == "1"
            assert busy.json()["error"]["code"] == "busy"
            # Only searches are capped: the rest of the API answers meanwhile.
            assert client.get("/v1/info").status_code == 200
        finally:
            release.set()
            holder.join(30)
        assert first[0].status_code == 200
        retriever.answer = answer
        assert client.post("/v1/search", json={"query": "四川光伏"}).status_code == 200


# --- readiness -----------------------------------------------------------------------------------


def test_the_probe_asks_the_index_its_own_passages(index_dir):
    retriever = load(Settings(root=REPO, index_dir=index_dir), None)
    questions = probe_questions(retriever)
    assert len(questions) == 3
    assert all(any(t.startswith(q) for t in retriever.passage_texts) for q in questions)
    assert probe(retriever).ok


def test_readyz_is_a_probe_not_a_flag(index_dir):
    # Probed afresh on every call (the cache is shorter than the test's steps).
    app = _app(index_dir, ready_probe_seconds=1e-6)
    with TestClient(app) as client:
        assert client.get("/readyz").json() == {"status": "ready"}
        retriever = app.state.service.retriever
        answer = retriever.answer

        def broken(*args, **kwargs):
            raise ValueError("a garbled array")

        retriever.answer = broken
        refused = client.get("/readyz")
        assert refused.status_code == 503
        assert refused.json()["error"] == {
            "code": "not_ready",
            "message": "a probe search failed (ValueError)",
        }
        assert refused.headers["retry-after"] == "5"
        retriever.answer = answer
        assert client.get("/readyz").status_code == 200


def test_a_crashing_search_makes_readyz_look_again(index_dir):
    # The cache is long: only the crash can make /readyz probe again.
    app = _app(index_dir, ready_probe_seconds=3600)
    with TestClient(app, raise_server_exceptions=False) as client:
        retriever = app.state.service.retriever

        def broken(*args, **kwargs):
            return [float("nan")]

        retriever.answer = broken
        assert client.get("/readyz").status_code == 200  # the cached probe of the load
        assert client.get("/v1/search", params={"q": "北京"}).status_code == 500
        assert client.get("/readyz").status_code == 503


def test_readyz_says_nothing_of_the_bulletins(index_dir):
    with TestClient(_app(index_dir)) as client:
        body = client.get("/readyz").text
    assert body == json.dumps({"status": "ready"}, separators=(",", ":"))


# --- a refused reload ----------------------------------------------------------------------------


@pytest.fixture
def growing(tmp_path) -> Settings:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "first.txt").write_text(BULLETIN.read_text(encoding="utf-8"), encoding="utf-8")
    settings = Settings(root=tmp_path, index_dir=tmp_path / "index")
    build_index(load_bulletins([corpus], tmp_path), FakeEmbedder(), settings)
    return settings


def _serving_the_old_index(client: TestClient) -> None:
    assert client.get("/v1/info").json()["corpus"]["files"] == 1
    found = client.post("/v1/search", json={"query": "北京商业航天", "top_k": 3})
    assert found.status_code == 200, found.text
    assert {r["citation"]["source"] for r in found.json()["results"]} == {"corpus/first.txt"}
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize("refusal", [IndexDamaged, IndexStale, IndexMissing])
def test_a_refused_reload_answers_409_and_keeps_serving(growing, refusal):
    calls = []

    def loader(settings: Settings, previous: Retriever | None) -> Retriever:
        calls.append(previous)
        if previous is not None:
            raise refusal(f"{refusal.__name__}: the index at {settings.index_path} is refused")
        return load(settings, previous)

    app = create_app(growing, load=loader)
    with TestClient(app) as client:
        old = app.state.service.retriever
        reply = client.post("/v1/admin/reload")
        assert reply.status_code == 409, reply.text
        error = reply.json()["error"]
        assert error["code"] == "index_unusable"
        assert error["message"].startswith(f"{refusal.__name__}: the index at")
        assert error["message"].endswith("the previous index stays in service")
        assert app.state.service.retriever is old and len(calls) == 2
        _serving_the_old_index(client)


def test_a_reload_of_an_index_that_loads_but_cannot_answer_is_refused(growing):
    def loader(settings: Settings, previous: Retriever | None) -> Retriever:
        fresh = load(settings, previous)
        if previous is not None:  # the new index reads, but every search through it fails

            def broken(*args, **kwargs):
                raise RuntimeError("faiss: a garbled index")

            fresh.answer = broken  # type: ignore[method-assign]
        return fresh

    app = create_app(growing, load=loader)
    with TestClient(app) as client:
        old = app.state.service.retriever
        reply = client.post("/v1/admin/reload")
        assert reply.status_code == 409, reply.text
        message = reply.json()["error"]["message"]
        assert "loaded but cannot answer: a probe search failed (RuntimeError)" in message
        assert app.state.service.retriever is old
        _serving_the_old_index(client)


def test_a_reload_of_a_damaged_build_on_disk_keeps_the_old_index(growing):
    app = create_app(growing, load=load)
    with TestClient(app) as client:
        corpus = growing.root / "corpus"
        (corpus / "second.txt").write_text(SECOND, encoding="utf-8")
        build_index(load_bulletins([corpus], growing.root), FakeEmbedder(), growing)
        current = growing.index_path / "current"
        # Cut short every JSON file of the new build: none can be read.
        for path in current.glob("*.json"):
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        reply = client.post("/v1/admin/reload")
        assert reply.status_code == 409, reply.text
        assert reply.json()["error"]["code"] == "index_unusable"
        assert "previous index stays in service" in reply.json()["error"]["message"]
        _serving_the_old_index(client)


def test_start_up_refuses_an_index_that_cannot_answer(index_dir, caplog):
    def loader(settings: Settings, previous: Retriever | None) -> Retriever:
        fresh = load(settings, previous)
        fresh.answer = lambda *a, **k: (_ for _ in ()).throw(ValueError("x"))  # type: ignore
        return fresh

    # Run as uvicorn runs the start-up (TestClient would wait on a failed one for ever).
    config = Config(_app(index_dir, loader=loader), lifespan="on", log_config=None)
    config.load()
    lifespan = LifespanOn(config)
    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        asyncio.run(lifespan.startup())
    assert lifespan.startup_failed
    line = next(r for r in caplog.records if r.levelno >= logging.ERROR).getMessage()
    assert line.startswith("the service cannot start: the index at")
    assert "loaded but cannot answer: a probe search failed (ValueError)" in line
