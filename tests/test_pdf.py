"""PDFs as bulletins: our page and two archive pages drawn here in columns (tests.pdf_fixtures),
read back in their order, their pull quotes and captions labelled, every character accounted
for, cited with page and boxes; and the PDFs that are refused."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pytest

from rag.documents import ParsedBulletin
from rag.index.build import build_index, document_json
from rag.index.store import load_index
from rag.ingest.accounting import coverage
from rag.ingest.columns import PdfPage
from rag.ingest.load import (
    MAX_BYTES,
    PACKED_PER_TEXT_BYTE,
    BulletinError,
    find_bulletins,
    load_bulletin,
    load_bulletins,
)
from rag.ingest.pdf import MAX_PAGES, pdf_text, read_pages
from rag.ingest.structure import parse_bulletin
from rag.response import search_response
from rag.search.retriever import Retriever
from rag.settings import Settings
from tests.backends import built, settings_for
from tests.conftest import BULLETIN, REPO, FakeEmbedder, shared_glossary
from tests.pdf_fixtures import Sheet, archive_sheet, font, our_page, render
from tests.refusals import assert_index_kept, assert_refused_by_name
from tests.test_cli_streams import _env, _one_line_error, _rag
from tests.test_formats import government_page, word_file

SIDECAR = BULLETIN.with_name(BULLETIN.stem + ".meta.json")


def _squashed(text: str) -> str:
    # PDFium gives back a space the page spaced out as its own guess, which is not read: blanks
    # may differ, never a character that is not blank.
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module")
def archive_pages(archive_dir) -> list[Path]:
    pages = sorted(archive_dir.glob("*.txt"))
    return [pages[1], pages[4], pages[7]]


@pytest.fixture(scope="module")
def sheets(archive_pages) -> dict[str, Sheet]:
    return {
        "our page, 5 columns": our_page(),
        "archive page, 3 columns": archive_sheet(archive_pages[0], columns=3),
        "archive page, 4 columns": archive_sheet(archive_pages[1], columns=4),
        "archive page, spaced, 4 columns": _spaced(archive_sheet(archive_pages[2], columns=4)),
    }


def _spaced(sheet: Sheet) -> Sheet:
    sheet.spaced = True
    return sheet


SHEETS = [
    "our page, 5 columns",
    "archive page, 3 columns",
    "archive page, 4 columns",
    "archive page, spaced, 4 columns",
]


@pytest.fixture(scope="module")
def drawn(sheets, tmp_path_factory) -> dict[str, Path]:
    """Each sheet as a PDF file, with our page's sidecar beside our page."""
    folder = tmp_path_factory.mktemp("pdfs")
    out = {}
    for k, (name, sheet) in enumerate(sheets.items()):
        path = folder / (f"{BULLETIN.stem}.pdf" if k == 0 else f"archive-{k}.pdf")
        path.write_bytes(render(sheet))
        out[name] = path
    shutil.copy(SIDECAR, folder / SIDECAR.name)
    return out


def _parsed(path: Path) -> ParsedBulletin:
    return parse_bulletin(load_bulletin(path, path.parent))


def test_the_fixtures_are_the_same_bytes_every_time(sheets):
    sheet = sheets["our page, 5 columns"]
    assert render(sheet) == render(our_page())
    assert len(read_pages(render(sheet), MAX_PAGES)) == 2  # our page runs over onto a second


@pytest.mark.parametrize("name", SHEETS)
def test_columns_are_read_in_the_order_they_were_written(drawn, sheets, name):
    extracted = pdf_text(drawn[name].read_bytes())
    layout = extracted.layout
    assert layout is not None
    labelled = {(lab.span.start, lab.span.end) for lab in layout.labels}
    read, at = [], 0
    for paragraph in extracted.text.rstrip("\n").split("\n\n"):
        paragraph = paragraph.strip("\n")
        start = extracted.text.index(paragraph, at)
        at = start + len(paragraph)
        if (start, at) not in labelled:
            read.append(_squashed(paragraph))
    assert read == [_squashed(p) for p in sheets[name].paragraphs()]
    assert extracted.title == (sheets[name].paragraphs()[0])


