"""The service on Milvus, as `RAG_BACKEND=milvus RAG_MILVUS_URI=./index/milvus.db make serve`
runs it: the README's curl examples answered as the local backend answers them, and the widget
(answer cards, 查看原文) working against it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from tests import test_widget
from tests.conftest import REPO, running_server
from tests.test_widget import BEIJING_2028, EXAMPLE, Tab, ask, in_browser, open_panel, shot, squeeze

browser = test_widget.browser  # the fixture: one Chromium for this module too

# The README's three requests (GET, GET with a region filter, POST in English with a filter).
README_REQUESTS = [
    ("GET", {"q": "北京商业航天2028目标是什么"}),
    ("GET", {"q": "光伏产业怎么发展", "region": "四川", "top_k": 3}),
    (
        "POST",
        {"query": "What is Beijing's 2028 goal for commercial space?", "top_k": 3,
         "filters": {"region": "北京"}},
    ),
]  # fmt: skip


def _serve(home, **backend: str):
    return running_server(
        home,
        RAG_ROOT=str(home),
        RAG_CORPUS_DIR=str(REPO / "corpus"),
        RAG_INDEX_DIR=str(home / "index"),
        **backend,
    )


@pytest.fixture(scope="module")
def on_milvus(tmp_path_factory) -> Iterator[str]:
    """`rag serve` on Milvus Lite in ./index/milvus.db (built at start-up, as `make serve`
    builds it first), with the real model."""
    home = tmp_path_factory.mktemp("milvus-serve")
    with _serve(home, RAG_BACKEND="milvus", RAG_MILVUS_URI="./index/milvus.db") as base:
        yield base


@pytest.fixture(scope="module")
def on_files(tmp_path_factory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("local-serve")
    with _serve(home) as base:
        yield base


def _ask(base: str, method: str, body: dict) -> dict:
    if method == "GET":
        reply = httpx.get(f"{base}/v1/search", params=body, timeout=60)
    else:
        reply = httpx.post(f"{base}/v1/search", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _answers(reply: dict) -> list:
    return [(r["rank"], r["text"], r["highlights"], r["citation"]) for r in reply["results"]]


@pytest.mark.server
@pytest.mark.parametrize(("method", "body"), README_REQUESTS)
def test_the_readme_examples_answer_on_milvus_as_on_files(on_milvus, on_files, method, body):
    mine, theirs = _ask(on_milvus, method, body), _ask(on_files, method, body)
    assert mine["results"], mine
    assert _answers(mine) == _answers(theirs)
    assert (mine["answerable"], mine["message"]) == (theirs["answerable"], theirs["message"])
    if "2028" in str(body):
        assert "2028" in mine["results"][0]["text"]


@pytest.mark.server
def test_info_documents_and_readiness_on_milvus(on_milvus, on_files):
    info = httpx.get(f"{on_milvus}/v1/info", timeout=10).json()
    assert info["corpus"] == httpx.get(f"{on_files}/v1/info", timeout=10).json()["corpus"]
    assert httpx.get(f"{on_milvus}/readyz", timeout=30).status_code == 200
    doc_id = _ask(on_milvus, "GET", {"q": EXAMPLE})["results"][0]["citation"]["doc_id"]
    mine = httpx.get(f"{on_milvus}/v1/documents/{doc_id}", timeout=10)
    assert mine.status_code == 200
    assert mine.json() == httpx.get(f"{on_files}/v1/documents/{doc_id}", timeout=10).json()
    assert httpx.get(f"{on_milvus}/v1/documents/nothing-here", timeout=10).status_code == 404


@pytest.fixture
def milvus_tab(browser, on_milvus) -> Iterator[Tab]:
    tab = Tab(browser, on_milvus)
    yield tab
    tab.context.close()
    assert tab.errors == [] and tab.dialogs == []


@in_browser
def test_the_widget_answers_and_shows_the_source_on_milvus(milvus_tab):
    page = open_panel(milvus_tab)
    turn = ask(page, EXAMPLE)
    expect(turn).to_have_attribute("data-state", "answered")
    card = turn.locator(".card").filter(has_text=BEIJING_2028).first
    expect(card).to_be_visible()
    assert card.locator(".passage mark").count() >= 1
    passage = card.locator(".passage").inner_text()
    card.get_by_role("button", name="查看原文").click()
    viewer = page.locator(".viewer")
    expect(viewer.locator("mark").first).to_be_visible()
    assert squeeze("".join(viewer.locator("mark").all_text_contents())) == squeeze(passage)
    shot(page, "milvus-source")
