"""A PDF's pages read as a reader reads a newspaper page: the extracted text, and where each of
its characters was printed.

Pure functions over the glyphs rag.ingest.pdf reads into `PdfPage`s (boxes in points from the
top left, font sizes). A page is read in four steps:
- glyphs of one size whose centres share a height make a row, cut where a gap wider than a
  character opens (a column's gutter): those are the printed lines;
- the page is cut by blank bands (recursive XY-cut): first across its width (a headline over
  its columns stands apart from them), then down its height (the gutters), and so on inside
  each part, so columns are read left to right, each top to bottom;
- lines of the body's font size make paragraphs, a new one where a line is indented (or the
  line before stopped short, or a blank stands between them); a paragraph cut at a column's
  foot goes on at the next column's head, which is not indented. Lines of another size, or in a
  drawn frame, make blocks of their own; a frame, a caption or a small line met inside a
  paragraph comes after it, so that the paragraph reads whole;
- the headline is the largest type at the top of the first page, and comes first. A block in a
  frame or in larger type whose every clause the body holds is a pull quote; small type by an
  image, or a photo's credit line (（新华社记者某某摄）), a caption. Both are labelled spans of
  the text (rag.documents.Layout.labels), never indexed and never dropped unsaid.
The text is a headline first, then paragraphs between blank lines, as rag.ingest.formats
writes a web page; rag.ingest.structure reads it as any other bulletin.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from rag.documents import Label, Layout, Span, TextLine
from rag.ingest import heads

# Type this much larger than the body's is a headline's, a heading's or a pull quote's.
LARGER = 1.12
# A headline of an article (not a section heading) is set at least this much larger.
HEADLINE = 1.4
# Type this much smaller than the body's, by an image, is a caption's.
SMALLER = 0.92
# A gap between two glyphs of a row wider than this many characters is a gutter.
GUTTER = 0.8
# A blank band this many body characters tall (or wide) cuts a part of the page in two. The
# leading between two lines of a column is a third of a character.
CUT = 0.5
# A line that starts this many characters in from its column's left edge opens a paragraph
# (Chinese type indents two); one that ends this far short of the right edge closes one.
INDENT = 1.5
# A blank this many characters tall between two lines of one column opens a paragraph too: a
# notice set without indents tells its paragraphs so (the leading between lines is a third).
PARAGRAPH_GAP = 0.7
# A caption stands within this many of its characters of its image's edge.
CAPTION_REACH = 2.0
# A pull quote is at most this long (rag.ingest.structure: 90, with room for a longer quote).
MAX_PULL_QUOTE = 120
_CLAUSE_SPLIT = re.compile(r"[，、；。！？：“”‘’《》（）,;:!?()\s]+")
_ASCII_WORD = re.compile(r"[A-Za-z0-9]")
_SENTENCE_END = set("。！？!?…")
T = TypeVar("T")


@dataclass(frozen=True)
class Glyph:
    """One printed character: its box in points from the page's top left, its font size."""

    text: str
    x0: float
    top: float
    x1: float
    bottom: float
    size: float


@dataclass(frozen=True)
class PdfPage:
    number: int  # 1-based
    width: float
    height: float
    glyphs: tuple[Glyph, ...]  # in the order the page's content draws them
    images: tuple[tuple[float, float, float, float], ...]  # x0, top, x1, bottom
    frames: tuple[tuple[float, float, float, float], ...]  # drawn paths: rules, boxes


@dataclass
class Line:
    """One printed line: its glyphs left to right (no blanks at either end)."""

    page: int
    glyphs: list[Glyph]
    size: float
    text: str = ""
    left: float = 0.0  # its column's edges, once the page is cut
    right: float = 0.0
    kind: str = "body"  # body | larger | framed | caption | other

    def __post_init__(self) -> None:
        self.text = "".join(g.text for g in self.glyphs)

    @property
    def x0(self) -> float:
        return self.glyphs[0].x0

    @property
    def x1(self) -> float:
        return self.glyphs[-1].x1

    @property
    def top(self) -> float:
        return min(g.top for g in self.glyphs)

    @property
    def bottom(self) -> float:
        return max(g.bottom for g in self.glyphs)


@dataclass
class Unit:
    """A paragraph or a block of its own, as it will stand in the text."""

    kind: str
    lines: list[Line] = field(default_factory=list)
    label: str = ""  # pull_quote | photo_caption | ""
    span: Span = field(default_factory=lambda: Span(0, 0))

    @property
    def text(self) -> str:
        return "".join(line.text for line in self.lines)

    @property
    def size(self) -> float:
        return self.lines[0].size


@dataclass(frozen=True)
class ReadLayout:
    text: str
    title: str
    layout: Layout


def read_layout(pages: list[PdfPage]) -> ReadLayout:
    """The pages' text in reading order, its title, and its layout."""
    body = body_size(pages)
    ordered: list[Line] = []
    for page in pages:
        lines = printed_lines(page)
        for line in lines:
            line.kind = _kind(line, page, body)
        ordered.extend(reading_order(lines, CUT * body))
    units = _units(ordered, body)
    title = _title(units, pages)
    if title is not None:
        units.remove(title)
        units.insert(0, title)
    _label(units)
    rubric = title is not None and _is_rubric(title, units, body)
    return _assemble(units, pages, rubric)


