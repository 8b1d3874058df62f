"""PDF files as bulletin text: the bytes of a `.pdf` in, the text the pipeline indexes and cites
into out, with where each of its characters was printed (rag.documents.Layout).

pypdfium2 (PDFium, Apache-2.0/BSD-3) reads each page's characters with their boxes and font
sizes, and where its images and drawn frames are; rag.ingest.columns reads those in order
(columns, headline, pull quotes, captions). What cannot be read is a `FormatError` without the
file's name; the loader names it. Nothing is rendered and no OCR is done.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from rag.ingest.columns import Glyph, PdfPage, read_layout
from rag.ingest.formats import Extracted, FormatError

# The default of RAG_MAX_PDF_PAGES. A bulletin is a newspaper page or a few; a whole issue is
# some dozens. More pages than this is a book or a report, refused before any page is read.
MAX_PAGES = 64
# Where a PDF must open with its header and close with its end-of-file marker (the spec allows
# junk before the header within the first 1024 bytes; writers put a line break or so after).
_HEADER_WITHIN = 1024
_EOF_WITHIN = 1024
# PDFium's error code for a document it cannot open without a password (FPDF_ERR_PASSWORD).
_PASSWORD_ERROR = 4


def pdf_text(raw: bytes, max_pages: int = MAX_PAGES) -> Extracted:
    """A PDF's text in reading order, headline first, paragraphs between blank lines, with its
    layout; refuses what is not a PDF, is cut short, damaged, encrypted, too long, or has no
    text layer."""
    pages = read_pages(raw, max_pages)
    if not any(p.glyphs for p in pages):
        raise FormatError(
            f"no text layer (a scanned page?); OCR is not done: its {len(pages)} page(s) hold "
            "only images or drawings; use the PDF the paper was typeset as"
        )
    read = read_layout(pages)
    return Extracted(text=read.text, title=read.title, layout=read.layout)


def read_pages(raw: bytes, max_pages: int) -> list[PdfPage]:
    """Every page's characters, images and frames, read with PDFium."""
    import pypdfium2 as pdfium

    check_envelope(raw)
    try:
        document = pdfium.PdfDocument(raw)
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == _PASSWORD_ERROR:
            raise FormatError(
                "encrypted: it opens only with a password; save a copy without one and retry"
            ) from exc
        raise FormatError(f"damaged: PDFium cannot read it ({exc})") from exc
    try:
        count = len(document)
        if count > max_pages:
            raise FormatError(
                f"{count} pages, more than the {max_pages} a bulletin may have "
                "(RAG_MAX_PDF_PAGES); split it into smaller bulletins"
            )
        if count == 0:
            raise FormatError("the PDF has no pages")
        return [_page(document[i], i + 1) for i in range(count)]
    finally:
        document.close()


def check_envelope(raw: bytes) -> None:
    """Refuse what is not a PDF, or was cut short, before PDFium sees it: PDFium rebuilds a
    broken file as best it can, and a file cut in half would be read as the half it holds."""
    if b"%PDF-" not in raw[:_HEADER_WITHIN]:
        raise FormatError("not a PDF (it does not start with %PDF-); give it its real suffix")
    if b"%%EOF" not in raw[-_EOF_WITHIN:]:
        raise FormatError(
            "cut short (no %%EOF at its end): it was not saved or copied whole; copy it again"
        )


def _page(page: Any, number: int) -> PdfPage:
    import pypdfium2.raw as pdfium_c

    width, height = page.get_size()
    text_page = page.get_textpage()
    glyphs: list[Glyph] = []
    try:
        for i in range(text_page.count_chars()):
            # What PDFium adds between glyphs is its own guess, not the page's: line breaks,
            # and spaces where it sees a gap (a justified line of Chinese has them all along;
            # a real space in one may come back as its guess, and is then lost, a blank).
            if pdfium_c.FPDFText_IsGenerated(text_page.raw, i):
                continue
            code = pdfium_c.FPDFText_GetUnicode(text_page.raw, i)
            char = chr(code) if 0 < code < 0x110000 else ""
            if not char or unicodedata.category(char)[0] == "C":
                continue
            left, bottom, right, top = text_page.get_charbox(i, loose=True)
            size = pdfium_c.FPDFText_GetFontSize(text_page.raw, i)
            glyphs.append(Glyph(char, left, height - top, right, height - bottom, round(size, 2)))
        images: list[tuple[float, float, float, float]] = []
        frames: list[tuple[float, float, float, float]] = []
        for obj in page.get_objects():
            if obj.type not in (pdfium_c.FPDF_PAGEOBJ_IMAGE, pdfium_c.FPDF_PAGEOBJ_PATH):
                continue
            left, bottom, right, top = obj.get_bounds()
            box = (left, height - top, right, height - bottom)
            (images if obj.type == pdfium_c.FPDF_PAGEOBJ_IMAGE else frames).append(box)
    finally:
        text_page.close()
        page.close()
    return PdfPage(number, width, height, tuple(glyphs), tuple(images), tuple(frames))
