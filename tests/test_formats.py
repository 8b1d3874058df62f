"""Web pages and Word files as bulletins: our page's Beijing article saved as a government notice,
a newspaper article, a page with a table and a Word file, all made here; what is extracted,
indexed, found and cited, and what is refused."""

from __future__ import annotations

import hashlib
import io
import shutil
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import docx
import numpy as np
import pytest

from rag.index.build import build_index
from rag.index.store import load_index
from rag.ingest.accounting import coverage
from rag.ingest.formats import FormatError, decode_html, docx_text, html_text, web_address
from rag.ingest.load import MAX_BYTES, BulletinError, load_bulletin, load_bulletins
from rag.ingest.structure import parse_bulletin
from rag.search.retriever import Retriever
from rag.settings import Settings
from tests.conftest import BULLETIN, REPO, FakeEmbedder, shared_glossary
from tests.refusals import assert_index_kept, assert_refused_by_name


def _article() -> tuple[str, list[str]]:
    """The Beijing article of our page: its headline and paragraphs, the one paragraph the
    PDF's column break cut (组网 / 运营) whole again, as a web page or Word file has it."""
    lines = BULLETIN.read_text(encoding="utf-8").splitlines()
    start = lines.index("北京将建设具有全球影响力的商业航天创新发展高地")
    end = lines.index("宁夏规上工业增加值十年来首次实现两位数增长")
    headline, *paragraphs = [line for line in lines[start:end] if line.strip()]
    cut = next(i for i, p in enumerate(paragraphs) if p.endswith("加快巨型星座组网"))
    paragraphs[cut : cut + 2] = [paragraphs[cut] + paragraphs[cut + 1]]
    return headline, paragraphs


HEADLINE, PARAGRAPHS = _article()
# What the templates put around the article, none of which is the article.
NOISE = (
    "首页",
    "政务公开",
    "当前位置",
    "分享到",
    "微博",
    "打印本页",
    "关闭窗口",
    "相关新闻",
    "京ICP备",
    "版权所有",
    "热门排行",
    "扫一扫",
    "上海发布集成电路新政",
)
TARGETS = [("指标", "2028年目标"), ("高新技术企业", "500家以上"), ("独角兽企业", "10家以上")]


def _body(paragraphs: list[str] = PARAGRAPHS) -> str:
    return "\n".join(f"<p>{p}</p>" for p in paragraphs)


def government_page(charset: str = "utf-8") -> str:
    """A city government's notice: menus, a breadcrumb, share and print links, a footer."""
    return f"""<!DOCTYPE html>
<html><head><meta charset="{charset}"><title>{HEADLINE}_北京市人民政府网站</title>
<link rel="canonical" href="https://www.beijing.gov.cn/ywdt/gzdt/202401/t20240125.html">
<meta name="PubDate" content="2024-01-25 09:30">
<script>var _hmt = _hmt || [];</script></head>
<body>
<div class="header"><ul class="nav"><li><a href="/">首页</a></li><li><a href="/zw">政务公开</a></li>
<li><a href="/fw">办事服务</a></li><li><a href="/hd">互动交流</a></li></ul></div>
<div class="crumb">当前位置：<a href="/">首页</a> &gt; <a href="/zw">政务公开</a> &gt; 要闻</div>
<div class="article"><h1>{HEADLINE}</h1>
<div class="info">发布时间：2024-01-25 来源：北京市经济和信息化局</div>
<div class="content" id="zoom">{_body()}</div>
<div class="share">分享到：<a href="#">微信</a><a href="#">微博</a><a href="#">QQ空间</a></div>
<div class="print"><a href="#">【打印本页】</a><a href="#">【关闭窗口】</a></div></div>
<div class="related"><h3>相关新闻</h3><ul><li><a href="/x">上海发布集成电路新政</a></li></ul></div>
<div class="footer"><p>主办：北京市人民政府办公厅 承办：北京市政务服务和数据管理局</p>
<p>京ICP备05060933号 京公网安备11010502039690号</p><p>版权所有 北京市人民政府</p></div>
</body></html>"""


