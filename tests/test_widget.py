"""The chat widget: its two routes in-process, then the widget itself in headless Chromium
against the real server process, as a reader would use it."""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Locator, Page, Route, expect

from api.app import create_app
from rag.index.build import build_index
from rag.index.store import load_index
from rag.ingest.load import load_bulletins
from rag.search.retriever import Retriever
from rag.settings import Settings
from tests.conftest import BULLETIN, REPO, FakeEmbedder, free_port, running_server, shared_glossary

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps calling home on a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = REPO / "test-output" / "widget"

EXAMPLE = "北京商业航天2028目标是什么"
BEIJING_2028 = "到2028年，北京商业航天创新能力显著增强"
BEIJING = "北京将建设具有全球影响力的商业航天创新发展高地"
INJECTION = "<img src=x onerror=alert(1)>"
# A second bulletin: markup in its text, and astral characters (𩽾𩾌) before the answering
# sentence, so a widget slicing by UTF-16 units instead of code points marks the wrong words.
HOSTILE = (
    "海南试种热带蓝莓取得突破\n\n本报记者 李四\n\n"
    "海南省三亚市日前开展热带蓝莓试种，示范基地面积达到两百亩。\n\n"
    f"示范基地配套建设𩽾𩾌鱼循环养殖池。试种报告的附件里写着{INJECTION}这样一串字符。"
    "蓝莓亩产突破八百公斤，创下热带地区纪录。\n"
)
HOSTILE_QUESTION = "海南蓝莓亩产突破多少公斤"
# A third bulletin reprints the 2028 paragraph, as papers reprint a wire story: the API folds it
# into the original's result and the card names it.
REPRINT_HEADLINE = "商业航天要闻摘编"
REPRINT = (
    f"{REPRINT_HEADLINE}\n\n本报记者 王五\n\n"
    + next(
        line for line in BULLETIN.read_text(encoding="utf-8").splitlines() if BEIJING_2028 in line
    )
    + "\n"
)
LOADED = re.compile(r"^(answered|unanswered|error)$")
ANSWER_TIMEOUT = 60_000  # ms; the first real search warms the model up


# --- the routes, in-process -----------------------------------------------------------------------


def load(settings: Settings, previous: Retriever | None) -> Retriever:
    return Retriever(
        FakeEmbedder(),
        load_index(settings, model_id=FakeEmbedder.model_id, dim=FakeEmbedder.dim),
        glossary=shared_glossary(),
    )


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    index_dir = tmp_path_factory.mktemp("widget-routes") / "index"
    build_index(
        load_bulletins([BULLETIN], REPO), FakeEmbedder(), Settings(root=REPO, index_dir=index_dir)
    )
    return index_dir


@pytest.fixture(scope="module")
def keyed(index_dir) -> Iterator[TestClient]:
    """A service that wants an API key for search: the widget's own routes must not."""
    settings = Settings(root=REPO, index_dir=index_dir, api_key="s3cret")
    with TestClient(create_app(settings, load=load)) as client:
        yield client


def _external_urls(text: str) -> set[str]:
    return set(re.findall(r"https?://[^\s\"'`)<>]+", text))


def test_demo_page(keyed):
    response = keyed.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    page = response.text
    assert '<html lang="zh-CN">' in page
    assert '<script src="/widget.js" data-api=""></script>' in page
    assert _external_urls(page) == set(), "the demo page must load nothing from elsewhere"


def test_widget_script(keyed):
    response = keyed.get("/widget.js")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/javascript; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    script = response.text
    assert script == (REPO / "api" / "static" / "widget.js").read_text(encoding="utf-8")
    assert '"use strict"' in script
    assert 'attachShadow({ mode: "open" })' in script
    # Bulletin text is data: nothing in the widget parses a string as HTML.
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
    # The SVG namespace is a name the DOM requires, never fetched; no other URL may appear.
    assert _external_urls(script) <= {"http://www.w3.org/2000/svg"}


