"""Where a page's articles start, and which lines are each one's head.

A page is read as a reader reads it: an article opens with its head (kicker, headline,
subtitle, byline: rag.ingest.heads says which line is which), then its paragraphs, which may
open with
a dateline; a short line between paragraphs is a section heading unless it opens an article; a
brief opens with its dateline alone. rag.ingest.structure then reads each article's lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rag.documents import Label, Span
from rag.ingest import heads
from rag.ingest.budget import UNBOUNDED, Deadline

# A paragraph that ends on one of these is complete.
END_PUNCT = set("。！？!?…”’」』）)》")
# A subtitle may hold a comma (向广大职工祝贺新年，对节日坚守岗位的同志们表示慰问) when a
# dateline follows it; a line this long is a paragraph.
MAX_SUBTITLE = 60
# A brief's lead, its first 60 characters, shares at most 2 two-character words with the report
# above it (a later paragraph of that report names its people and places again).
_LEAD_WORDS = 60
_SHARED_WORDS = 2
# A deck between a headline and its author's name is a paragraph of at most this many characters.
MAX_DECK = 120
# Lines this many blank lines apart are not one head: a page's rubric stands apart.
_WIDE_GAP = 2


@dataclass
class Block:
    """One non-empty line of the source, stripped, with its span."""

    index: int
    text: str
    span: Span
    gap: int = 1  # blank lines before it
    kind: str = "body"  # body | heading | pull_quote | head | credit

    @property
    def dangling(self) -> bool:
        return self.kind == "body" and self.text[-1] not in END_PUNCT


@dataclass
class Head:
    """The lines that open an article, by role."""

    kicker: Block | None = None
    headline: Block | None = None
    subtitle: Block | None = None
    byline: Block | None = None

    def blocks(self) -> list[Block]:
        return [b for b in (self.kicker, self.headline, self.subtitle, self.byline) if b]


def split_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    last_end = 0
    for match in re.finditer(r"[^\n]+", text):
        line = match.group()
        stripped = line.strip()
        if not stripped:
            continue
        start = match.start() + (len(line) - len(line.lstrip()))
        gap = max(0, text.count("\n", last_end, match.start()) - 1)
        blocks.append(Block(len(blocks), stripped, Span(start, start + len(stripped)), gap))
        last_end = match.end()
    return blocks


def _read_head(blocks: list[Block], i: int) -> tuple[Head, int] | None:
    """The head of an article opening at block `i`, and the index of its first body block;
    None when the line at `i` is not a headline (a section heading, a paragraph)."""
    text = blocks[i].text
    if heads.is_byline(text):
        return None
    if not heads.heading_like(text):
        nxt = next((b for b in blocks[i + 1 : i + 3] if b.kind == "body"), None)
        if heads.asks_or_exclaims(text) and _signed(blocks, i + 1):
            # 『诸事不宜』？ · 多点挣钱门路才好！: a question or a cry, signed under it.
            head = Head(headline=blocks[i], byline=blocks[i + 1])
            return head, i + 2
        if not (heads.headline_with_comma(text) and nxt and heads.dateline_length(nxt.text)):
            return None
        return Head(headline=blocks[i]), i + 1
    run = [i]
    while (
        len(run) < 3
        and run[-1] + 1 < len(blocks)
        and blocks[run[-1] + 1].kind == "body"
        and heads.heading_like(blocks[run[-1] + 1].text)
        and not heads.is_byline(blocks[run[-1] + 1].text)
        and not _is_author(blocks, run[-1] + 1)
    ):
        run.append(run[-1] + 1)
    after = run[-1] + 1
    head = Head()
    lines = [blocks[k] for k in run]
    if len(lines) == 3:
        head.kicker, head.headline, head.subtitle = lines
    elif len(lines) == 2 and lines[1].gap >= _WIDE_GAP:
        head.kicker, head.headline = lines  # a rubric over the headline, set apart
    elif len(lines) == 2:
        head.headline, head.subtitle = lines
    else:
        head.headline = lines[0]
    # A subtitle with a comma, recognisable by the dateline right after it.
    if (
        head.subtitle is None
        and after + 1 < len(blocks)
        and blocks[after].kind == "body"
        and len(blocks[after].text) <= MAX_SUBTITLE
        and blocks[after].text[-1] not in "。！？"
        and heads.dateline_length(blocks[after + 1].text)
    ):
        head.subtitle = blocks[after]
        after += 1
    if (
        head.subtitle is None
        and after + 1 < len(blocks)
        and blocks[after].kind == "body"
        and heads.MAX_HEADING < len(blocks[after].text) <= MAX_DECK
        and not heads.dateline_length(blocks[after].text)  # a report's lead, not a deck
        and heads.is_personal_name(blocks[after + 1].text)
        and _signed(blocks, after + 1)
    ):
        # A theory page's deck (or the lead set as one) between the headline and the author.
        head.subtitle, head.byline = blocks[after], blocks[after + 1]
        return head, after + 2
    if after < len(blocks) and (heads.is_byline(blocks[after].text) or _is_author(blocks, after)):
        head.byline = blocks[after]
        after += 1
    return head, after


def _signed(blocks: list[Block], k: int) -> bool:
    """A byline or a bare author's name at `k`, with prose under it (not a poem's next line)."""
    return (
        0 < k + 1 < len(blocks)
        and blocks[k].kind == "body"
        and (heads.is_byline(blocks[k].text) or heads.is_author_name(blocks[k].text))
        and (not heads.verse_line(blocks[k + 1].text) or heads.is_photo_text(blocks[k + 1].text))
    )


def _is_author(blocks: list[Block], k: int) -> bool:
    """A bare name on its own line, right after a heading and before text."""
    return (
        heads.is_author_name(blocks[k].text)
        and k > 0
        and heads.heading_like(blocks[k - 1].text)
        and k + 1 < len(blocks)
    )


def _opens_article(
    blocks: list[Block],
    i: int,
    head: Head,
    after: int,
    current: Head | None,
    first: bool,
    digest: bool = False,
) -> bool:
    """Whether the head read at `i` opens an article rather than a section of the current one
    (`current`: the head of the article being read, None before the first or for a brief;
    `digest`: whether that article gathers signed pieces, rag.ingest.segment._gathers_pieces)."""
    headline = head.headline.text if head.headline else ""
    if first:
        return True
    previous = blocks[i - 1]
    # A headline follows a finished paragraph or a credit; after a short line (a poem's, a
    # table's) it is one more of them, unless a dateline or byline right under it says it
    # opens a report. A numbered heading is a part of its article.
    after_verse = previous.kind == "body" and heads.verse_line(previous.text)
    if after_verse and len(head.blocks()) > 1 + (head.byline is not None):
        return False  # the headline is a later line of these
    dateline_under = any(heads.dateline_length(b.text) for b in blocks[after : after + 2])
    if digest and len(head.blocks()) > 1 and not dateline_under:
        return False  # one more speech of the digest being read: its title, its speaker
    if (
        head.byline
        or heads.PHOTO_MARKER.search(headline)
        or heads.ARTWORK.search(headline)
        or any(heads.dateline_length(b.text) for b in blocks[after : after + 2])
    ):
        return True
    if previous.kind == "credit" or heads.closes_article(previous.text):
        return True
    if after_verse:
        return False
    if heads.SECTION_NUMBER.search(headline):
        return False
    # A signed feature (本报记者 吴丽琳, an essay's author) runs on under its section headings;
    # a news report ends where the next headline stands.
    return current is None or current.byline is None


@dataclass
class _Reading:
    """An article as the walk reads it: its head, its lines so far, and what the tests on its
    next line ask of them (its body lines, the words they name), kept up to date as lines join
    it. Re-reading the article for every line would make a page of 200,000 lines quadratic."""

    head: Head | None
    lines: list[Block] = field(default_factory=list)
    body: list[Block] = field(default_factory=list)
    said: set[str] = field(default_factory=set)

    def add(self, b: Block) -> None:
        # A block's kind is settled before it joins an article (credits at the start, heads
        # as they are read), so `body` and `said` never go stale.
        self.lines.append(b)
        if b.kind == "body":
            self.body.append(b)
            self.said |= _words(b.text)


def _gathers_pieces(article: _Reading) -> bool:
    """Whether an article presents what follows as one piece made of several signed ones, in
    its head or its first two lines (a subtitle too long for a head, the editor's note): a
    digest of speeches (…研讨会发言摘要), letters or contributions (笔谈, 选登, 摘编)."""
    opening = (article.head.blocks() if article.head else []) + article.body[:2]
    return any(heads.DIGEST.search(b.text) for b in opening)


def _opens_brief(blocks: list[Block], i: int) -> bool:
    """A brief has no headline: it opens with 本报讯, or with any dateline once the report
    before has closed with its author's credit. (A second dateline under one headline is
    another dispatch of the same article.)"""
    text = blocks[i].text
    if i == 0 or blocks[i - 1].kind == "head" or heads.AFTERWORD.match(text):
        return False
    previous = blocks[i - 1].text
    photo = heads.is_photo_text(previous)
    closed = heads.closes_article(previous) or heads.is_credit_line(previous)
    if heads.dateline_length(text):
        return text.startswith("本报讯") or (closed and not photo)
    # A brief without a dateline opens after the credit that closed the report before it: a
    # line of its own or a paragraph's last words after its last sentence (an author's line,
    # 罗理诚（哈尼族）, is no report; a salutation, 图片：, too short to be a brief).
    credited = heads.is_credit_line(previous) or (
        heads.closes_article(previous)
        and len(previous) > heads.MAX_HEADING
        and previous[previous.rindex("（") - 1] in END_PUNCT
    )
    return credited and not photo and len(text) > heads.MAX_HEADING


def _words(text: str) -> set[str]:
    """The two-character runs of Chinese in `text`: what a paragraph names, for comparing."""
    runs = re.findall(r"[\u4e00-\u9fff]{2,}", text)
    return {run[k : k + 2] for run in runs for k in range(len(run) - 1)}


def _opens_new_subject(article: _Reading, b: Block) -> bool:
    """A brief without headline, dateline or credit before it (international and economic
    briefs printed one after another under a report): in a news report (a brief, a photo or a
    datelined article), a paragraph that opens as a lead of its own, saying when early in its
    first sentence, and names nothing of the headline and next to nothing of the report so
    far."""
    head, lines, body = article.head, article.lines, article.body
    if not body or body[-1] is not lines[-1] or body[-1].dangling:
        return False
    if heads.is_photo_text(body[-1].text):
        return False  # the text under a feature's photo, before the feature's own text
    headline = head.headline.text if head and head.headline else ""
    news = (
        head is None
        or bool(heads.dateline_length(body[0].text))
        or headline.endswith(("（图片）", "（照片）"))
    )
    if not news or len(b.text) <= heads.MAX_HEADING or not heads.opens_with_time(b.text):
        return False
    if heads.OPENERS.match(b.text) or heads.AFTERWORD.match(b.text):
        return False
    named = _words(b.text[:_LEAD_WORDS])
    return not (_words(b.text) & _words(headline)) and len(named & article.said) <= _SHARED_WORDS


def find_articles(
    blocks: list[Block], deadline: Deadline = UNBOUNDED
) -> tuple[list[tuple[Head | None, list[Block]]], list[Label]]:
    """Each article's head (None for text continued from an earlier page, or a brief) and its
    other lines, in page order; and the labels of credit and marker lines. Marks the blocks'
    kinds (head, credit) as it goes."""
    labels: list[Label] = []
    for b in blocks:
        if b.kind != "body":
            continue  # marked already, by what a PDF's layout shows (rag.ingest.structure)
        if heads.PHOTO_CREDIT.match(b.text):
            b.kind = "credit"
            labels.append(Label("photo_caption", b.span))
        elif heads.LAYOUT_MARKER.match(b.text):
            b.kind = "credit"
            labels.append(Label("layout_marker", b.span))
        elif heads.CLOSING_CREDIT.match(b.text):
            b.kind = "credit"
            labels.append(Label("byline", b.span))
    # Each article: its head (None for text continued from an earlier page) and its blocks.
    found: list[_Reading] = []
    i, seen_text, verse = 0, False, False
    while i < len(blocks):
        deadline.check()
        b = blocks[i]
        if b.kind == "credit":
            if found:
                found[-1].add(b)
            i += 1
            continue
        # Short lines right under an author's name are a poem's, and so are those after them.
        # A poem's line has another short line after it; a headline has its text.
        verse = (
            verse
            and heads.verse_line(b.text)
            and (i + 1 >= len(blocks) or heads.verse_line(blocks[i + 1].text))
            and not _signed(blocks, i + 1)  # a title and its author's name: the next piece
        )
        read = _read_head(blocks, i) if b.kind == "body" and not verse else None
        current = found[-1].head if found else None
        digest = bool(found) and _gathers_pieces(found[-1])
        if read is not None and _opens_article(
            blocks, i, read[0], read[1], current, not seen_text, digest
        ):
            head, after = read
            for h in head.blocks():
                h.kind = "head"
            found.append(_Reading(head))
            seen_text = True
            verse = (
                head.byline is not None
                and after < len(blocks)
                and heads.heading_like(blocks[after].text)
            )
            i = after
            continue
        # A brief opens with its dateline and has no headline: 本报讯… after the last one.
        if not found or (
            b.kind == "body" and (_opens_brief(blocks, i) or _opens_new_subject(found[-1], b))
        ):
            found.append(_Reading(None))
        found[-1].add(b)
        seen_text = True
        i += 1
    return [(a.head, a.lines) for a in found], labels