def newspaper_page() -> str:
    """A newspaper's article page: its date, site and author in meta tags, a byline, a sidebar."""
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{HEADLINE} - 中国电子报</title>
<meta property="og:title" content="{HEADLINE}">
<meta property="og:site_name" content="中国电子报">
<meta property="og:url" content="https://www.cena.com.cn/industrynews/20240126/122.html">
<meta property="article:published_time" content="2024-01-26T08:00:00+08:00">
<meta name="author" content="齐旭"></head>
<body>
<header><nav><a href="/">首页</a> <a href="/news">要闻</a> <a href="/ic">集成电路</a></nav></header>
<main><article>
<h1 class="title">{HEADLINE}</h1>
<div class="meta"><span class="source">中国电子报</span> <time>2024-01-26</time></div>
{_body()}
<p class="editor">（责任编辑：王五）</p>
</article>
<aside><h3>热门排行</h3><ol><li><a href="/a">上海发布集成电路新政</a></li></ol></aside></main>
<div class="share-bar"><span>分享到：</span><a class="wx">微信</a><a class="wb">微博</a>
<div class="qr">扫一扫，手机阅读</div></div>
<footer><p>版权所有 中国电子报社 京ICP备12345678号</p></footer>
</body></html>"""


def table_page() -> str:
    """A notice whose targets are a table in the middle of the text."""
    rows = "".join(f"<tr><td>{a}</td><td>{b}</td></tr>" for a, b in TARGETS)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{HEADLINE}</title>
<meta name="PubDate" content="2024-01-25"></head>
<body><div class="nav"><a href="/">首页</a> <a href="/zw">政务公开</a></div>
<div class="content"><h1>{HEADLINE}</h1>
{_body(PARAGRAPHS[:2])}
<table>{rows}</table>
{_body(PARAGRAPHS[2:])}
</div><div class="footer">版权所有 北京市人民政府</div></body></html>"""


def word_file(*, table: bool = True) -> bytes:
    """The article as a Word file: a heading, a byline, the paragraphs, a table of targets."""
    document = docx.Document()
    document.core_properties.title = HEADLINE
    document.core_properties.created = datetime(2024, 1, 25, 9, 30, tzinfo=UTC)
    document.add_heading(HEADLINE, level=1)
    for i, paragraph in enumerate(PARAGRAPHS):
        document.add_paragraph(paragraph)
        if table and i == 1:
            grid = document.add_table(rows=len(TARGETS), cols=2)
            for row, cells in zip(grid.rows, TARGETS, strict=True):
                for cell, text in zip(row.cells, cells, strict=True):
                    cell.text = text
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _paragraphs(text: str) -> list[str]:
    return text.split("\n\n")


# --- what is extracted ----------------------------------------------------------------------------


@pytest.mark.parametrize("page", [government_page, newspaper_page], ids=["government", "newspaper"])
def test_a_page_gives_the_article_and_none_of_its_page(page):
    extracted = html_text(page().encode("utf-8"))
    paragraphs = _paragraphs(extracted.text.rstrip("\n"))
    assert paragraphs[0] == HEADLINE
    for paragraph in PARAGRAPHS:
        assert paragraph in paragraphs
    for noise in NOISE:
        assert noise not in extracted.text, noise
    assert extracted.title == HEADLINE


def test_what_the_article_itself_holds_is_kept():
    # The editor's line is a paragraph of the article, not of the page around it.
    assert "（责任编辑：王五）" in _paragraphs(html_text(newspaper_page().encode()).text.strip())


def test_a_page_says_its_date_site_and_address():
    government = html_text(government_page().encode("utf-8"))
    assert government.date == "2024-01-25"
    assert government.url == "https://www.beijing.gov.cn/ywdt/gzdt/202401/t20240125.html"
    assert government.site == "beijing.gov.cn"  # no site name in the page: its host
    newspaper = html_text(newspaper_page().encode("utf-8"))
    assert newspaper.date == "2024-01-26"
    assert newspaper.url == "https://www.cena.com.cn/industrynews/20240126/122.html"
    assert newspaper.site == "中国电子报"


def test_a_table_becomes_rows_of_cells_in_its_place():
    paragraphs = _paragraphs(html_text(table_page().encode("utf-8")).text.rstrip("\n"))
    rows = [" | ".join(cells) for cells in TARGETS]
    first = paragraphs.index(rows[0])
    assert paragraphs[first : first + len(rows)] == rows
    assert paragraphs[first - 1] == PARAGRAPHS[1] and paragraphs[first + len(rows)] == PARAGRAPHS[2]