def test_widget_routes_are_open_and_outside_the_schema(keyed):
    assert keyed.post("/v1/search", json={"query": "北京"}).status_code == 401
    assert keyed.get("/").status_code == 200
    assert keyed.get("/widget.js").status_code == 200
    paths = keyed.get("/openapi.json").json()["paths"]
    assert "/" not in paths and "/widget.js" not in paths
    assert "/v1/search" in paths


# --- the widget in a real browser, against the real server ----------------------------------------


def in_browser(test: Callable) -> Callable:
    """Drives headless Chromium against the real server process."""
    return pytest.mark.server(pytest.mark.browser(test))


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """`rag serve` with the real model over the corpus bulletin and a hostile one; its base URL."""
    home = tmp_path_factory.mktemp("widget-server")
    corpus = home / "corpus"
    corpus.mkdir()
    shutil.copy(BULLETIN, corpus / BULLETIN.name)
    shutil.copy(BULLETIN.with_name(BULLETIN.stem + ".meta.json"), corpus)
    (corpus / "hostile.txt").write_text(HOSTILE, encoding="utf-8")
    (corpus / "reprint.txt").write_text(REPRINT, encoding="utf-8")
    with running_server(
        home, RAG_ROOT=str(home), RAG_CORPUS_DIR=str(corpus), RAG_INDEX_DIR=str(home / "index")
    ) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: the widget tests need Debian's Chromium; run `make test`, "
            "which installs it (never a downloaded browser)",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Tab:
    """A page in a fresh browser context, with what it did that a test may need to check."""

    def __init__(self, browser: Browser, base: str, width: int = 1280, height: int = 800) -> None:
        self.base = base
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("request", lambda request: self.requests.append(request.url))

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def searches(self) -> int:
        return sum("/v1/search" in url for url in self.requests)


@contextmanager
def opened_tab(browser: Browser, base: str, **size: int) -> Iterator[Tab]:
    """A tab on the service at `base`, closed after; its page must have raised no error and
    opened no dialog."""
    tab = Tab(browser, base, **size)
    try:
        yield tab
    finally:
        tab.context.close()
    assert tab.errors == [], "uncaught errors in the page"
    assert tab.dialogs == [], "the page opened a dialog"


@pytest.fixture
def tab(browser, server) -> Iterator[Tab]:
    with opened_tab(browser, server) as tab:
        yield tab


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / f"{name}.png", animations="disabled")


def open_panel(tab: Tab, path: str = "/") -> Page:
    page = tab.page
    page.goto(tab.base + path)
    page.locator(".launcher").click()
    expect(page.locator(".panel")).to_be_visible()
    return page


def ask(page: Page, question: str) -> Locator:
    """Types the question, sends it with Enter and waits for the answer; the turn."""
    box = page.locator("textarea")
    box.fill(question)
    box.press("Enter")
    turn = page.locator(".turn").last
    expect(turn).to_have_attribute("data-state", LOADED, timeout=ANSWER_TIMEOUT)
    return turn


def active(page: Page) -> str:
    """The focused element inside the widget, as tag.class."""
    return page.evaluate(
        """() => {
            const el = document.querySelector("[data-bulletin-widget]").shadowRoot.activeElement;
            return el ? `${el.tagName.toLowerCase()}.${el.className}` : "";
        }"""
    )


def marks_of(card: Locator) -> list[str]:
    return card.locator(".passage mark").all_text_contents()


