"""The page's eval asked of the page as it might have been published on the web (each article a
web page of its own, in a newspaper site's template) and as one Word file: no worse than asked
of its text, with the real model, on the tuning and the held-out questions alike."""

from __future__ import annotations

import dataclasses
import html
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import docx
import pytest

from rag.documents import Article
from rag.evaluate import load_questions, local_search, run_eval
from rag.index.build import build_index
from rag.index.store import load_index
from rag.ingest.load import load_bulletin, load_bulletins
from rag.ingest.structure import parse_bulletin
from rag.search.retriever import Retriever
from rag.settings import Settings
from tests.conftest import BULLETIN, REPO, shared_glossary
from tests.gate import regressions

pytestmark = pytest.mark.model

SETS = ("questions.jsonl", "heldout.jsonl")
SIDECAR = json.loads(BULLETIN.with_name(BULLETIN.stem + ".meta.json").read_text(encoding="utf-8"))


def _articles() -> tuple[Article, ...]:
    """The page's articles as its parser reads them (repaired paragraphs, sections, bylines):
    what a web page or Word file of the same bulletin would hold, without the PDF's damage."""
    return parse_bulletin(load_bulletin(BULLETIN, REPO)).articles


def _body(article: Article) -> list[tuple[str, str]]:
    """The article's paragraphs with their sections, the head lines (which the parser reads
    into the first paragraph too) left to the page's own elements."""
    out = []
    for p in article.paragraphs:
        text = p.text
        if p.number == 1:
            # A dateline (本报讯 记者齐旭报道：) opens the paragraph on a web page too.
            byline = "" if article.dateline else article.byline
            for head in (article.kicker, article.headline, article.subtitle, byline):
                if head and text.startswith(head):
                    text = text[len(head) :].lstrip()
        out.append((p.section, text))
    return out


def _page(article: Article) -> str:
    """One article on a newspaper site: menus, the article with its kicker, byline, section
    headings and paragraphs, a sidebar, share buttons and a footer."""
    body = []
    section = ""
    for heading, text in _body(article):
        if heading and heading != section:
            section = heading
            body.append(f"<h2>{html.escape(section)}</h2>")
        body.append(f"<p>{html.escape(text)}</p>")
    kicker = f'<p class="kicker">{html.escape(article.kicker)}</p>' if article.kicker else ""
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>{html.escape(article.headline)} - 中国电子报</title>
<meta property="og:site_name" content="中国电子报">
<meta name="PubDate" content="{SIDECAR["date"]}"></head>
<body><header><nav><a href="/">首页</a> <a href="/news">要闻</a></nav></header>
<main><article>{kicker}
<h1>{html.escape(article.headline)}</h1>
<div class="meta"><span class="byline">{html.escape(article.byline)}</span></div>
{"".join(body)}
</article><aside><h3>热门排行</h3><ol><li><a href="/a">上海发布集成电路新政</a></li></ol></aside>
</main><div class="share">分享到：<a>微信</a><a>微博</a></div>
<footer><p>版权所有 中国电子报社 京ICP备12345678号</p></footer></body></html>"""


def _word_file(articles: tuple[Article, ...]) -> bytes:
    """The whole page as one Word file: each article a heading, its sections headings below."""
    document = docx.Document()
    document.core_properties.title = SIDECAR["title"]
    year, month = (int(x) for x in SIDECAR["date"].split("-")[:2])
    document.core_properties.created = datetime(year, month, 1, tzinfo=UTC)
    for article in articles:
        if article.kicker:
            document.add_paragraph(article.kicker)
        document.add_heading(article.headline, level=1)
        if article.byline and not article.dateline:
            document.add_paragraph(article.byline)
        section = ""
        for heading, text in _body(article):
            if heading and heading != section:
                section = heading
                document.add_heading(section, level=2)
            document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _corpus(folder: Path, version: str) -> Path:
    folder.mkdir()
    articles = _articles()
    if version == "web":
        for article in articles:
            (folder / f"article-{article.number}.html").write_text(_page(article), "utf-8")
    else:
        (folder / "page.docx").write_bytes(_word_file(articles))
    return folder


def _reports(real_embedder, folder: Path, corpus: Path) -> dict[str, dict]:
    settings = Settings(root=REPO, index_dir=folder / "index")
    build_index(load_bulletins([corpus], REPO), real_embedder, settings)
    index = load_index(settings, model_id=real_embedder.model_id, dim=real_embedder.dim)
    retriever = Retriever.from_settings(real_embedder, index, settings, shared_glossary())
    return {
        name: dataclasses.asdict(
            run_eval(
                load_questions(REPO / "eval" / name),
                local_search(retriever),
                retriever.passage_texts,
            )
        )
        for name in SETS
    }


@pytest.fixture(scope="module")
def text_reports(real_embedder, tmp_path_factory) -> dict[str, dict]:
    folder = tmp_path_factory.mktemp("text")
    corpus = folder / "corpus"
    corpus.mkdir()
    for path in (BULLETIN, BULLETIN.with_name(BULLETIN.stem + ".meta.json")):
        (corpus / path.name).write_bytes(path.read_bytes())
    return _reports(real_embedder, folder, corpus)


@pytest.mark.parametrize("version", ["web", "word"])
def test_the_page_published_otherwise_answers_as_well(
    real_embedder, tmp_path, text_reports, version
):
    reports = _reports(real_embedder, tmp_path, _corpus(tmp_path / "corpus", version))
    for name in SETS:
        report, text = reports[name], text_reports[name]
        shown = {k: round(v, 3) for k, v in report["overall"].items()}
        print(f"{version} {name}: {shown} {report['answerability']} (text {text['overall']})")
        fallen = regressions(_Report(report), text, tolerance=0.0)
        assert not fallen, "\n".join([f"{version} {name}:", *fallen])


class _Report:
    """A report read back from its dict, as the gate reads a baseline."""

    def __init__(self, row: dict) -> None:
        self.__dict__.update(row)