@pytest.mark.parametrize("charset", ["gb2312", "GBK", "gb18030"])
def test_a_page_in_the_encoding_it_declares(charset):
    page = government_page(charset).encode("gbk")
    assert decode_html(page) == government_page(charset)
    assert html_text(page).text == html_text(government_page().encode("utf-8")).text


def test_a_word_file_gives_headings_paragraphs_and_rows_in_order():
    extracted = docx_text(word_file(), MAX_BYTES)
    rows = [" | ".join(cells) for cells in TARGETS]
    expected = [HEADLINE, *PARAGRAPHS[:2], *rows, *PARAGRAPHS[2:]]
    assert extracted.text == "\n\n".join(expected) + "\n"
    assert (extracted.title, extracted.date) == (HEADLINE, "2024-01-25")


def test_the_sidecar_wins_over_what_the_file_says(tmp_path):
    (tmp_path / "page.html").write_text(government_page(), encoding="utf-8")
    (tmp_path / "page.meta.json").write_text('{"title": "北京商业航天", "date": "2024-01"}')
    (tmp_path / "word.docx").write_bytes(word_file())
    page, word = load_bulletins([tmp_path], tmp_path)
    assert (page.title, page.date) == ("北京商业航天", "2024-01")
    assert (word.title, word.date) == (HEADLINE, "2024-01-25")
    assert word.content_hash == hashlib.sha256((tmp_path / "word.docx").read_bytes()).hexdigest()


# --- indexed, found, cited, accounted for --------------------------------------------------------


@pytest.fixture
def mixed(tmp_path) -> Path:
    """Our page as text (with its sidecar), the article as a web page and as a Word file."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(BULLETIN, corpus / BULLETIN.name)
    sidecar = BULLETIN.with_name(BULLETIN.stem + ".meta.json")
    shutil.copy(sidecar, corpus / sidecar.name)
    (corpus / "beijing-notice.html").write_text(government_page(), encoding="utf-8")
    (corpus / "beijing-news.htm").write_text(newspaper_page(), encoding="utf-8")
    (corpus / "beijing-plan.docx").write_bytes(word_file())
    return corpus


def test_a_mixed_folder_is_indexed_found_and_cited(tmp_path, mixed):
    bulletins = {b.doc_id: b for b in load_bulletins([mixed], REPO)}
    assert set(bulletins) == {BULLETIN.stem, "beijing-notice", "beijing-news", "beijing-plan"}
    settings = Settings(root=REPO, index_dir=tmp_path / "index")
    embedder = FakeEmbedder()
    build_index(list(bulletins.values()), embedder, settings)
    index = load_index(settings, model_id=embedder.model_id, dim=embedder.dim)
    retriever = Retriever(embedder, index, glossary=shared_glossary())
    hits = retriever.search("北京商业航天2028目标", k=5)
    # The same paragraph in four files is one result; its copies are its duplicates.
    found = [p for hit in hits for p in (hit.passage, *hit.duplicates)]
    answering = {p.doc_id for p in found if "到2028年，北京商业航天创新能力显著增强" in p.text}
    assert {"beijing-notice", "beijing-news", "beijing-plan"} <= answering
    for passage in found:
        text = bulletins[passage.doc_id].text
        assert "".join(text[s.start : s.end] for s in passage.spans) == passage.text
    plan = next(p for p in found if p.doc_id == "beijing-plan")
    assert plan.headline == HEADLINE and plan.source.endswith("beijing-plan.docx")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("notice.html", lambda: government_page().encode("utf-8")),
        ("news.html", lambda: newspaper_page().encode("utf-8")),
        ("table.html", lambda: table_page().encode("utf-8")),
        ("plan.docx", word_file),
    ],
)
def test_every_character_of_a_page_or_word_file_is_accounted_for(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data())
    parsed = parse_bulletin(load_bulletin(path, tmp_path))
    assert coverage(parsed).unaccounted == ()
    (article,) = parsed.articles
    assert article.headline == HEADLINE


# --- refused -------------------------------------------------------------------------------------


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


BAD = {
    "not-a-zip.docx": (lambda: "北京商业航天".encode(), "not a zip archive"),
    "cut-short.docx": (lambda: word_file()[:5000], "not a zip archive"),
    "no-document.docx": (lambda: _zip({"notes.txt": b"hello"}), "no word/document.xml"),
    "big-bomb.docx": (
        lambda: _zip({"word/document.xml": b"<" * (17 * MAX_BYTES)}),
        "unpacks to",
    ),
    "small-bomb.docx": (
        lambda: _zip({"word/document.xml": b" " * (4 * MAX_BYTES)}),
        "zip bomb",
    ),
    "script.html": (
        lambda: (
            b"<html><head><script src='app.js'></script></head>"
            b"<body><div id='app'></div><script>render()</script></body></html>"
        ),
        "only scripts",
    ),
    "empty.html": (lambda: b"  \n", "empty"),
    "menus.html": (
        lambda: "<html><body><nav><a href='/'>首页</a></nav></body></html>".encode(),
        "no main text",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_is_refused_naming_the_file(tmp_path, name):
    data, words = BAD[name]
    assert_refused_by_name(tmp_path / name, data(), words)


def test_formats_alone_name_no_file():
    with pytest.raises(FormatError, match="not a zip archive"):
        docx_text(b"PK not really", MAX_BYTES)


@pytest.mark.parametrize("name", ["not-a-zip.docx", "big-bomb.docx", "script.html", "empty.html"])
def test_rag_index_refuses_bad_input_in_one_line_and_keeps_the_index(tmp_path, name):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "plan.docx").write_bytes(word_file())
    (corpus / "notice.html").write_text(government_page(), encoding="utf-8")
    data, words = BAD[name]
    printed = assert_index_kept(tmp_path, corpus, name, data(), words)
    assert printed.startswith("indexed 2 files, ")


# --- the head of a page or Word file, as the parser reads a printed one -----------------------

KICKER = "2024年地方重点工作解读"


def _kicked_page(byline_in_meta: bool) -> str:
    """The article signed in a byline of its own (its dateline taken out of its first line)."""
    byline = "本报记者 齐旭"
    meta = f'<div class="meta"><span class="byline">{byline}</span></div>' if byline_in_meta else ""
    body = "" if byline_in_meta else f"<p>{byline}</p>"
    first, *rest = PARAGRAPHS
    paragraphs = [first.removeprefix("本报讯 记者齐旭报道："), *rest]
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{HEADLINE}</title></head>
<body><article><p class="kicker">{KICKER}</p><h1>{HEADLINE}</h1>{meta}{body}
{_body(paragraphs)}</article></body></html>"""