def api_reply(base: str, question: str) -> dict:
    reply = httpx.post(f"{base}/v1/search", json={"query": question, "top_k": 5}, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()


def api_search(base: str, question: str) -> list[dict]:
    return api_reply(base, question)["results"]


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


@in_browser
def test_demo_page_opens_the_panel(tab):
    page = tab.page
    page.goto(tab.base + "/")
    launcher = page.locator(".launcher")
    expect(launcher).to_be_visible()
    expect(launcher).to_have_attribute("aria-expanded", "false")
    expect(page.locator(".panel")).to_be_hidden()
    shot(page, "demo")
    launcher.click()
    expect(page.locator(".panel")).to_be_visible()
    expect(launcher).to_have_attribute("aria-expanded", "true")
    expect(page.locator(".panel h2")).to_have_text("公报问答")
    assert active(page) == "textarea."  # focus moved into the input
    shot(page, "open")
    assert all(url.startswith(tab.base) for url in tab.requests), tab.requests


@in_browser
def test_answer_cards(tab):
    page = open_panel(tab)
    turn = ask(page, EXAMPLE)
    expect(turn).to_have_attribute("data-state", "answered")
    expect(turn.locator(".question")).to_have_text(EXAMPLE)
    cards = turn.locator(".card")
    expected = api_search(tab.base, EXAMPLE)
    expect(cards).to_have_count(len(expected))
    texts = turn.locator(".passage").all_text_contents()
    assert texts == [r["text"] for r in expected]
    assert BEIJING_2028 in texts[0], texts[:3]
    # The reprint is not a second card; the first card says where else the text appears.
    assert sum(BEIJING_2028 in text for text in texts) == 1
    # Whichever copy scored higher is the card; the other is named under it.
    first, twins = expected[0]["citation"], expected[0]["duplicates"]
    assert {first["headline"], *(t["headline"] for t in twins)} == {BEIJING, REPRINT_HEADLINE}
    expect(cards.first.locator(".also")).to_contain_text("同样的文字另见：" + twins[0]["headline"])
    for i, result in enumerate(expected):
        card = cards.nth(i)
        marks = marks_of(card)
        assert marks and all(mark and mark in texts[i] for mark in marks)
        # Offsets are code points: the marks are exactly the API's highlights.
        text = result["text"]
        assert marks == [text[h["start"] : h["end"]] for h in result["highlights"]]
        citation = result["citation"]
        cite = card.locator(".cite").inner_text()
        assert cite.startswith(citation["headline"]) and cite.endswith(f"¶{citation['paragraph']}")
        expect(card.get_by_role("button", name="查看原文")).to_be_visible()
    shot(page, "answer")


@in_browser
def test_source_viewer_marks_the_cited_passage(tab):
    page = open_panel(tab)
    turn = ask(page, EXAMPLE)
    card = turn.locator(".card").filter(has_text=BEIJING_2028).first
    passage = card.locator(".passage").inner_text()
    cited = next(r for r in api_search(tab.base, EXAMPLE) if BEIJING_2028 in r["text"])
    view = card.get_by_role("button", name="查看原文")
    view.click()
    viewer = page.locator(".viewer")
    expect(viewer).to_be_visible()
    marks = viewer.locator("mark")
    expect(marks.first).to_be_visible()
    assert squeeze("".join(marks.all_text_contents())) == squeeze(passage)
    expect(marks.first).to_be_in_viewport()
    expect(viewer.locator("h4")).to_have_text(cited["citation"]["headline"])
    assert active(page).startswith("button.icon-button back")
    shot(page, "source")

    # Esc closes the viewer first (focus back on its 查看原文), then the panel.
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    expect(page.locator(".panel")).to_be_visible()
    assert active(page) == "button.pill view"
    view.click()  # the document is fetched once and then kept
    expect(viewer.locator("mark").first).to_be_visible()
    assert sum("/v1/documents/" in url for url in tab.requests) == 1
    viewer.get_by_role("button", name="返回").click()
    expect(viewer).to_be_hidden()
    page.keyboard.press("Escape")
    expect(page.locator(".panel")).to_be_hidden()
    assert active(page) == "button.launcher"


@in_browser
def test_bulletin_markup_is_shown_as_text(tab):
    page = open_panel(tab)
    turn = ask(page, HOSTILE_QUESTION)
    card = turn.locator(".card").filter(has_text=INJECTION).first
    expect(card).to_be_visible()
    assert INJECTION in card.locator(".passage").inner_text()
    # The answering sentence comes after two astral characters; its mark must not shift.
    assert marks_of(card) == ["蓝莓亩产突破八百公斤，创下热带地区纪录。"]
    shot(page, "injection")
    card.get_by_role("button", name="查看原文").click()
    viewer = page.locator(".viewer")
    expect(viewer.locator("mark").first).to_be_visible()
    assert INJECTION in viewer.locator(".viewer-body").inner_text()
    assert squeeze("".join(viewer.locator("mark").all_text_contents())) == squeeze(
        card.locator(".passage").inner_text()
    )
    shot(page, "injection-source")
    images = page.evaluate(
        """() => document.querySelector("[data-bulletin-widget]").shadowRoot
            .querySelectorAll("img").length + document.querySelectorAll("img").length"""
    )
    assert images == 0
    page.wait_for_timeout(300)  # an onerror handler would have fired by now
    assert tab.dialogs == []


@in_browser
def test_no_answer_says_so_and_folds_the_nearest(tab):
    question = "上海集成电路产业2024年的目标是什么？"
    reply = api_reply(tab.base, question)
    assert reply["answerable"] is False  # the real service's verdict, not a faked reply
    page = open_panel(tab)
    turn = ask(page, question)
    expect(turn).to_have_attribute("data-state", "unanswered")
    expect(turn.locator(".no-answer")).to_have_text("公报中没有找到能回答这个问题的内容。")
    expect(turn.get_by_text("公报中没有关于上海的内容。")).to_be_visible()
    folded = turn.locator("details.nearest")
    expect(folded.locator("summary")).to_have_text("最接近的段落（可能不相关）")
    expect(folded).not_to_have_attribute("open", "")
    expect(turn.locator(".card").first).to_be_hidden()
    # No "找到 n 段" line: passages that do not answer are not counted as found.
    expect(turn.locator(".summary")).to_have_count(0)
    shot(page, "no-answer")
    folded.locator("summary").click()
    expect(folded.locator(".card")).to_have_count(len(reply["results"]))
    expect(folded.locator(".card").first).to_be_visible()
    shot(page, "no-answer-unfolded")


def _fail_500(route: Route) -> None:
    route.fulfill(
        status=500,
        json={"error": {"code": "internal", "message": "the index is on fire"}},
    )


@in_browser
def test_server_error_offers_a_retry(tab):
    page = tab.page
    page.route("**/v1/search**", _fail_500)
    open_panel(tab)
    turn = ask(page, EXAMPLE)
    expect(turn).to_have_attribute("data-state", "error")
    alert = turn.get_by_role("alert")
    expect(alert).to_contain_text("检索服务出错了（HTTP 500），请稍后重试。")
    expect(alert).to_contain_text("the index is on fire")
    retry = alert.get_by_role("button", name="重试")
    expect(retry).to_be_visible()
    shot(page, "server-error")
    page.unroute("**/v1/search**")
    retry.click()
    expect(turn).to_have_attribute("data-state", "answered", timeout=ANSWER_TIMEOUT)
    expect(page.locator(".turn")).to_have_count(1)  # the same question, answered in place
    expect(turn.locator(".card").first).to_be_visible()
    expect(turn.get_by_role("alert")).to_have_count(0)
    shot(page, "server-error-retried")


@in_browser
def test_network_failure_offers_a_retry(tab):
    page = tab.page
    page.route("**/v1/search**", lambda route: route.abort())
    open_panel(tab)
    turn = ask(page, EXAMPLE)
    expect(turn).to_have_attribute("data-state", "error")
    alert = turn.get_by_role("alert")
    expect(alert).to_contain_text("无法连接到检索服务，请检查网络后重试。")
    shot(page, "offline")
    page.unroute("**/v1/search**")
    alert.get_by_role("button", name="重试").click()
    expect(turn).to_have_attribute("data-state", "answered", timeout=ANSWER_TIMEOUT)
    expect(turn.locator(".card").first).to_be_visible()


@in_browser
def test_keyboard(tab):
    page = tab.page
    page.goto(tab.base + "/")
    page.locator(".launcher").focus()
    page.keyboard.press("Enter")
    expect(page.locator(".panel")).to_be_visible()
    assert active(page) == "textarea."

    page.keyboard.type("北京商业航天")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("2028目标是什么")
    box = page.locator("textarea")
    expect(box).to_have_value("北京商业航天\n2028目标是什么")
    assert tab.searches() == 0
    expect(page.locator(".turn")).to_have_count(0)
    shot(page, "keyboard-two-lines")
    page.keyboard.press("Enter")
    turn = page.locator(".turn").last
    expect(turn).to_have_attribute("data-state", LOADED, timeout=ANSWER_TIMEOUT)
    expect(turn.locator(".question")).to_have_text("北京商业航天\n2028目标是什么")
    expect(box).to_have_value("")
    assert tab.searches() == 1

    page.keyboard.press("Tab")
    assert active(page) == "button.send"
    # Every button is reachable by Tab and has a name a screen reader can say.
    buttons = page.evaluate(
        """() => [...document.querySelector("[data-bulletin-widget]").shadowRoot
            .querySelectorAll("button")].map((b) => ({
                name: b.getAttribute("aria-label") || b.textContent.trim(),
                tabindex: b.tabIndex,
            }))"""
    )
    assert buttons and all(b["name"] and b["tabindex"] == 0 for b in buttons), buttons
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert active(page) == "button.pill view"  # the last card's 查看原文

    page.keyboard.press("Escape")
    expect(page.locator(".panel")).to_be_hidden()
    assert active(page) == "button.launcher"
    expect(page.locator(".launcher")).to_have_attribute("aria-expanded", "false")


@in_browser
def test_second_send_while_loading_is_ignored(tab):
    page = tab.page
    held: list[Route] = []
    page.route("**/v1/search**", lambda route: held.append(route))
    open_panel(tab)
    box = page.locator("textarea")
    box.fill(EXAMPLE)
    box.press("Enter")
    turn = page.locator(".turn").last
    expect(turn.get_by_role("status")).to_have_text("正在检索…")
    box.fill("四川如何发展光伏产业")
    box.press("Enter")
    page.locator(".send").click(force=True)  # aria-disabled: Playwright would wait for it
    expect(page.locator(".send")).to_have_attribute("aria-disabled", "true")
    shot(page, "loading")
    assert len(held) == 1
    expect(page.locator(".turn")).to_have_count(1)
    expect(box).to_have_value("四川如何发展光伏产业")  # kept, to send once the answer is in
    held[0].continue_()
    page.unroute("**/v1/search**")  # only now: unrouting first would drop the held request
    expect(turn).to_have_attribute("data-state", "answered", timeout=ANSWER_TIMEOUT)
    box.press("Enter")
    expect(page.locator(".turn")).to_have_count(2)
    expect(page.locator(".turn").last).to_have_attribute(
        "data-state", LOADED, timeout=ANSWER_TIMEOUT
    )


@in_browser
def test_phone_screen(browser, server):
    tab = Tab(browser, server, width=375, height=740)
    try:
        page = tab.page
        page.goto(server + "/")
        expect(page.locator(".launcher")).to_be_in_viewport()
        shot(page, "phone-closed")
        page.locator(".launcher").click()
        turn = ask(page, EXAMPLE)
        expect(turn.locator(".card").first).to_be_visible()
        box = page.locator(".panel").bounding_box()
        assert box is not None
        assert box["x"] == 0 and box["width"] == 375, box  # full width, not wider
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        for card in turn.locator(".card").all():
            card_box = card.bounding_box()
            assert card_box is not None and card_box["x"] + card_box["width"] <= 375
        shot(page, "phone")
        turn.locator(".card").first.get_by_role("button", name="查看原文").click()
        expect(page.locator(".viewer mark").first).to_be_in_viewport()
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        shot(page, "phone-source")
        assert tab.errors == []
    finally:
        tab.context.close()


def _host_page(tab: Tab, name: str, html: str) -> str:
    """A page of the server's origin that exists only in this browser: a stand-in host site."""
    url = f"{tab.base}/{name}"
    tab.page.route(url, lambda route: route.fulfill(content_type="text/html", body=html))
    return url


def _keyed_api(tab: Tab, key: str) -> list[str]:
    """The module's server as a keyed one sees it: /v1/ requests without `Bearer key` answered
    401, as RAG_API_KEY would; the Authorization headers the page sent, in order."""
    sent: list[str] = []

    def guard(route: Route) -> None:
        given = route.request.headers.get("authorization", "")
        sent.append(given)
        if given == f"Bearer {key}":
            route.continue_()
            return
        error = {"code": "missing_api_key", "message": "this service needs a key"}
        body = json.dumps({"error": error})
        route.fulfill(status=401, content_type="application/json", body=body)

    tab.page.route(f"{tab.base}/v1/**", guard)
    return sent


@in_browser
def test_data_key_sends_the_key_on_every_request_that_carries_bulletin_text(tab):
    sent = _keyed_api(tab, "pa55")
    url = _host_page(
        tab,
        "keyed.html",
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'></head><body>"
        "<script src='/widget.js' data-key='pa55'></script></body></html>",
    )
    page = tab.page
    page.goto(url)
    page.locator(".launcher").click()
    turn = ask(page, EXAMPLE)
    expect(turn).to_have_attribute("data-state", "answered")
    card = turn.locator(".card").filter(has_text=BEIJING_2028).first
    card.get_by_role("button", name="查看原文").click()
    expect(page.locator(".viewer mark").first).to_be_visible()
    assert sum("/v1/documents/" in u for u in tab.requests) == 1
    assert len(sent) == 2 and set(sent) == {"Bearer pa55"}


@in_browser
def test_without_data_key_a_keyed_service_is_told_not_retried(tab):
    sent = _keyed_api(tab, "pa55")
    page = open_panel(tab)
    turn = ask(page, EXAMPLE)
    expect(turn).to_have_attribute("data-state", "error")
    expect(turn).to_contain_text("检索服务要求 API 密钥")
    expect(turn.get_by_role("button", name="重试")).to_have_count(0)
    assert sent == [""]


@in_browser
def test_english_host_page(tab):
    url = _host_page(
        tab,
        "host-en.html",
        '<!doctype html><html lang="en-GB"><head><meta charset="utf-8"></head><body>'
        "<h1>A host site</h1><script src='/widget.js'></script></body></html>",
    )
    page = tab.page
    page.goto(url)
    launcher = page.locator(".launcher")
    expect(launcher).to_have_attribute("aria-label", "Open Bulletin Q&A")
    launcher.click()
    expect(page.locator(".panel h2")).to_have_text("Bulletin Q&A")
    expect(page.locator("textarea")).to_have_attribute(
        "placeholder", "Ask a question (Shift+Enter: new line)"
    )
    turn = ask(page, EXAMPLE)
    expect(turn.locator(".summary")).to_have_text("Found 5 passages")
    expect(turn.get_by_role("button", name="View source").first).to_be_visible()
    shot(page, "english")


@contextmanager
def other_site(base: str) -> Iterator[str]:
    """A real host site on another port (another origin) whose page embeds the widget with the
    one tag; its URL. Served for real, not faked in the browser: Chromium lets a page reach a
    loopback service only when the page itself came from one."""
    page = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"></head><body>'
        f'<h1>别的网站</h1><script src="{base}/widget.js" data-api="{base}"></script></body></html>'
    ).encode()

    class Host(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Host)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/host.html"
    finally:
        server.shutdown()
        server.server_close()