@pytest.mark.parametrize("name", SHEETS)
def test_pull_quotes_and_captions_are_labelled_and_never_in_passages(drawn, sheets, name):
    parsed = _parsed(drawn[name])
    text = parsed.bulletin.text
    set_apart = {_squashed(t) for t in sheets[name].set_apart()}
    assert parsed.bulletin.layout is not None
    shown = parsed.bulletin.layout.labels
    found = {_squashed(text[lab.span.start : lab.span.end]): lab for lab in shown}
    assert set(found) == set_apart
    assert set(shown) <= set(parsed.labels)
    assert {lab.label for lab in found.values()} == {"pull_quote", "photo_caption"}
    for lab in found.values():
        if lab.label == "pull_quote":  # it names the paragraph whose clauses it repeats
            assert lab.repeats is not None
            clauses = re.split(r"[，。；、]", text[lab.span.start : lab.span.end])
            repeated = text[lab.repeats.start : lab.repeats.end]
            assert all(c in repeated for c in clauses if c)
        for article in parsed.articles:
            for paragraph in article.paragraphs:
                for s in paragraph.spans:
                    assert s.end <= lab.span.start or lab.span.end <= s.start


@pytest.mark.parametrize("name", SHEETS)
def test_every_character_of_a_pdf_is_accounted_for(drawn, name):
    parsed = _parsed(drawn[name])
    assert coverage(parsed).unaccounted == ()
    assert coverage(parsed).characters == len(_squashed(parsed.bulletin.text))


def test_our_page_as_a_pdf_is_parsed_as_its_text_is(drawn):
    pdf = _parsed(drawn["our page, 5 columns"])
    text = parse_bulletin(load_bulletin(BULLETIN, REPO))
    assert [a.headline for a in pdf.articles] == [a.headline for a in text.articles]
    assert pdf.bulletin.title == text.bulletin.title  # the sidecar's
    assert [a.byline for a in pdf.articles] == [a.byline for a in text.articles]


def _glyphs_inside(pages: list[PdfPage], page: int, box) -> str:
    glyphs = pages[page - 1].glyphs
    return "".join(
        g.text
        for g in glyphs
        if box.x0 <= (g.x0 + g.x1) / 2 <= box.x1 and box.y0 <= (g.top + g.bottom) / 2 <= box.y1
    )


@pytest.fixture(scope="module")
def pdf_index(drawn, tmp_path_factory):
    bulletins = load_bulletins([drawn["our page, 5 columns"].parent], REPO)
    settings = Settings(root=REPO, index_dir=tmp_path_factory.mktemp("pdf-index") / "index")
    build_index(bulletins, FakeEmbedder(), settings)
    index = load_index(settings, model_id=FakeEmbedder.model_id, dim=FakeEmbedder.dim)
    return {b.doc_id: b for b in bulletins}, Retriever(
        FakeEmbedder(), index, glossary=shared_glossary()
    )


@pytest.mark.parametrize(
    "question", ["北京商业航天2028目标是什么", "重庆工业投资增长目标", "宁夏工业增加值增长多少"]
)
def test_citations_of_a_pdf_carry_its_page_and_the_boxes_of_their_words(drawn, pdf_index, question):
    bulletins, retriever = pdf_index
    answer = retriever.answer(question, k=5)
    body = search_response(question, answer, 1.0, retriever.backend.document).model_dump()
    pages = {p: read_pages(p.read_bytes(), MAX_PAGES) for p in drawn.values()}
    assert body["results"]
    for result in body["results"]:
        citation = result["citation"]
        bulletin = bulletins[citation["doc_id"]]
        text = "".join(bulletin.text[s["start"] : s["end"]] for s in citation["spans"])
        assert text == result["text"]
        drawn_pages = pages[REPO / citation["source"]]
        assert citation["page"] == citation["boxes"][0]["page"] >= 1
        printed = ""
        for box in citation["boxes"]:
            page = drawn_pages[box["page"] - 1]
            assert 0 <= box["x0"] < box["x1"] <= page.width
            assert 0 <= box["y0"] < box["y1"] <= page.height
            printed += _glyphs_inside(drawn_pages, box["page"], _Box(**box))
        assert _squashed(printed) == _squashed(result["text"])


class _Box:
    def __init__(self, page: int, x0: float, y0: float, x1: float, y1: float) -> None:
        self.page, self.x0, self.y0, self.x1, self.y1 = page, x0, y0, x1, y1


