"""Split a bulletin into articles, sections and paragraphs, repairing extraction damage.

Newspaper extraction leaves three kinds of damage this module undoes:
- a paragraph cut mid-sentence at a column break, continued in the next block or further down
  (after a pull quote, where the next column's text resumes);
- pull quotes: short blocks that repeat sentences of the body;
- headlines, bylines and sub-headings mixed into the running text.
Everything keeps its code-point spans into the source text, so citations stay exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rag.documents import Article, Bulletin, Paragraph, ParsedBulletin, Repair, Span
from rag.places import first_province

# A paragraph that ends on one of these is complete.
END_PUNCT = set("。！？!?…”’」』）)》")
# Blocks that open with a discourse marker start a new paragraph; they are never the second
# half of a cut one.
OPENERS = re.compile(
    r"^(一是|二是|三是|四是|五是|六是|一方面|另一方面|首先|其次|再次|最后|此外|另外|其中|同时|"
    r"与此同时|当前|目前|会议|本报|据悉|据了解|根据|总之|[一二三四五六七八九十]+、|[（(][一二三四五六七八九十0-9]+[)）])"
)
BYLINE_LINE = re.compile(r"^(本报记者|本报通讯员|记者|通讯员)\s*\S{1,12}(\s+\S{1,12})*$")
BYLINE_PREFIX = re.compile(r"^本报讯(\s*记者\s*\S{1,8}?报道)?[：:\s]*")
CLAUSE_SPLIT = re.compile(r"[，、；。！？：“”‘’《》（）,;:!?()\s]+")
MAX_HEADING = 40
MAX_PULL_QUOTE = 90


@dataclass
class Block:
    """One non-empty line of the source, stripped, with its span."""

    index: int
    text: str
    span: Span
    kind: str = "body"  # body | heading | headline | byline | title | pull_quote

    @property
    def dangling(self) -> bool:
        return self.kind == "body" and self.text[-1] not in END_PUNCT


@dataclass
class Segment:
    """A run of body blocks uninterrupted by headings or pull quotes."""

    section: str
    after: str  # what precedes it: "start", "heading" or "pull_quote"
    blocks: list[Block] = field(default_factory=list)


def split_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    for match in re.finditer(r"[^\n]+", text):
        line = match.group()
        stripped = line.strip()
        if not stripped:
            continue
        start = match.start() + (len(line) - len(line.lstrip()))
        blocks.append(Block(len(blocks), stripped, Span(start, start + len(stripped))))
    return blocks


def _heading_like(text: str) -> bool:
    # Headings may end on a closing quote (迭代优化产业空间布局“一张图”) but hold no sentence.
    return (
        bool(text)
        and len(text) <= MAX_HEADING
        and not any(ch in "。！？!?；;，," for ch in text)
        and text[-1] not in "、：:…"
    )


def _starts_article(blocks: list[Block], i: int) -> bool:
    if not _heading_like(blocks[i].text) or i + 1 >= len(blocks):
        return False
    nxt = blocks[i + 1].text
    return bool(BYLINE_LINE.match(nxt) or (BYLINE_PREFIX.match(nxt) and "本报讯" in nxt[:3]))


def _clauses(text: str) -> list[str]:
    return [c for c in CLAUSE_SPLIT.split(text) if len(c) >= 2]


def _pull_quote_source(block: Block, body: list[Block]) -> Block | None:
    """The longer body block that contains every clause of `block`, if there is one."""
    if len(block.text) > MAX_PULL_QUOTE or block.text[-1] not in END_PUNCT:
        return None
    clauses = _clauses(block.text)
    if not clauses:
        return None
    for other in body:
        longer = other is not block and len(other.text) > len(block.text)
        if longer and all(c in other.text for c in clauses):
            return other
    return None


def _region(*texts: str) -> str:
    for text in texts:
        found = first_province(text)
        if found:
            return found
    return "unknown"


def _article_date(lead: str, bulletin_date: str) -> str:
    """'1月24日' in the lead, with the year from the bulletin's date; else the bulletin's date."""
    match = re.search(r"(?:(\d{4})年)?(\d{1,2})月(\d{1,2})日", lead[:80])
    year = match and (match.group(1) or bulletin_date[:4])
    if match and year and year.isdigit():
        return f"{year}-{int(match.group(2)):02d}-{int(match.group(3)):02d}"
    return bulletin_date


def _junction_score(dangler: Block, cont: Block) -> int:
    """How plausibly `cont` continues `dangler` (higher is likelier); see module docstring."""
    score = 0
    first_clause = re.split(r"[，、；。：”]", cont.text, maxsplit=1)[0]
    if len(first_clause) <= 3:
        score += 1  # cut inside a word: "行" + "动，…"
    if dangler.text.endswith("、") and re.match(r"^[^，。；]{1,8}、", cont.text):
        score += 2  # an enumeration carried on: "企业集聚、" + "项目集合、产业集群、…"
    if _joins_a_word(dangler.text[-3:], cont.text[:3]):
        score += 2
    return score


def _joins_a_word(left: str, right: str) -> bool:
    import jieba

    pos = 0
    for word in jieba.lcut(left + right, HMM=False):
        if pos < len(left) < pos + len(word) and len(word) > 1:
            return True
        pos += len(word)
    return False


def _link_continuations(segments: list[Segment]) -> dict[int, int]:
    """Pair segments that end mid-sentence with the later segment that continues them.

    Returns {index of the ending segment: index of the continuing segment}. Only segments that
    follow a pull quote can be continuations: a column break resumes there, while a segment that
    follows a heading opens its section.
    """
    danglers = [i for i, s in enumerate(segments) if s.blocks and s.blocks[-1].dangling]
    candidates = [
        j
        for j, s in enumerate(segments)
        if s.after == "pull_quote" and s.blocks and not OPENERS.match(s.blocks[0].text)
    ]
    pairs = sorted(
        (-_junction_score(segments[i].blocks[-1], segments[j].blocks[0]), j - i, i, j)
        for i in danglers
        for j in candidates
        if j > i
    )
    links: dict[int, int] = {}
    taken: set[int] = set()
    for _, _, i, j in pairs:
        if i not in links and j not in taken:
            links[i] = j
            taken.add(j)
    return links


def parse_bulletin(bulletin: Bulletin) -> ParsedBulletin:
    """Articles with their repaired paragraphs, and a record of every repair made."""
    blocks = split_blocks(bulletin.text)
    starts = [i for i in range(len(blocks)) if _starts_article(blocks, i)]
    if not starts:
        # No headline + byline pattern: the whole file is one article under its first line.
        starts = [0] if blocks and _heading_like(blocks[0].text) else []
    articles: list[Article] = []
    repairs: list[Repair] = []
    starts_bounds: list[tuple[int | None, int, int]] = [
        (s, s, starts[k + 1] if k + 1 < len(starts) else len(blocks)) for k, s in enumerate(starts)
    ] or [(None, 0, len(blocks))]
    for number, (headline_at, lo, hi) in enumerate(starts_bounds, start=1):
        article, article_repairs = _parse_article(bulletin, blocks[lo:hi], headline_at, number)
        if article.paragraphs:
            articles.append(article)
            repairs.extend(article_repairs)
    return ParsedBulletin(bulletin, tuple(articles), tuple(repairs))


def _parse_article(
    bulletin: Bulletin, blocks: list[Block], headline_at: int | None, number: int
) -> tuple[Article, list[Repair]]:
    headline, headline_span, byline = "", Span(0, 0), ""
    rest = blocks
    if headline_at is not None:
        head = blocks[0]
        head.kind = "headline"
        headline, headline_span = head.text, head.span
        rest = blocks[1:]
        if rest and BYLINE_LINE.match(rest[0].text):
            rest[0].kind = "byline"
            byline = rest[0].text
            rest = rest[1:]
        elif rest and (m := BYLINE_PREFIX.match(rest[0].text)):
            byline = m.group().strip(" ：:")
            first = rest[0]
            cut = m.end()
            if cut < len(first.text):
                rest[0] = Block(
                    first.index, first.text[cut:], Span(first.span.start + cut, first.span.end)
                )
            else:  # the byline stood alone on its line
                rest = rest[1:]

    body = [b for b in rest if not _heading_like(b.text)]
    repairs: list[Repair] = []
    for b in body:
        source = _pull_quote_source(b, body)
        if source is not None:
            b.kind = "pull_quote"
            repairs.append(
                Repair(
                    "drop_pull_quote",
                    number,
                    (b.span,),
                    f"repeats ¶ at {source.span.start}: {b.text[:24]}…",
                )
            )

    segments: list[Segment] = []
    section, after = "", "start"
    for b in rest:
        if _heading_like(b.text):
            b.kind = "heading"
            section, after = b.text, "heading"
        elif b.kind == "pull_quote":
            after = "pull_quote"
        else:
            if not segments or segments[-1].section != section or after != "":
                segments.append(Segment(section, after))
            segments[-1].blocks.append(b)
            after = ""

    links = _link_continuations(segments)
    continued = set(links.values())
    paragraphs: list[Paragraph] = []
    for i, segment in enumerate(segments):
        if i in continued:
            continue  # read as part of the segment it continues
        chain = list(segment.blocks)
        j = i
        while j in links:
            j = links[j]
            chain.extend(segments[j].blocks)
        current: list[Block] = []
        for b in chain:
            if current and not current[-1].dangling:
                paragraphs.append(_paragraph(len(paragraphs) + 1, segment.section, current))
                current = []
            if current and OPENERS.match(b.text):
                paragraphs.append(_paragraph(len(paragraphs) + 1, segment.section, current))
                current = []
            current.append(b)
            if len(current) > 1:
                repairs.append(
                    Repair(
                        "join",
                        number,
                        (current[-2].span, b.span),
                        f"{current[-2].text[-8:]} + {b.text[:8]}",
                    )
                )
        if current:
            paragraphs.append(_paragraph(len(paragraphs) + 1, segment.section, current))

    lead = paragraphs[0].text if paragraphs else ""
    article = Article(
        number=number,
        headline=headline,
        headline_span=headline_span,
        byline=byline,
        region=_region(headline, lead),
        date=_article_date(lead, bulletin.date),
        paragraphs=tuple(paragraphs),
    )
    return article, repairs


def _paragraph(number: int, section: str, blocks: list[Block]) -> Paragraph:
    return Paragraph(
        number=number,
        section=section,
        spans=tuple(b.span for b in blocks),
        text="".join(b.text for b in blocks),
    )
