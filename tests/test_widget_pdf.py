"""The widget on a PDF bulletin: its citation names the page, and 查看原文 shows the extracted
text with the cited span marked and the page it was printed on (the real server and model,
headless Chromium, as in tests/test_widget.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import BULLETIN, running_server
from tests.pdf_fixtures import our_page, render
from tests.test_widget import (
    EXAMPLE,
    Tab,
    ask,
    browser,
    in_browser,
    open_panel,
    opened_tab,
    shot,
    squeeze,
)

__all__ = ["browser"]  # the browser fixture, used here by name

BEIJING_2028 = "到2028年，北京商业航天创新能力显著增强"


@pytest.fixture(scope="module")
def pdf_server(tmp_path_factory) -> Iterator[str]:
    """`rag serve` over our page as a PDF (with its sidecar) only."""
    home = tmp_path_factory.mktemp("widget-pdf-server")
    corpus = home / "corpus"
    corpus.mkdir()
    (corpus / f"{BULLETIN.stem}.pdf").write_bytes(render(our_page()))
    shutil.copy(BULLETIN.with_name(BULLETIN.stem + ".meta.json"), corpus)
    with running_server(
        home, RAG_ROOT=str(home), RAG_CORPUS_DIR=str(corpus), RAG_INDEX_DIR=str(home / "index")
    ) as base:
        yield base


@pytest.fixture
def pdf_tab(browser, pdf_server) -> Iterator[Tab]:
    with opened_tab(browser, pdf_server) as tab:
        yield tab


@in_browser
def test_a_pdf_citation_shows_its_page(pdf_tab):
    results = httpx.get(f"{pdf_tab.base}/v1/search", params={"q": EXAMPLE}, timeout=60).json()
    cited = next(r for r in results["results"] if BEIJING_2028 in r["text"])
    page_label = f"PDF 第 {cited['citation']['page']} 页"
    page = open_panel(pdf_tab)
    turn = ask(page, EXAMPLE)
    card = turn.locator(".card").filter(has_text=BEIJING_2028).first
    expect(card.locator(".cite")).to_contain_text(page_label)
    passage = card.locator(".passage").inner_text()
    card.get_by_role("button", name="查看原文").click()
    viewer = page.locator(".viewer")
    expect(viewer.locator(".viewer-page")).to_have_text(page_label)
    marks = viewer.locator("mark")
    expect(marks.first).to_be_in_viewport()
    assert squeeze("".join(marks.all_text_contents())) == squeeze(passage)
    shot(page, "pdf-source")


@pytest.fixture(scope="module")
def web_server(tmp_path_factory) -> Iterator[str]:
    """`rag serve` over the Beijing article saved as a newspaper's web page only."""
    from tests.test_formats import newspaper_page

    home = tmp_path_factory.mktemp("widget-web-server")
    corpus = home / "corpus"
    corpus.mkdir()
    page = newspaper_page().replace(
        '<meta property="og:url" content="https://www.cena.com.cn/industrynews/20240126/122.html">',
        "",
    )
    saved = "<!-- saved from url=(0055)https://www.cena.com.cn/industrynews/20240126/122.html -->"
    (corpus / "beijing-news.html").write_text(f"{saved}\n{page}", encoding="utf-8")
    with running_server(
        home, RAG_ROOT=str(home), RAG_CORPUS_DIR=str(corpus), RAG_INDEX_DIR=str(home / "index")
    ) as base:
        yield base


@in_browser
def test_a_web_page_s_source_links_to_where_it_was_published(browser, web_server):
    with opened_tab(browser, web_server) as tab:
        page = open_panel(tab)
        turn = ask(page, EXAMPLE)
        card = turn.locator(".card").filter(has_text=BEIJING_2028).first
        expect(card.locator(".cite")).not_to_contain_text("PDF")
        card.get_by_role("button", name="查看原文").click()
        link = page.locator(".viewer .viewer-link")
        expect(link).to_have_text("原网页（中国电子报）")
        assert (
            link.get_attribute("href") == "https://www.cena.com.cn/industrynews/20240126/122.html"
        )
        assert link.get_attribute("target") == "_blank"
        assert "noopener" in (link.get_attribute("rel") or "")
        expect(page.locator(".viewer .viewer-page")).to_have_count(0)
        shot(page, "web-source")
