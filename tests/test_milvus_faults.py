"""Milvus failing under the service: unreachable at start-up (not ready, says why, tries again,
then serves), lost mid-request (a 503 with a message, never a 500 or a hang, and answers again
once Milvus is back), unreachable for `rag index` (one line, exit status 5, nothing changed)."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from rag.ingest.load import load_bulletins
from rag.pipeline import build
from tests.conftest import BULLETIN, REPO, FakeEmbedder, fake_load
from tests.milvus_server import MilvusServer, free_port
from tests.test_cli_streams import _env, _one_line_error, _rag

QUESTION = {"query": "北京商业航天2028目标是什么", "top_k": 3}


@pytest.fixture
def server(tmp_path):
    """A server of this test's own on a port it keeps across a kill and a restart."""
    found = MilvusServer(tmp_path / "server.db", free_port())
    found.start()
    yield found
    found.stop()


def _settings(tmp_path, uri):
    from rag.settings import Settings

    return Settings(
        root=REPO,
        index_dir=tmp_path / "index",
        backend="milvus",
        milvus_uri=uri,
        milvus_timeout=2,
        milvus_retry_seconds=0.3,
        milvus_switch_grace_seconds=0,
        ready_probe_seconds=0.1,
    )


def _until(check, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_the_service_starts_not_ready_while_milvus_is_down_and_serves_once_it_is_up(
    tmp_path, server
):
    settings = _settings(tmp_path, server.uri)
    build(load_bulletins([BULLETIN], REPO), FakeEmbedder(), settings, show_progress=False)
    server.kill()
    with TestClient(create_app(settings, load=fake_load)) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.headers["Retry-After"]
        message = ready.json()["error"]["message"]
        assert f"Milvus at {server.uri} cannot be reached" in message
        assert "trying again every 0.3 s" in message
        search = client.post("/v1/search", json=QUESTION)
        assert (
            search.status_code == 503 and "cannot be reached" in search.json()["error"]["message"]
        )

        server.start()
        assert _until(lambda: client.get("/readyz").status_code == 200, 30)
        found = client.post("/v1/search", json=QUESTION)
        assert found.status_code == 200
        assert "2028" in found.json()["results"][0]["text"]


def test_milvus_lost_mid_request_is_a_503_and_searches_answer_once_it_is_back(tmp_path, server):
    settings = _settings(tmp_path, server.uri)
    build(load_bulletins([BULLETIN], REPO), FakeEmbedder(), settings, show_progress=False)
    with TestClient(create_app(settings, load=fake_load), raise_server_exceptions=False) as client:
        first = client.post("/v1/search", json=QUESTION)
        assert first.status_code == 200
        server.kill()
        started = time.monotonic()
        lost = client.post("/v1/search", json={"query": "卫星互联网", "top_k": 3})
        assert time.monotonic() - started < settings.milvus_timeout + 5  # no hang
        assert lost.status_code == 503, lost.text
        error = lost.json()["error"]
        assert (
            error["code"] == "index_unreachable" and f"Milvus at {server.uri}" in error["message"]
        )
        assert lost.headers["Retry-After"]
        assert client.get("/v1/documents/" + BULLETIN.stem).status_code == 503
        assert _until(lambda: client.get("/readyz").status_code == 503, 10)

        # Back (its collections released, as a restarted Milvus brings them): loaded again.
        server.start()
        again = client.post("/v1/search", json=QUESTION)
        assert again.status_code == 200, again.text
        assert again.json()["results"][0]["text"] == first.json()["results"][0]["text"]
        assert _until(lambda: client.get("/readyz").status_code == 200, 10)


def test_the_service_follows_a_rebuild_to_the_new_build(tmp_path, server):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    page = corpus / BULLETIN.name
    page.write_text(BULLETIN.read_text(encoding="utf-8"), encoding="utf-8")
    settings = _settings(tmp_path, server.uri).model_copy(update={"corpus_dir": corpus})
    build(load_bulletins([corpus], REPO), FakeEmbedder(), settings, show_progress=False)
    question = {"query": "产业规模迅速壮大", "top_k": 1}
    with TestClient(create_app(settings, load=fake_load)) as client:
        assert (
            "迅速壮大" not in client.post("/v1/search", json=question).json()["results"][0]["text"]
        )
        text = page.read_text(encoding="utf-8").replace("产业规模持续壮大", "产业规模迅速壮大")
        page.write_text(text, encoding="utf-8")
        build(load_bulletins([corpus], REPO), FakeEmbedder(), settings, show_progress=False)

        def followed() -> bool:
            found = client.post("/v1/search", json=question).json()["results"]
            return "迅速壮大" in found[0]["text"]

        assert _until(followed, 20)
        assert client.get("/readyz").status_code == 200


def test_rag_index_against_an_unreachable_milvus_says_so_in_one_line(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    env = _env(tmp_path, RAG_BACKEND="milvus", RAG_MILVUS_URI=uri, RAG_MILVUS_TIMEOUT="2")
    run = _rag(env, "index", str(BULLETIN), fake=True)
    line = _one_line_error(run, 5, "Milvus", uri, "cannot be reached")
    assert "the index there is as it was" in line
    assert not (tmp_path / "index" / "current").exists()


def test_rag_index_ask_and_verify_on_milvus_lite(tmp_path):
    env = _env(tmp_path, RAG_BACKEND="milvus", RAG_MILVUS_URI=str(tmp_path / "m.db"))
    run = _rag(env, "index", str(BULLETIN), fake=True)
    assert run.returncode == 0, run.stderr
    assert f"-> Milvus {tmp_path / 'm.db'}, collection bulletins" in run.stdout
    asked = _rag(env, "ask", "北京商业航天2028目标是什么", "--json", "-k", "1", fake=True)
    assert asked.returncode == 0, asked.stderr
    assert "2028" in json.loads(asked.stdout)["results"][0]["text"]
    verified = _rag(env, "index", "--verify", fake=True)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("index OK: Milvus") and "passages" in verified.stdout
    # Another collection name holds nothing: the index is missing, status 3, one line.
    missing = _rag(env | {"RAG_MILVUS_COLLECTION": "other"}, "index", "--verify", fake=True)
    _one_line_error(missing, 3, "no index in Milvus", "collection 'other'", "rag index")
