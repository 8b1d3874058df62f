"""Web pages and Word files as bulletin text: the bytes of an `.html` or `.docx` file in, the
text the pipeline indexes and cites into out (a headline first when the source has one, then
paragraphs separated by a blank line), with what the file says about itself. PDFs are
rag.ingest.pdf's, which shares `Extracted`.

Pure functions over the bytes they are handed: nothing is fetched, nothing is read from disk.
What is wrong with a file is a `FormatError` without its name; the loader names it.
"""

from __future__ import annotations

import codecs
import io
import re
import unicodedata
import zipfile
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from rag.documents import Layout
from rag.ingest import heads
from rag.ingest.heads import TABLE_CELLS

# A Word file's XML is many times the text it carries: python-docx's own empty document unpacks
# to 0.8 MB (its style sheets). So the members may unpack to this many times the bulletin limit,
# and what the file weighs besides (its photos unpack to about what they weigh).
UNPACKED_PER_BYTE = 16
# Word's XML packs about 5 to 30 to 1 (python-docx's empty document: 24); a zip bomb packs
# hundreds or a thousand to 1.
MAX_RATIO = 100
# Where an HTML page must say its encoding (the HTML standard's prescan reads 1024 bytes).
_PRESCAN = 4096
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")


class FormatError(ValueError):
    """A file that cannot be read as the format its name says; the message says why."""


@dataclass(frozen=True)
class Extracted:
    """A file's text as the pipeline reads it, and what the file says about itself ("" when
    it says nothing)."""

    text: str
    title: str = ""
    date: str = ""  # ISO
    site: str = ""
    url: str = ""
    layout: Layout | None = None  # a PDF's: where each character of `text` was printed


def html_text(raw: bytes) -> Extracted:
    """The main text of a saved web page (no navigation, footers or share buttons) with its
    headline, date, site and URL from the page's metadata."""
    import trafilatura

    page = decode_html(raw)
    if not page.strip():
        raise FormatError("the page is empty")
    # lxml refuses a str that still declares its encoding; the bytes are decoded already.
    page = _XML_DECLARATION.sub("", page)
    found: Any = trafilatura.bare_extraction(
        page,
        include_comments=False,
        include_tables=True,
        include_images=False,
        favor_precision=True,
        with_metadata=True,
    )
    paragraphs = _paragraphs_of(found.body) if found is not None else []
    if not paragraphs:
        if re.search(r"<script\b", page, re.IGNORECASE):
            raise FormatError(
                "no main text in the page, only scripts: it is filled in by JavaScript, which "
                "is not run; save the page from a browser after it has loaded"
            )
        raise FormatError("no main text in the page (nothing but markup, links or menus)")
    title = _clean(found.title or "")
    # trafilatura drops the <h1> that is the title, mostly: not when a kicker (引题) stands
    # above it, and then the headline was put back twice.
    head = [_clean(p) for p in paragraphs[:_HEAD_LINES]]
    lines = paragraphs if not title or title in head else [title, *paragraphs]
    lines = _with_byline(lines, title, _clean(found.author or ""))
    # A line above the headline is its kicker (引题): set apart by a wider gap, as a printed
    # page sets it and as the parser reads a kicker (rag.ingest.segment); one blank line would
    # make the headline its subtitle.
    above = lines.index(title) if title in lines[1:_HEAD_LINES] else 0
    return Extracted(
        text=_joined(lines, wide=(above,) if above else ()),
        title=title,
        date=found.date or "",
        site=_clean(found.sitename or ""),
        url=web_address(found.url or "") or web_address(_saved_from(page)),
    )


# What a browser writes at the top of a page it saves: <!-- saved from url=(0058)https://… -->
_SAVED_FROM = re.compile(r"<!--\s*saved from url=\(\d+\)(\S+?)\s*-->", re.IGNORECASE)