def body_size(pages: list[PdfPage]) -> float:
    """The font size most characters are set in."""
    sizes = Counter(_rounded(g.size) for p in pages for g in p.glyphs if not g.text.isspace())
    return sizes.most_common(1)[0][0] if sizes else 10.0


def _rounded(size: float) -> float:
    return round(size * 2) / 2  # 9.5 and 9.52 are one size


def printed_lines(page: PdfPage) -> list[Line]:
    """The page's glyphs as lines: one size, one baseline, no gutter inside.

    Each size's glyphs are cut where their baselines part (a third of a character: lines of a
    column are a line's height apart) and where a gutter opens, again inside each part, until
    nothing more parts: columns whose baselines are offset from each other come apart at the
    gutters, and their lines then at the baselines."""
    by_size: dict[float, list[Glyph]] = {}
    for g in page.glyphs:
        by_size.setdefault(_rounded(g.size), []).append(g)
    lines: list[Line] = []
    for size, glyphs in by_size.items():
        work = [glyphs]
        while work:
            group = work.pop()
            rows = _parts(group, lambda g: (g.bottom, g.bottom), 0.3 * size)
            if len(rows) == 1:
                rows = _parts(group, lambda g: (g.x0, g.x1), GUTTER * size)
            if len(rows) > 1:
                work.extend(rows)
                continue
            piece = sorted(group, key=lambda g: g.x0)
            while piece and piece[0].text.isspace():
                piece = piece[1:]
            while piece and piece[-1].text.isspace():
                piece = piece[:-1]
            if piece:
                lines.append(Line(page.number, piece, size))
    return lines


def _parts(
    items: list[T], extent: Callable[[T], tuple[float, float]], gap: float, *, wide: bool = False
) -> list[list[T]]:
    """The items (glyphs, lines) grouped where more than `gap` runs between their extents (at
    least `gap`, with `wide`: a blank band that wide cuts a page)."""
    ordered = sorted(items, key=lambda x: extent(x)[0])
    groups = [[ordered[0]]]
    reach = extent(ordered[0])[1]
    for item in ordered[1:]:
        low, high = extent(item)
        if low - reach > gap or (wide and low - reach == gap):
            groups.append([item])
        else:
            groups[-1].append(item)
        reach = max(reach, high)
    return groups


def reading_order(lines: list[Line], gap: float) -> list[Line]:
    """The lines in reading order (XY-cut), each told its column's edges."""
    return _cut(lines, None, gap) if lines else []


def _cut(lines: list[Line], column: tuple[float, float] | None, gap: float) -> list[Line]:
    """`column`: the edges of the column these lines were cut from, which a strip of it keeps
    (an indented line alone between a frame and a photo is indented from its column's edge);
    None above the first cut down the page, where a strip's own lines give its edges."""
    if len(lines) > 1:
        strips = _parts(lines, lambda x: (x.top, x.bottom), gap, wide=True)
        if len(strips) > 1:  # across the width first: a strip is read before the one below
            return [x for s in strips for x in _cut(s, column, gap)]
        columns = _parts(lines, lambda x: (x.x0, x.x1), gap, wide=True)
        if len(columns) > 1:
            return [x for c in columns for x in _cut(c, _edges(c), gap)]
    left, right = column or _edges(lines)
    for line in lines:
        line.left, line.right = left, right
    return sorted(lines, key=lambda x: (x.top, x.x0))


def _edges(lines: list[Line]) -> tuple[float, float]:
    return min(x.x0 for x in lines), max(x.x1 for x in lines)


def _kind(line: Line, page: PdfPage, body: float) -> str:
    ratio = line.size / body
    if heads.PHOTO_CREDIT.match(line.text):
        return "caption"
    if ratio < SMALLER and _by_an_image(line, page):
        return "caption"
    if _in_a_frame(line, page, body):
        return "framed"
    if ratio >= LARGER:
        return "larger"
    if ratio < SMALLER:
        return "other"
    return "body"


def _by_an_image(line: Line, page: PdfPage) -> bool:
    reach = CAPTION_REACH * line.size
    return any(
        x0 < line.x1
        and line.x0 < x1
        and (-1 <= line.top - bottom <= reach or -1 <= top - line.bottom <= reach)
        for x0, top, x1, bottom in page.images
    )


def _in_a_frame(line: Line, page: PdfPage, body: float) -> bool:
    # A rule under a headline is a path too: a frame is a box at least two lines tall.
    return any(
        bottom - top >= 2 * body
        and x0 - 1 <= line.x0
        and line.x1 <= x1 + 1
        and top - 1 <= line.top
        and line.bottom <= bottom + 1
        for x0, top, x1, bottom in page.frames
    )