def test_the_document_says_which_page_each_run_of_text_is_on(drawn):
    parsed = _parsed(drawn["our page, 5 columns"])
    stored = document_json(parsed)
    runs = stored["pages"]
    assert [r["page"] for r in runs] == [1, 2]
    assert runs[0]["start"] == 0 and runs[0]["end"] <= runs[1]["start"]
    text = parsed.bulletin.text
    assert text[runs[1]["end"] :].strip() == ""
    # A citation into a text bulletin has no page: its JSON is what it was.
    assert "pages" not in document_json(parse_bulletin(load_bulletin(BULLETIN, REPO)))


def test_a_mixed_folder_is_indexed_and_the_pdf_answers(tmp_path, drawn):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(BULLETIN, corpus / BULLETIN.name)
    shutil.copy(SIDECAR, corpus / SIDECAR.name)
    (corpus / "notice.html").write_text(government_page(), encoding="utf-8")
    (corpus / "plan.docx").write_bytes(word_file())
    shutil.copy(drawn["archive page, 4 columns"], corpus / "PAGE-05.PDF")  # any case
    assert {p.name for p in find_bulletins([corpus])} == {
        BULLETIN.name,
        "notice.html",
        "plan.docx",
        "PAGE-05.PDF",
    }
    run = _rag(_env(tmp_path), "index", str(corpus), fake=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("indexed 4 files, ")
    bulletins = load_bulletins([corpus], REPO)
    settings = Settings(root=REPO, index_dir=tmp_path / "index")
    index = load_index(settings, model_id=FakeEmbedder.model_id, dim=FakeEmbedder.dim)
    retriever = Retriever(FakeEmbedder(), index, glossary=shared_glossary())
    pdf = next(b for b in bulletins if b.doc_id == "PAGE-05")
    # A sentence of the PDF's, asked as it stands: the PDF answers it, cited with its page.
    sentence = next(
        s for s in re.findall(r"[^。\n]{20,60}。", pdf.text) if s not in BULLETIN.read_text()
    )
    answer = retriever.answer(sentence, k=3)
    top = answer.hits[0].passage
    assert top.doc_id == "PAGE-05" and sentence in top.text
    body = search_response(sentence, answer, 1.0, retriever.backend.document).model_dump()
    assert body["results"][0]["citation"]["page"] >= 1
    others = [r["citation"] for r in body["results"] if r["citation"]["doc_id"] != "PAGE-05"]
    assert all("page" not in c and "boxes" not in c for c in others)


# --- refused ----------------------------------------------------------------------------------


def _image_only() -> bytes:
    """A scanned page: an image and no text."""
    from PIL import Image
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    pdf = canvas.Canvas(out, invariant=1)
    pdf.drawImage(ImageReader(Image.linear_gradient("L")), 50, 50, 400, 600)
    pdf.showPage()
    pdf.save()
    return out.getvalue()


def _pages(count: int) -> bytes:
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    pdf = canvas.Canvas(out, invariant=1)
    for k in range(count):
        pdf.setFont(font(), 12)
        pdf.drawString(72, 720, f"第{k + 1}页")
        pdf.showPage()
    pdf.save()
    return out.getvalue()


def _damaged() -> bytes:
    """A whole file (header to %%EOF) whose insides were overwritten."""
    whole = _pages(1)
    return whole[:20] + b"\x00" * (len(whole) - 60) + whole[-40:]


BAD = {
    "encrypted.pdf": (lambda: render(our_page(), encrypt="pw"), "encrypted"),
    "scanned.pdf": (_image_only, "no text layer (a scanned page?); OCR is not done"),
    "cut-short.pdf": (lambda: render(our_page())[:30000], "cut short"),
    "damaged.pdf": (_damaged, "damaged"),
    "not-a-pdf.pdf": (lambda: "北京商业航天".encode(), "not a PDF"),
    "a-book.pdf": (lambda: _pages(MAX_PAGES + 1), f"more than the {MAX_PAGES}"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_pdf_is_refused_naming_the_file(tmp_path, name):
    data, words = BAD[name]
    assert_refused_by_name(tmp_path / name, data(), words)


def test_an_oversize_pdf_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "big.pdf"
    path.write_bytes(b"%PDF-1.4\n" + b" " * 2000 + b"\n%%EOF\n")
    with pytest.raises(BulletinError, match="RAG_MAX_BULLETIN_BYTES"):
        load_bulletin(path, tmp_path, max_bytes=10)


@pytest.mark.parametrize("name", sorted(BAD))
def test_rag_index_refuses_a_bad_pdf_in_one_line_and_keeps_the_index(tmp_path, drawn, name):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(drawn["archive page, 3 columns"], corpus / "page.pdf")
    (corpus / "plan.docx").write_bytes(word_file())
    data, words = BAD[name]
    assert_index_kept(tmp_path, corpus, name, data(), words)


def test_rag_ask_names_the_pdf_page_of_each_citation(tmp_path, drawn):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(drawn["our page, 5 columns"], corpus / "page.pdf")
    (corpus / "plan.docx").write_bytes(word_file())
    env = _env(tmp_path)
    assert _rag(env, "index", str(corpus), fake=True).returncode == 0
    run = _rag(env, "ask", "北京商业航天2028目标", fake=True)
    assert run.returncode == 0, run.stderr
    sources = [line.strip() for line in run.stdout.splitlines() if " @ " in line]
    pdf = [s for s in sources if s.split(" @ ")[0].endswith("page.pdf")]
    word = [s for s in sources if s.split(" @ ")[0].endswith("plan.docx")]
    assert pdf and all(re.search(r" \(PDF page [12]\)$", s) for s in pdf)
    assert word and not any("PDF page" in s for s in word)


def test_a_pdf_weighing_more_than_its_text_may_is_read_by_its_text(tmp_path):
    """A printed page's PDF weighs megabytes (fonts, photos) for kilobytes of text: the file
    may weigh PACKED_PER_TEXT_BYTE times the bulletin limit, its text no more than the limit."""
    heavy = render(our_page(), photo_pixels=800)
    path = tmp_path / "page.pdf"
    path.write_bytes(heavy)
    assert len(heavy) > MAX_BYTES  # refused unread before, however little text it held
    bulletin = load_bulletin(path, tmp_path)
    assert "到2028年，北京商业航天创新能力显著增强" in bulletin.text
    text_bytes = len(bulletin.text.encode("utf-8"))
    with pytest.raises(BulletinError, match=f"its text is {text_bytes} bytes") as info:
        load_bulletin(path, tmp_path, max_bytes=text_bytes - 1)
    assert str(path) in str(info.value)
    with pytest.raises(BulletinError, match=rf"{PACKED_PER_TEXT_BYTE} x RAG_MAX_BULLETIN_BYTES"):
        load_bulletin(path, tmp_path, max_bytes=len(heavy) // PACKED_PER_TEXT_BYTE - 1)
    text = tmp_path / "page.txt"
    text.write_text(bulletin.text, encoding="utf-8")
    with pytest.raises(BulletinError, match="a bulletin may be"):  # a text file: its own size
        load_bulletin(text, tmp_path, max_bytes=text_bytes - 1)


def test_rag_max_pdf_pages_sets_how_many_pages_a_pdf_may_have(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "issue.pdf").write_bytes(_pages(3))
    env = _env(tmp_path, RAG_MAX_PDF_PAGES="2")
    run = _rag(env, "index", str(corpus), fake=True)
    _one_line_error(run, 1, str(corpus / "issue.pdf"), "3 pages, more than the 2")
    assert "RAG_MAX_PDF_PAGES" in run.stderr
    assert not (tmp_path / "index").exists()


def test_a_pdf_s_citations_on_milvus_are_the_local_ones(drawn, pdf_index, tmp_path, request):
    """Milvus keeps the same stored document (its layout in parts): the same pages and boxes,
    the second time from the backend's cache of documents."""
    bulletins, local = pdf_index
    settings = settings_for("lite", tmp_path, request)
    milvus = built(settings, FakeEmbedder(), list(bulletins.values()))
    question = "北京商业航天2028目标是什么"
    want = search_response(question, local.answer(question), 1.0, local.backend.document)
    for _ in range(2):
        got = search_response(question, milvus.answer(question), 1.0, milvus.backend.document)
        assert [r.citation for r in got.results] == [r.citation for r in want.results]
        assert any(r.citation.page for r in got.results)
    doc_id = got.results[0].citation.doc_id
    assert milvus.backend.document(doc_id) is milvus.backend.document(doc_id)  # cached
