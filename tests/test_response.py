"""One answer shape and one set of modes for `rag ask --json` and the HTTP API."""

from __future__ import annotations

import json
from typing import get_args

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from rag.cli import main
from rag.index.build import build_index
from rag.ingest.load import load_bulletins
from rag.mode import MODES, Mode, as_mode
from rag.response import SearchResponse
from rag.settings import Settings
from tests.conftest import BULLETIN, REPO, FakeEmbedder


def keys(value: object) -> object:
    """The keys of a JSON value all the way down: an object's as a dict, a list's items'."""
    if isinstance(value, dict):
        return {k: keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [keys(v) for v in value]
    return None


@pytest.fixture
def same_settings(tmp_path, monkeypatch) -> None:
    """The CLI and the service read the same environment: one index, the fake embedder."""
    monkeypatch.setenv("RAG_ROOT", str(REPO))
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "index"))
    for name in ("RAG_CORPUS_DIR", "RAG_CHUNK_TOKENS", "RAG_MODEL", "RAG_SEARCH_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(
        "rag.model.embed.load_embedder", lambda s, show_progress=False: FakeEmbedder()
    )
    build_index(load_bulletins([BULLETIN], REPO), FakeEmbedder(), Settings())


@pytest.mark.parametrize(
    "question", ["北京商业航天2028目标是什么", "上海集成电路产业目标是什么", "？？？"]
)
def test_ask_json_is_the_api_response(same_settings, capsys, question):
    assert main(["ask", question, "--json", "-k", "3"]) == 0
    printed = json.loads(capsys.readouterr().out)
    with TestClient(create_app(Settings())) as client:
        reply = client.post("/v1/search", json={"query": question, "top_k": 3})
    assert reply.status_code == 200, reply.text
    served = reply.json()
    assert keys(printed) == keys(served)
    assert list(printed) == list(served)  # in the same order, too
    del printed["took_ms"], served["took_ms"]
    assert printed == served


def test_the_api_serves_the_shared_response():
    from api.routes import router

    searches = [r for r in router.routes if getattr(r, "path", None) == "/v1/search"]
    assert len(searches) == 2  # GET and POST
    assert all(r.response_model is SearchResponse for r in searches)


def test_settings_know_the_same_modes():
    # rag/settings.py types search_mode itself; it must name exactly these modes.
    assert get_args(Settings.model_fields["search_mode"].annotation) == get_args(Mode) == MODES


def test_a_mode_by_name():
    assert [as_mode(m) for m in MODES] == list(MODES)
    with pytest.raises(ValueError, match="must be one of dense, lexical, hybrid"):
        as_mode("fast")