@in_browser
def test_another_origin_is_refused_unless_listed(tab):
    # The module's server lists no CORS origins: the browser blocks the widget's search.
    page = tab.page
    with other_site(tab.base) as url:
        page.goto(url)
        page.locator(".launcher").click()
        turn = ask(page, EXAMPLE)
        expect(turn).to_have_attribute("data-state", "error")
        expect(turn.get_by_role("button", name="重试")).to_be_visible()
        shot(page, "cross-origin-refused")


@in_browser
def test_a_listed_origin_can_embed_the_widget(browser, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(BULLETIN, corpus / BULLETIN.name)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with other_site(base) as url:
        site = url.removesuffix("/host.html")
        with running_server(
            tmp_path,
            port,
            RAG_ROOT=str(tmp_path),
            RAG_CORPUS_DIR=str(corpus),
            RAG_INDEX_DIR=str(tmp_path / "index"),
            RAG_CORS_ORIGINS=f'["{site}"]',
        ):
            tab = Tab(browser, base)
            try:
                page = tab.page
                page.goto(url)
                page.locator(".launcher").click()
                turn = ask(page, EXAMPLE)
                expect(turn).to_have_attribute("data-state", "answered")
                expect(turn.locator(".card").first).to_contain_text(BEIJING_2028)
                shot(page, "cross-origin")
            finally:
                tab.context.close()
    assert tab.errors == [] and tab.dialogs == []


HOSTILE_CSS = """
* { color: red !important; font-size: 40px !important; display: block; }
button { display: none !important; }
div { display: none !important; opacity: 0 !important; transform: scale(0.2) !important; }
mark, textarea, p { font-family: monospace !important; background: lime !important; }
"""


@in_browser
def test_host_page_css_cannot_reach_the_widget(tab):
    page = tab.page
    styled = "(el) => { const s = getComputedStyle(el); return [s.fontSize, s.color, s.display]; }"
    page.goto(tab.base + "/")
    own = page.locator(".launcher").evaluate(styled)
    assert own == ["15px", "rgb(255, 255, 255)", "flex"]  # inline-flex, blockified by `fixed`
    url = _host_page(
        tab,
        "hostile-css.html",
        f"<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><style>{HOSTILE_CSS}"
        "</style></head><body><p id='own'>宿主页面的文字</p>"
        "<script src='/widget.js'></script></body></html>",
    )
    page.goto(url)
    launcher = page.locator(".launcher")
    expect(launcher).to_be_visible()
    expect(launcher).to_be_in_viewport()
    assert launcher.evaluate(styled) == own
    # And the widget leaves the host page's own styles as they were.
    assert page.locator("#own").evaluate("(el) => getComputedStyle(el).fontSize") == "40px"
    launcher.click()
    turn = ask(page, EXAMPLE)
    passage = turn.locator(".passage").first
    expect(passage).to_be_visible()
    assert passage.evaluate("(el) => getComputedStyle(el).fontSize") == "15px"
    shot(page, "hostile-css")


@in_browser
def test_widget_adds_one_global_and_no_page_styles(tab):
    url = _host_page(
        tab,
        "plain.html",
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<script>window.before = new Set(Object.getOwnPropertyNames(window));</script>"
        "</head><body><p>host</p><script src='/widget.js'></script></body></html>",
    )
    page = tab.page
    page.goto(url)
    expect(page.locator(".launcher")).to_be_visible()
    added = page.evaluate(
        "() => Object.getOwnPropertyNames(window).filter((n) => !before.has(n) && n !== 'before')"
    )
    assert added == ["BulletinWidget"]
    assert page.evaluate("document.styleSheets.length") == 0
    assert page.evaluate("document.body.children.length") == 3  # <p>, <script>, the widget host