def _saved_from(page: str) -> str:
    found = _SAVED_FROM.search(page[:_PRESCAN])
    return found.group(1) if found else ""


def web_address(url: str) -> str:
    """`url` when it is an http(s) address a reader may follow; "" otherwise (javascript:,
    data:, file: or a relative path taken from a page are no address of its own)."""
    url = url.strip()
    if len(url) > 2048 or any(c.isspace() or unicodedata.category(c)[0] == "C" for c in url):
        return ""
    return url if re.match(r"https?://[^/\s]+", url, re.IGNORECASE) else ""


# The Word styles of a headline.
_HEADLINE_STYLES = ("Title", "Heading 1")
# How far into the text a headline may stand below a kicker and a subtitle.
_HEAD_LINES = 3


def _with_byline(lines: list[str], title: str, author: str) -> list[str]:
    """The page's byline (本报记者 吴丽琳) put back under its headline when trafilatura took it
    out of the text as the page's author: who reported a story is asked, and a signed
    feature's section headings are read as its sections only under its byline. A bare name
    (齐旭, from a meta tag) is not put back: it would read as a heading."""
    if not author or not heads.is_byline(author) or any(author in x for x in lines[:4]):
        return lines
    at = lines.index(title) + 1 if title in lines[: _HEAD_LINES + 1] else 0
    return [*lines[:at], author, *lines[at:]]


def decode_html(raw: bytes) -> str:
    """A page's bytes as text: its byte-order mark, else the charset it declares in a `<meta>`
    (GB2312 and GBK read as GB18030, which holds them), else UTF-8, else GB18030."""
    if b"\x00" in raw and not raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise FormatError("looks like a binary file (it contains NUL bytes), not a web page")
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if raw.startswith(bom):
            return _normalised(raw.decode(encoding, errors="replace"))
    declared = _CHARSET.search(raw[:_PRESCAN])
    candidates = ["utf-8", "gb18030"]
    if declared:
        name = declared.group(1).decode("ascii").lower()
        try:
            name = codecs.lookup(name).name
        except LookupError:
            raise FormatError(f"the page declares an unknown encoding {name!r}") from None
        if name in ("gb2312", "gbk", "euc_cn", "hz"):
            name = "gb18030"
        candidates.insert(0, name)
    for encoding in candidates:
        try:
            return _normalised(raw.decode(encoding))
        except UnicodeDecodeError:
            continue
    raise FormatError(
        "cannot be read in the encoding it declares, nor as UTF-8 or GB18030; "
        "save it as UTF-8 and retry"
    )


def docx_text(raw: bytes, max_bytes: int) -> Extracted:
    """A Word file's paragraphs in order (headings their own paragraphs, table rows as lines of
    cells between ` | `), with the title and created date of its properties.

    The zip is checked before anything is unpacked: its members may total at most
    `UNPACKED_PER_BYTE * max_bytes` plus the file's own size, and pack at most `MAX_RATIO` to 1
    (each member larger than the bulletin limit, and all of them together)."""
    import docx
    from docx.table import Table

    check_zip(raw, max_bytes)
    try:
        document = docx.Document(io.BytesIO(raw))
    except Exception as exc:  # python-docx raises KeyError, ValueError, lxml's errors...
        raise FormatError(
            f"not a Word document (no readable word/document.xml: {_reason(exc)}); "
            "open it in Word or LibreOffice and save it again as .docx"
        ) from exc
    paragraphs: list[str] = []
    wide: set[int] = set()
    plain = False  # whether the last paragraph is of a body style
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            paragraphs.extend(r for r in _rows_of(block) if r)
            plain = False
            continue
        text = _clean(block.text)
        if not text:
            continue
        style = block.style.name if block.style is not None else ""
        # A short line of body style right above a headline (Title, Heading 1) is its kicker
        # (引题): set apart, as html_text sets it.
        if style in _HEADLINE_STYLES and plain and heads.heading_like(paragraphs[-1]):
            wide.add(len(paragraphs))
        paragraphs.append(text)
        plain = not style.startswith(("Heading", "Title"))
    if not paragraphs:
        raise FormatError("the Word document holds no text")
    properties = document.core_properties
    created = properties.created
    return Extracted(
        text=_joined(paragraphs, wide),
        title=_clean(properties.title or ""),
        date=created.date().isoformat() if created else "",
    )