def _units(ordered: list[Line], body: float) -> list[Unit]:
    """Lines into paragraphs and blocks, in reading order (see the module's docstring)."""
    units: list[Unit] = []
    paragraph: Unit | None = None
    waiting: list[Unit] = []  # blocks met inside the open paragraph

    def close() -> None:
        nonlocal paragraph
        if paragraph is not None:
            units.append(paragraph)
            paragraph = None
        units.extend(waiting)
        waiting.clear()

    for line in ordered:
        if line.kind == "body":
            # A blank after a block met inside the paragraph (a photo in its column) is that
            # block's room, not a paragraph's end.
            if paragraph is not None and _opens_paragraph(
                line, paragraph.lines[-1], spacing=not waiting
            ):
                close()
            if paragraph is None:
                close()
                paragraph = Unit("body")
            paragraph.lines.append(line)
            continue
        pending = waiting if paragraph is not None and line.kind != "larger" else units
        if line.kind == "larger":
            close()
        last = pending[-1] if pending else None
        if last is not None and _same_block(last.lines[-1], line):
            last.lines.append(line)
        else:
            pending.append(Unit(line.kind, [line]))
    close()
    return units


def _opens_paragraph(line: Line, before: Line, *, spacing: bool) -> bool:
    indented = line.x0 - line.left >= INDENT * line.size
    stopped_short = before.right - before.x1 >= INDENT * before.size
    spaced = (
        spacing
        and line.page == before.page
        and line.left == before.left
        and line.top - before.bottom >= PARAGRAPH_GAP * line.size
    )
    return indented or stopped_short or spaced


def _same_block(before: Line, line: Line) -> bool:
    if before.kind == "caption" and line.kind == "other":
        line.kind = "caption"  # a caption's next line, further from its image
    return (
        before.kind == line.kind
        and before.size == line.size
        and before.page == line.page
        and before.left == line.left
        and -1 <= line.top - before.bottom <= line.size
    )


def _title(units: list[Unit], pages: list[PdfPage]) -> Unit | None:
    """The largest type in the top third of the first page."""
    top = [
        u
        for u in units
        if u.lines[0].page == pages[0].number and u.lines[0].top <= pages[0].height / 3
    ]
    return max(top, key=lambda u: u.size, default=None)


def _is_rubric(title: Unit, units: list[Unit], body: float) -> bool:
    """Whether the title is the page's (over several articles' headlines, set larger than any):
    it then stands apart, two blank lines under it, as a rubric over the first article's
    headline does in a page's text (rag.ingest.segment reads it as that article's kicker)."""
    others = [u for u in units[1:] if u.size >= HEADLINE * body]
    return len(others) >= 2 and all(title.size > u.size for u in units[1:])


def _clauses(text: str) -> list[str]:
    return [c for c in _CLAUSE_SPLIT.split(text) if len(c) >= 2]


def _label(units: list[Unit]) -> None:
    """Captions, and the framed or larger blocks the body repeats: pull quotes."""
    body = [u for u in units if u.kind == "body"]
    joined = "\n".join(u.text for u in body)
    for unit in units:
        if unit.kind == "caption":
            unit.label = "photo_caption"
        elif unit.kind in ("framed", "larger") and len(unit.text) <= MAX_PULL_QUOTE:
            # Unframed, only a sentence is a pull quote: a section heading in larger type
            # names words its section says again (迭代优化产业空间布局“一张图”).
            if unit.kind == "larger" and unit.text[-1] not in _SENTENCE_END:
                continue
            clauses = _clauses(unit.text)
            if clauses and all(c in joined for c in clauses):
                unit.label = "pull_quote"


def _repeated(unit: Unit, units: list[Unit]) -> Span:
    """The span of the body paragraph holding the pull quote's longest clause."""
    key = max(_clauses(unit.text), key=len)
    return next(u.span for u in units if u.kind == "body" and key in u.text)


def _assemble(units: list[Unit], pages: list[PdfPage], rubric: bool) -> ReadLayout:
    parts: list[str] = []
    at = 0
    lines: list[TextLine] = []
    for k, unit in enumerate(units):
        if k:
            gap = "\n\n\n" if k == 1 and rubric else "\n\n"
            parts.append(gap)
            at += len(gap)
        start = at
        for j, line in enumerate(unit.lines):
            if j and _ASCII_WORD.match(line.text[0]) and _ASCII_WORD.match(parts[-1][-1]):
                parts.append(" ")  # words of a Latin text broken over two lines
                at += 1
            parts.append(line.text)
            lines.append(
                TextLine(
                    start=at,
                    end=at + len(line.text),
                    page=line.page,
                    top=line.top,
                    bottom=line.bottom,
                    x0=tuple(g.x0 for g in line.glyphs),
                    x1=tuple(g.x1 for g in line.glyphs),
                )
            )
            at += len(line.text)
        unit.span = Span(start, at)
    text = "".join(parts) + "\n"
    labels = [
        Label(u.label, u.span, repeats=_repeated(u, units) if u.label == "pull_quote" else None)
        for u in units
        if u.label
    ]
    return ReadLayout(
        text=text,
        title=units[0].text if units else "",
        layout=Layout(
            lines=tuple(lines),
            labels=tuple(labels),
            page_sizes=tuple((p.width, p.height) for p in pages),
        ),
    )