@pytest.mark.parametrize("byline_in_meta", [True, False], ids=["byline-in-meta", "byline-in-text"])
def test_a_kicker_above_the_headline_is_read_as_one_and_the_headline_once(tmp_path, byline_in_meta):
    path = tmp_path / "kicked.html"
    path.write_text(_kicked_page(byline_in_meta), encoding="utf-8")
    bulletin = load_bulletin(path, tmp_path)
    assert bulletin.text.count(HEADLINE) == 1
    # The byline trafilatura took out as the page's author is put back under the headline.
    assert bulletin.text.startswith(f"{KICKER}\n\n\n{HEADLINE}\n\n本报记者 齐旭\n\n")
    parsed = parse_bulletin(bulletin)
    (article,) = parsed.articles
    assert (article.kicker, article.headline) == (KICKER, HEADLINE)
    labelled = [(x.label, bulletin.text[x.span.start : x.span.end]) for x in parsed.labels]
    assert ("byline", "本报记者 齐旭") in labelled


def test_a_bare_author_name_is_not_put_back_as_a_line():
    text = html_text(newspaper_page().encode()).text  # <meta name="author" content="齐旭">
    assert "\n齐旭\n" not in text and not text.startswith("齐旭")


def test_a_word_kicker_above_its_heading_is_read_as_one():
    document = docx.Document()
    document.add_paragraph(KICKER)
    document.add_heading(HEADLINE, level=1)
    document.add_paragraph("本报记者 齐旭")
    for paragraph in PARAGRAPHS:
        document.add_paragraph(paragraph)
    document.add_heading("下一篇报道的标题", level=1)  # after body text: no kicker above it
    document.add_paragraph(PARAGRAPHS[0])
    out = io.BytesIO()
    document.save(out)
    text = docx_text(out.getvalue(), MAX_BYTES).text
    assert text.startswith(f"{KICKER}\n\n\n{HEADLINE}\n\n")
    assert f"{PARAGRAPHS[-1]}\n\n下一篇报道的标题\n\n" in text


