"""Newspaper pages as PDFs, made here with reportlab: a headline over its columns, articles whose
text runs from the foot of one column to the head of the next and on to the next page, a pull
quote in a frame repeating a sentence of the body in larger type, a photo with its caption in
small type under it. Deterministic: the same text gives the same bytes.

Each page is drawn from a `Sheet`: its title and its articles, each a list of `Piece`s in the
order a reader reads them; what a test expects the PDF to read back is `Sheet.paragraphs()`.
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rag.ingest import heads
from rag.ingest.load import load_bulletin
from rag.ingest.structure import parse_bulletin
from tests.conftest import BULLETIN

FONT_FILE = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
FONT = "wqy-microhei"
PAGE = (842.0, 1191.0)  # A3, in points
MARGIN = 36.0
GUTTER = 14.0
BODY, LEADING = 9.5, 13.5
PARAGRAPH_SPACE = 0.7 * LEADING  # between the paragraphs of a spaced sheet
TITLE, HEADLINE, HEADING, QUOTE, SMALL = 26.0, 18.0, 11.0, 12.5, 7.5


@dataclass(frozen=True)
class Piece:
    """What an article holds, in reading order: body | heading | byline | pull_quote | photo
    (a photo's caption is its text; the image is drawn above it)."""

    kind: str
    text: str


@dataclass
class Article:
    headline: str  # "" for text without one
    pieces: list[Piece] = field(default_factory=list)


@dataclass
class Sheet:
    title: str
    articles: list[Article]
    columns: int
    # Paragraphs told by a blank space between them rather than by an indent, as many
    # government notices are set.
    spaced: bool = False

    def paragraphs(self) -> list[str]:
        """What the PDF must read back, in order, leaving out pull quotes and captions."""
        out = [self.title] if self.title else []
        for a in self.articles:
            out.extend([a.headline] if a.headline else [])
            out.extend(p.text for p in a.pieces if p.kind not in ("pull_quote", "photo"))
        return out

    def set_apart(self) -> list[str]:
        return [
            p.text for a in self.articles for p in a.pieces if p.kind in ("pull_quote", "photo")
        ]


@functools.cache
def font() -> str:
    """The CJK font the Makefile installs (fonts-wqy-microhei), registered with reportlab."""
    if not FONT_FILE.is_file():
        pytest.fail(
            f"{FONT_FILE} is missing: the PDF tests draw their pages in it; run `make test`, "
            "which installs fonts-wqy-microhei",
            pytrace=False,
        )
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    pdfmetrics.registerFont(TTFont(FONT, str(FONT_FILE), subfontIndex=0))
    return FONT


# --- what is drawn: our page, and archive pages -----------------------------------------------


def our_page() -> Sheet:
    """corpus/000_a1e9ce7368794dc6.txt as its paper printed it: its rubric over four articles,
    each paragraph whole (as the parser repairs the text version's column breaks), the text
    version's pull quotes framed in their articles, and a photo in the Beijing article."""
    parsed = parse_bulletin(load_bulletin(BULLETIN, BULLETIN.parent))
    text = parsed.bulletin.text
    quotes = [lab for lab in parsed.labels if lab.label == "pull_quote"]
    bylines = {lab.span for lab in parsed.labels if lab.label == "byline"}
    title = ""
    articles = []
    for a in parsed.articles:
        title = title or a.kicker
        pieces: list[Piece] = []
        byline = [s for s in bylines if a.span.start <= s.start < a.span.end]
        if byline:
            pieces.append(Piece("byline", text[byline[0].start : byline[0].end]))
        section = ""
        for p in a.paragraphs:
            if p.section != section:
                pieces.append(Piece("heading", p.section))
                section = p.section
            # The first paragraph holds the head too (structure reads it there): its text is
            # what follows the head's last line.
            pieces.append(Piece("body", p.text[p.text.rfind("\n") + 1 :]))
        for q in quotes:
            if a.span.start <= q.span.start < a.span.end:
                pieces.insert(
                    min(len(pieces) - 1, 6), Piece("pull_quote", text[q.span.start : q.span.end])
                )
                break
        if "北京" in a.headline:
            pieces.insert(
                4, Piece("photo", "北京经济技术开发区“火箭大街”一角。（本报记者 齐旭摄）")
            )
        articles.append(Article(a.headline, pieces))
    return Sheet(title, articles, columns=5)


def archive_sheet(page: Path, columns: int, paragraphs: int = 40) -> Sheet:
    """The first `paragraphs` paragraphs of an archive page: its short heading-like lines as
    headlines over their articles, a byline small, a photo's credit under a photo, the rest
    body; a pull quote repeating the first sentence of the longest paragraph, and a photo
    after it."""
    blocks = [b.strip() for b in page.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    articles: list[Article] = []
    for block in blocks[:paragraphs]:
        if heads.heading_like(block) and not heads.is_byline(block):
            if articles and not articles[-1].pieces:
                articles[-1].pieces.append(Piece("heading", block))  # a subtitle
            else:
                articles.append(Article(block))
        else:
            if not articles:
                articles.append(Article(""))
            kind = "byline" if heads.is_byline(block) else "body"
            if heads.PHOTO_CREDIT.match(block):
                kind = "photo"  # a photo's credit: printed under its photo
            articles[-1].pieces.append(Piece(kind, block))
    longest = max((a for a in articles), key=lambda a: sum(len(p.text) for p in a.pieces))
    body = max((p for p in longest.pieces if p.kind == "body"), key=lambda p: len(p.text))
    sentence = body.text[: body.text.index("。") + 1] if "。" in body.text[:80] else ""
    at = longest.pieces.index(body) + 1
    if sentence:
        longest.pieces.insert(at, Piece("pull_quote", sentence))
    longest.pieces.insert(at, Piece("photo", "（新华社记者 兰红光摄）"))
    return Sheet("", articles, columns=columns)


# --- drawing ----------------------------------------------------------------------------------


@dataclass
class _Item:
    """Something that stands in a column: a line of body text, a heading, a frame, a photo."""

    kind: str
    height: float
    lines: list[str]
    first: bool = False  # a paragraph's first line (indented)
    last: bool = False  # a paragraph's last line (not justified)


def render(sheet: Sheet, *, encrypt: str | None = None, photo_pixels: int = 0) -> bytes:
    """The sheet as a PDF (A3 pages, `sheet.columns` columns), the same bytes every time. Its
    photos are small grey gradients, or with `photo_pixels` grain of that many pixels a side
    that does not pack, so the file weighs what a printed page's PDF does."""
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=PAGE, invariant=1, encrypt=encrypt)
    pdf.setTitle(sheet.title)
    _Drawing(pdf, sheet.columns, photo_pixels, spaced=sheet.spaced).sheet(sheet)
    pdf.save()
    return out.getvalue()


class _Drawing:
    def __init__(self, pdf, columns: int, photo_pixels: int = 0, spaced: bool = False) -> None:
        self.pdf = pdf
        self.columns = columns
        self.photo_pixels = photo_pixels
        self.spaced = spaced
        self.width = (PAGE[0] - 2 * MARGIN - (columns - 1) * GUTTER) / columns
        self.y = MARGIN  # from the top of the page

    def sheet(self, sheet: Sheet) -> None:
        if sheet.title:
            self._centred(sheet.title, TITLE, self.y)
            self.y += TITLE * 1.3
            self.pdf.setLineWidth(1.5)
            self.pdf.line(MARGIN, PAGE[1] - self.y, PAGE[0] - MARGIN, PAGE[1] - self.y)
            self.y += 16
        for article in sheet.articles:
            self.article(article)
        self.pdf.showPage()

    def article(self, article: Article) -> None:
        if PAGE[1] - MARGIN - self.y < 160:
            self._next_page()
        if article.headline:
            for line in _wrap(article.headline, HEADLINE, PAGE[0] - 2 * MARGIN):
                self._text(line, HEADLINE, MARGIN, self.y)
                self.y += HEADLINE * 1.25
            self.y += 8
        items = [i for p in article.pieces for i in self._items(p)]
        while items:
            items = self._columns(items)
            if items:
                self._next_page()
        self.y += 22

    def _next_page(self) -> None:
        self.pdf.showPage()
        self.y = MARGIN

    def _items(self, piece: Piece) -> list[_Item]:
        w = self.width
        if piece.kind == "body":
            indent = 0.0 if self.spaced else 2 * BODY
            lines = _wrap(piece.text, BODY, w, indent=indent)
            last = len(lines) - 1
            space = PARAGRAPH_SPACE if self.spaced else 0.0
            return [
                _Item(
                    "body",
                    LEADING + (space if k == last else 0.0),
                    [line],
                    first=k == 0 and not self.spaced,
                    last=k == last,
                )
                for k, line in enumerate(lines)
            ]
        if piece.kind == "heading":
            lines = _wrap(piece.text, HEADING, w)
            return [_Item("heading", HEADING * 1.3 * len(lines) + 10, lines)]
        if piece.kind == "byline":
            return [_Item("byline", SMALL * 1.4 + 6, _wrap(piece.text, SMALL, w))]
        if piece.kind == "pull_quote":
            lines = _wrap(piece.text, QUOTE, w - 16)
            return [_Item("pull_quote", QUOTE * 1.35 * len(lines) + 26, lines)]
        lines = _wrap(piece.text, SMALL, w)
        return [_Item("photo", 0.6 * w + SMALL * 1.4 * len(lines) + 14, lines)]

    def _columns(self, items: list[_Item]) -> list[_Item]:
        """Items into this page's columns from self.y, balanced; what does not fit is returned."""
        room = PAGE[1] - MARGIN - self.y
        total = sum(i.height for i in items)
        height = min(room, math.ceil(total / self.columns / LEADING + 1) * LEADING)
        column, used, deepest = 0, 0.0, 0.0
        for k, item in enumerate(items):
            if used + item.height > height:
                column, used = column + 1, 0.0
                if column == self.columns:
                    self.y += deepest
                    return items[k:]
            x = MARGIN + column * (self.width + GUTTER)
            self._item(item, x, self.y + used)
            used += item.height
            deepest = max(deepest, used)
        self.y += deepest
        return []

    def _item(self, item: _Item, x: float, y: float) -> None:
        w = self.width
        if item.kind == "body":
            indent = 2 * BODY if item.first else 0.0
            self._text(
                item.lines[0], BODY, x + indent, y, justify=None if item.last else w - indent
            )
        elif item.kind == "heading":
            for k, line in enumerate(item.lines):
                self._centred(line, HEADING, y + 4 + k * HEADING * 1.3, x, w)
        elif item.kind == "byline":
            self._text(item.lines[0], SMALL, x, y + 2)
        elif item.kind == "pull_quote":
            self.pdf.setLineWidth(1)
            self.pdf.rect(x + 2, PAGE[1] - (y + item.height - 6), w - 4, item.height - 12)
            for k, line in enumerate(item.lines):
                self._centred(line, QUOTE, y + 13 + k * QUOTE * 1.35, x, w)
        else:
            from PIL import Image
            from reportlab.lib.utils import ImageReader

            # A photo: a grey gradient, or seeded grain; the same pixels every time.
            image = Image.linear_gradient("L").resize((64, 40))
            if self.photo_pixels:
                import numpy as np

                side = self.photo_pixels
                grain = np.random.default_rng(side).integers(0, 256, (side, side), np.uint8)
                image = Image.fromarray(grain, "L")
            tall = 0.6 * w
            self.pdf.drawImage(ImageReader(image), x, PAGE[1] - (y + 4 + tall), w, tall)
            for k, line in enumerate(item.lines):
                self._centred(line, SMALL, y + tall + 8 + k * SMALL * 1.4, x, w)

    def _text(
        self, text: str, size: float, x: float, top: float, justify: float | None = None
    ) -> None:
        """One line whose type's top is at `top`; spread to `justify` points when given."""
        from reportlab.pdfbase.pdfmetrics import stringWidth

        line = self.pdf.beginText()
        line.setFont(font(), size)
        if justify is not None and len(text) > 1:
            line.setCharSpace((justify - stringWidth(text, font(), size)) / (len(text) - 1))
        line.setTextOrigin(x, PAGE[1] - top - size)
        line.textOut(text)
        self.pdf.drawText(line)

    def _centred(
        self, text: str, size: float, top: float, x: float = MARGIN, w: float = PAGE[0] - 2 * MARGIN
    ) -> None:
        from reportlab.pdfbase.pdfmetrics import stringWidth

        self._text(text, size, x + (w - stringWidth(text, font(), size)) / 2, top)


def _wrap(text: str, size: float, width: float, indent: float = 0.0) -> list[str]:
    """Lines of at most `width` points (the first `indent` in), never breaking a run of Latin
    letters or digits (2028, 5G, AI), as type is set."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    runs: list[str] = []
    for ch in text:
        if (
            runs
            and ch.isascii()
            and ch.isalnum()
            and runs[-1][-1].isascii()
            and runs[-1][-1].isalnum()
        ):
            runs[-1] += ch
        else:
            runs.append(ch)
    lines, current, room = [], "", width - indent
    for run in runs:
        if current and stringWidth(current + run, font(), size) > room:
            lines.append(current)
            current, room = "", width
        current += run
    if current:
        lines.append(current)
    return lines
