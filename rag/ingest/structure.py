"""Split a bulletin into articles, sections and paragraphs, repairing extraction damage.

Where each article starts and what its head is, rag.ingest.segment finds; this module reads each
article's lines into paragraphs. Every line ends up in a paragraph or in a labelled span
(rag.documents.LABELS): nothing is dropped without a name.

Newspaper extraction leaves three kinds of damage this module undoes:
- a paragraph cut mid-sentence at a column break, continued in the next block or further down
  (after a pull quote, where the next column's text resumes);
- pull quotes: short blocks that repeat sentences of the body (labelled, not indexed twice);
- headlines, bylines and sub-headings mixed into the running text.
Everything keeps its code-point spans into the source text, so citations stay exact. An
article's head is read in its first paragraph (a question about a headline's words or a
reporter finds the article), as one span running from the head to the lead.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate

from rag.documents import Article, Bulletin, Label, Paragraph, ParsedBulletin, Repair, Span
from rag.ingest import heads
from rag.ingest.budget import Deadline
from rag.ingest.segment import END_PUNCT, Block, Head, find_articles, split_blocks
from rag.places import first_province

CLAUSE_SPLIT = re.compile(r"[，、；。！？：“”‘’《》（）,;:!?()\s]+")
MAX_PULL_QUOTE = 90
# A column's text resumes within a few segments of where it was cut (3 at most on the page and
# in the archive, whose articles have up to 23 segments); looking further would pair every
# cut with every later segment, quadratic in a long article.
CONTINUATION_REACH = 24


@dataclass
class Segment:
    """A run of body blocks uninterrupted by headings or pull quotes."""

    section: str
    after: str  # what precedes it: "start", "heading" or "pull_quote"
    blocks: list[Block] = field(default_factory=list)


def _clauses(text: str) -> list[str]:
    return [c for c in CLAUSE_SPLIT.split(text) if len(c) >= 2]


def _pull_quote_finder(body: list[Block]) -> Callable[[Block], Block | None]:
    """For a block, the first longer body block that contains every clause of it (the text a
    pull quote repeats), or None.

    The body is searched as one string for the block's longest clause, so only the blocks
    holding it are tried, and a text already looked up is not looked up again: an article of
    thousands of short lines is not quadratic."""
    joined = "\n".join(b.text for b in body)  # no block holds a line break
    starts = list(accumulate((len(b.text) + 1 for b in body[:-1]), initial=0))
    known: dict[str, Block | None] = {}

    def source(block: Block) -> Block | None:
        if len(block.text) > MAX_PULL_QUOTE or block.text[-1] not in END_PUNCT:
            return None
        if block.text not in known:
            known[block.text] = _first_holding(block.text, body, joined, starts)
        return known[block.text]

    return source


def _first_holding(text: str, body: list[Block], joined: str, starts: list[int]) -> Block | None:
    clauses = _clauses(text)
    if not clauses:
        return None
    key = max(clauses, key=len)
    at = joined.find(key)
    while at >= 0:
        k = bisect_right(starts, at) - 1
        other = body[k]
        if len(other.text) > len(text) and all(c in other.text for c in clauses):
            return other
        at = joined.find(key, starts[k] + len(other.text) + 1)  # on from the next block
    return None


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
    candidate = [
        s.after == "pull_quote" and bool(s.blocks) and not heads.OPENERS.match(s.blocks[0].text)
        for s in segments
    ]
    pairs = sorted(
        (-_junction_score(segments[i].blocks[-1], segments[j].blocks[0]), j - i, i, j)
        for i in danglers
        for j in range(i + 1, min(len(segments), i + 1 + CONTINUATION_REACH))
        if candidate[j]
    )
    links: dict[int, int] = {}
    taken: set[int] = set()
    for _, _, i, j in pairs:
        if i not in links and j not in taken:
            links[i] = j
            taken.add(j)
    return links


def parse_bulletin(bulletin: Bulletin, deadline: Deadline | None = None) -> ParsedBulletin:
    """Articles with their repaired paragraphs, the labelled spans, and every repair made.

    Raises BulletinError when the work outlasts `deadline` (by default rag.ingest.budget's)."""
    deadline = deadline or Deadline(bulletin.source, "parsing")
    blocks = split_blocks(bulletin.text)
    shown = _mark_layout(blocks, bulletin)
    found, labels = find_articles(blocks, deadline)
    labels.extend(shown)
    articles: list[Article] = []
    repairs: list[Repair] = []
    for opening, body in found:
        number = len(articles) + 1
        article, article_repairs, article_labels = _parse_article(
            bulletin, opening, body, number, deadline
        )
        articles.append(article)
        repairs.extend(article_repairs)
        labels.extend(article_labels)
    labels.sort(key=lambda lab: (lab.span.start, lab.span.end))
    return ParsedBulletin(bulletin, tuple(articles), tuple(repairs), tuple(labels))


# What a block a PDF's layout labels is to the parser: a pull quote is read past as the text
# version's pull quotes are (a column may resume after it), a caption as a photo's credit.
_LAYOUT_KINDS = {"pull_quote": "pull_quote", "photo_caption": "credit"}


def _mark_layout(blocks: list[Block], bulletin: Bulletin) -> list[Label]:
    """The blocks a PDF's layout shows to be pull quotes or captions (rag.ingest.columns: each
    is a block of its own), marked so; their labels."""
    if bulletin.layout is None:
        return []
    shown = {label.span: label for label in bulletin.layout.labels}
    labels = []
    for b in blocks:
        label = shown.get(b.span)
        if label is not None:
            b.kind = _LAYOUT_KINDS[label.label]
            labels.append(label)
    return labels


def _head_labels(head: Head | None) -> list[Label]:
    if head is None:
        return []
    out = []
    for role in ("kicker", "headline", "subtitle", "byline"):
        b = getattr(head, role)
        if b is not None:
            out.append(Label(role, b.span))
            marker = heads.PHOTO_MARKER.search(b.text)
            if marker:
                at = b.span.start + marker.start()
                out.append(Label("photo_caption", Span(at, at + len(marker.group()))))
    return out


def _parse_article(
    bulletin: Bulletin, head: Head | None, rest: list[Block], number: int, deadline: Deadline
) -> tuple[Article, list[Repair], list[Label]]:
    labels = _head_labels(head)
    body = [b for b in rest if b.kind == "body" and not heads.heading_like(b.text)]
    repairs: list[Repair] = []
    pull_quote_source = _pull_quote_finder(body)
    for b in body:
        deadline.check()
        source = pull_quote_source(b)
        if source is not None:
            b.kind = "pull_quote"
            labels.append(Label("pull_quote", b.span, repeats=source.span))
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
    for k, b in enumerate(rest):
        if b.kind == "credit":
            continue
        if b.kind == "body" and heads.heading_like(b.text) and not _verse(rest, k):
            b.kind = "heading"
            labels.append(Label("section_heading", b.span))
            section, after = b.text, "heading"
        elif b.kind == "pull_quote":
            after = "pull_quote"
        else:
            if not segments or segments[-1].section != section or after != "":
                segments.append(Segment(section, after))
            segments[-1].blocks.append(b)
            after = ""

    paragraphs = _paragraphs(segments, number, repairs)
    dateline = ""
    if paragraphs:
        cut = heads.dateline_length(paragraphs[0].text)
        if cut:
            dateline = paragraphs[0].text[:cut]
            labels.extend(Label("dateline", s) for s in paragraphs[0].source_spans(0, cut))
    # The lead as the body gives it, before the head is read into it, without its dateline.
    lead_text = paragraphs[0].text if paragraphs else ""
    lead_text = lead_text[heads.dateline_length(lead_text) :]
    head_blocks = head.blocks() if head else []
    if head_blocks:
        paragraphs = _with_head(paragraphs, head_blocks, rest, bulletin.text)
    headline_block = head.headline if head else None
    headline = headline_block.text if headline_block else ""
    spans = [b.span for b in head_blocks + rest]
    article = Article(
        number=number,
        headline=headline,
        headline_span=headline_block.span if headline_block else Span(0, 0),
        byline=_byline(head, dateline),
        region=_region(headline, lead_text),
        date=_article_date(dateline, lead_text, bulletin.date),
        paragraphs=tuple(paragraphs),
        kicker=head.kicker.text if head and head.kicker else "",
        subtitle=head.subtitle.text if head and head.subtitle else "",
        dateline=dateline,
        span=Span(min(s.start for s in spans), max(s.end for s in spans)) if spans else Span(0, 0),
    )
    return article, repairs, labels


def _verse(rest: list[Block], k: int) -> bool:
    """A short line among short lines (a poem's) is text, not a section heading (`k`: its
    place in `rest`, passed rather than looked up, which would make an article quadratic)."""
    near = rest[max(0, k - 1) : k + 2]
    return sum(1 for n in near if n.kind == "body" and heads.heading_like(n.text)) >= 3 or (
        k + 1 < len(rest)
        and heads.heading_like(rest[k + 1].text)
        and k > 0
        and heads.heading_like(rest[k - 1].text)
    )


def _paragraphs(segments: list[Segment], number: int, repairs: list[Repair]) -> list[Paragraph]:
    """Segments into paragraphs: cut blocks joined, continuations followed across pull quotes."""
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
            if current and heads.OPENERS.match(b.text):
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
    return paragraphs


def _with_head(
    paragraphs: list[Paragraph], head: list[Block], rest: list[Block], source: str
) -> list[Paragraph]:
    """The head read in the first paragraph: one span from the kicker or headline to the lead,
    when nothing but photo credits stands between them; the head alone as ¶1 otherwise (a
    section heading or a pull quote there must not be read into a passage)."""
    start = head[0].span.start
    if paragraphs:
        lead = paragraphs[0]
        between = next((b for b in rest if b.kind != "credit"), None)
        if between is not None and lead.spans[0].start == between.span.start:
            spans = (Span(start, lead.spans[0].end), *lead.spans[1:])
            return [Paragraph(1, lead.section, spans, _text(source, spans)), *paragraphs[1:]]
    alone = (Span(start, head[-1].span.end),)
    return [
        Paragraph(1, "", alone, _text(source, alone)),
        *(_renumber(p, p.number + 1) for p in paragraphs),
    ]


def _text(source: str, spans: tuple[Span, ...]) -> str:
    return "".join(source[s.start : s.end] for s in spans)


def _renumber(p: Paragraph, number: int) -> Paragraph:
    return Paragraph(number, p.section, p.spans, p.text)


def _byline(head: Head | None, dateline: str) -> str:
    if head is not None and head.byline is not None:
        return head.byline.text
    return dateline.rstrip("：: ")


def _region(*texts: str) -> str:
    for text in texts:
        found = first_province(text)
        if found:
            return found
    return "unknown"


def _article_date(dateline: str, lead: str, bulletin_date: str) -> str:
    """The dateline's day, else the first 月…日 of the lead's opening; else the bulletin's date."""
    return (
        heads.dateline_date(dateline, bulletin_date)
        or heads.dateline_date(lead[:30], bulletin_date)
        or bulletin_date
    )


def _paragraph(number: int, section: str, blocks: list[Block]) -> Paragraph:
    return Paragraph(
        number=number,
        section=section,
        spans=tuple(b.span for b in blocks),
        text="".join(b.text for b in blocks),
    )