# --- where a page was published: kept with the bulletin, shown with its document -------------


def test_a_saved_page_keeps_the_address_its_browser_wrote():
    saved = "<!-- saved from url=(0044)https://www.people.com.cn/n1/2024/0125.html -->\n"
    page = saved + _kicked_page(byline_in_meta=False)
    assert html_text(page.encode()).url == "https://www.people.com.cn/n1/2024/0125.html"


@pytest.mark.parametrize(
    "address",
    ["javascript:alert(1)", "data:text/html,<b>x</b>", "file:///etc/passwd", "/n1/0125.html",
     "https://"],
)  # fmt: skip
def test_an_address_that_is_not_a_web_page_s_own_is_not_kept(tmp_path, address):
    page = government_page().replace(
        "https://www.beijing.gov.cn/ywdt/gzdt/202401/t20240125.html", address
    )
    path = tmp_path / "notice.html"
    path.write_text(page, encoding="utf-8")
    assert load_bulletin(path, tmp_path).url == ""


def test_an_address_with_hidden_or_blank_characters_is_not_one():
    for address in ("https://a.example/x\u202eyz", "https://a.example/a b", "https://a\x00.cn"):
        assert web_address(address) == ""
    assert web_address(" https://a.example/x ") == "https://a.example/x"


def test_site_and_address_are_stored_with_the_document_and_the_sidecar_wins(tmp_path):
    (tmp_path / "news.html").write_text(newspaper_page(), encoding="utf-8")
    (tmp_path / "notice.html").write_text(government_page(), encoding="utf-8")
    (tmp_path / "notice.meta.json").write_text(
        '{"site": "北京市人民政府", "url": "https://www.beijing.gov.cn/a.html"}', encoding="utf-8"
    )
    (tmp_path / "plan.docx").write_bytes(word_file())
    bulletins = {b.doc_id: b for b in load_bulletins([tmp_path], tmp_path)}
    assert (bulletins["news"].site, bulletins["news"].url) == (
        "中国电子报",
        "https://www.cena.com.cn/industrynews/20240126/122.html",
    )
    assert (bulletins["notice"].site, bulletins["notice"].url) == (
        "北京市人民政府",
        "https://www.beijing.gov.cn/a.html",
    )
    settings = Settings(root=tmp_path, index_dir=tmp_path / "index")
    embedder = FakeEmbedder()
    build_index(list(bulletins.values()), embedder, settings)
    index = load_index(settings, model_id=embedder.model_id, dim=embedder.dim)
    assert index.documents["news"]["url"] == bulletins["news"].url
    assert index.documents["notice"]["site"] == "北京市人民政府"
    assert "url" not in index.documents["plan"] and "site" not in index.documents["plan"]


def _with_member(data: bytes, name: str, member: bytes) -> bytes:
    """The Word file with one more member (stored deflated, as Word stores its media)."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive,
    ):
        for item in source.infolist():
            archive.writestr(item, source.read(item.filename))
        archive.writestr(name, member)
    return out.getvalue()


def test_a_word_file_heavy_with_photos_is_read_and_a_bomb_beside_them_is_not(tmp_path):
    # Photos do not pack: 3 MB of them make the file weigh more than the text limit alone.
    photo = np.random.default_rng(3).integers(0, 256, 3 * 2**20, dtype=np.uint8).tobytes()
    heavy = _with_member(word_file(), "word/media/image1.jpeg", photo)
    assert len(heavy) > MAX_BYTES
    path = tmp_path / "plan.docx"
    path.write_bytes(heavy)
    assert PARAGRAPHS[0] in load_bulletin(path, tmp_path).text
    # 4 MB that packs 1000 to 1, hidden beside the photo: the whole file packs 2.6 to 1, and
    # unpacks to less than its limit.
    bomb = _with_member(heavy, "word/theme/theme2.xml", b"<" * (4 * 2**20))
    path.write_bytes(bomb)
    with pytest.raises(BulletinError, match=r"word/theme/theme2\.xml\), more than 100 to 1"):
        load_bulletin(path, tmp_path)
