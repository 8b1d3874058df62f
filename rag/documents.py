"""The records that pass between pipeline stages. Offsets are Unicode code points."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    """A half-open range [start, end) of code points in a bulletin's source text."""

    start: int
    end: int


@dataclass(frozen=True)
class TextLine:
    """Where one printed line's piece of a PDF's extracted text stands on its page: text
    [start, end) is the line's characters in order, character k at x0[k]..x1[k] between top and
    bottom (PDF points, origin at the page's top left)."""

    start: int
    end: int
    page: int  # 1-based
    top: float
    bottom: float
    x0: tuple[float, ...]
    x1: tuple[float, ...]


@dataclass(frozen=True)
class Layout:
    """What a PDF's pages say beyond its text: where each extracted character was printed, and
    the spans its layout shows to be pull quotes or photo captions (rag.ingest.columns)."""

    lines: tuple[TextLine, ...]
    labels: tuple[Label, ...]
    page_sizes: tuple[tuple[float, float], ...]  # width, height of each page, in points


@dataclass(frozen=True)
class Bulletin:
    """One bulletin file as loaded: its text and what its sidecar says about it."""

    doc_id: str
    source: str  # path relative to the project root (or as given, when outside it)
    text: str
    title: str
    language: str
    date: str  # ISO date or month, or "unknown"
    content_hash: str
    layout: Layout | None = None  # a PDF's; None for text, web pages and Word files
    # Where a web page was published: its site's name and its address (http or https only),
    # from the page or its sidecar; "" when neither says.
    site: str = ""
    url: str = ""


@dataclass(frozen=True)
class Paragraph:
    """A repaired paragraph: one or more source spans read in order."""

    number: int  # 1-based within its article, in reading order after repair
    section: str
    spans: tuple[Span, ...]
    text: str

    def source_spans(self, start: int, end: int) -> tuple[Span, ...]:
        """Where [start, end) of the paragraph's text is in the source: its spans, cut."""
        out, offset = [], 0
        for span in self.spans:
            length = span.end - span.start
            lo, hi = max(start, offset), min(end, offset + length)
            if lo < hi:
                out.append(Span(span.start + lo - offset, span.start + hi - offset))
            offset += length
        return tuple(out)


@dataclass(frozen=True)
class Article:
    number: int  # 1-based within the bulletin
    headline: str  # "" for text that continues an article of an earlier page
    headline_span: Span
    byline: str
    region: str
    date: str
    paragraphs: tuple[Paragraph, ...]
    kicker: str = ""  # 引题, the line above the headline
    subtitle: str = ""  # 副题, the line below it
    dateline: str = ""  # 本报北京１月１日讯 · 新华社贵阳１２月３１日电（记者刘子富）
    # From the article's first character (kicker or headline) to the end of its last line.
    span: Span = Span(0, 0)


# What ingestion calls a span it keeps out of the passages, or labels beside them.
LABELS = (
    "headline",
    "kicker",
    "subtitle",
    "byline",
    "dateline",
    "section_heading",
    "photo_caption",
    "layout_marker",
    "pull_quote",
)


@dataclass(frozen=True)
class Label:
    """A labelled span of the source: what it is, and for a dropped duplicate what it repeats.

    Headlines, kickers, subtitles, bylines and datelines are also read in the article's first
    passage; pull quotes are dropped (the text they repeat is indexed where it stands)."""

    label: str  # one of LABELS
    span: Span
    repeats: Span | None = None


@dataclass(frozen=True)
class Repair:
    """What the parser did to the extracted text, for `rag inspect` and the tests."""

    kind: str  # "join" or "drop_pull_quote"
    article: int
    spans: tuple[Span, ...]  # join: the two joined blocks; drop: the dropped block
    note: str


@dataclass(frozen=True)
class ParsedBulletin:
    bulletin: Bulletin
    articles: tuple[Article, ...]
    repairs: tuple[Repair, ...] = field(default=())
    labels: tuple[Label, ...] = field(default=())


@dataclass(frozen=True)
class Passage:
    """The unit of retrieval: part of one paragraph, with everything needed to cite it."""

    passage_id: str
    doc_id: str
    source: str
    article: int
    headline: str
    section: str
    paragraph: int
    region: str
    date: str
    spans: tuple[Span, ...]
    text: str

    def embedding_text(self, with_context: bool) -> str:
        """What the model embeds: the passage, optionally led by its headline and section."""
        if not with_context:
            return self.text
        context = " · ".join(part for part in (self.headline, self.section) if part)
        return f"{context}\n{self.text}" if context else self.text