def check_zip(raw: bytes, max_bytes: int) -> None:
    """Refuse what is not a zip, or unpacks to too much, or packs like a zip bomb, from the
    zip's own directory (nothing unpacked). zipfile reads no more of a member than the size the
    directory declares, so the declared sizes bind what python-docx will unpack."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise FormatError(
            f"not a Word .docx file (not a zip archive: {exc}); a .doc from old Word versions "
            "must be saved again as .docx"
        ) from exc
    unpacked = sum(m.file_size for m in members)
    packed = sum(m.compress_size for m in members)
    limit = UNPACKED_PER_BYTE * max_bytes + len(raw)
    if unpacked > limit:
        raise FormatError(
            f"unpacks to {unpacked} bytes, more than the {limit} a Word bulletin may "
            f"({UNPACKED_PER_BYTE} x RAG_MAX_BULLETIN_BYTES and what the file weighs); "
            "not unpacked"
        )
    # A bomb hidden beside photos, which do not pack, shows in its own member's ratio.
    bombs = [
        m for m in members if m.file_size > max_bytes and m.file_size > MAX_RATIO * m.compress_size
    ]
    if bombs:
        unpacked, packed = bombs[0].file_size, bombs[0].compress_size
    if unpacked > MAX_RATIO * max(packed, 1):
        where = f" ({bombs[0].filename})" if bombs else ""
        raise FormatError(
            f"packs {unpacked} bytes into {packed}{where}, more than {MAX_RATIO} to 1 as a zip "
            "bomb does and a Word file does not; not unpacked"
        )
    if not any(m.filename == "word/document.xml" for m in members):
        raise FormatError(
            "not a Word document (the zip has no word/document.xml); "
            "open it in Word or LibreOffice and save it again as .docx"
        )


def _paragraphs_of(body: Any) -> list[str]:
    """The paragraphs of trafilatura's XML body: one per block, a list's items and a table's
    rows each their own."""
    out: list[str] = []
    for block in body:
        if block.tag == "list":
            out.extend(_inline(item) for item in block.iter("item"))
        elif block.tag == "table":
            for row in block.iter("row"):
                cells = [_clean(_inline(cell)) for cell in row.iter("cell")]
                out.append(TABLE_CELLS.join(cells))
        else:
            out.append(_inline(block))
    return [p for p in (_clean(p) for p in out) if p.strip(" |")]


def _inline(element: Any) -> str:
    """An element's text, its line breaks as newlines."""
    parts: list[str] = [element.text or ""]
    for child in element:
        parts.append("\n" if child.tag == "lb" else _inline(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _rows_of(table: Any) -> list[str]:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = _clean(cell.text).replace("\n", " ")
            # A merged cell comes back once for each grid column it spans.
            if not cells or text != cells[-1]:
                cells.append(text)
        rows.append(TABLE_CELLS.join(cells))
    return rows


def _clean(text: str) -> str:
    """Blank-free ends, no blank lines inside (a blank line is a paragraph break), no odd spaces."""
    lines = (re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _joined(paragraphs: list[str], wide: Collection[int] = ()) -> str:
    """The paragraphs a blank line apart, two before those at the indices `wide`."""
    out = ""
    for i, p in enumerate(paragraphs):
        if p:
            out += ("\n\n\n" if i in wide else "\n\n") * bool(out) + p
    return out + "\n"


def _normalised(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _reason(exc: Exception) -> str:
    return str(exc).strip("'\"") or type(exc).__name__
