"""Cut paragraphs into passages: whole sentences, within a token budget, never across articles."""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from itertools import accumulate

from rag.documents import Paragraph, ParsedBulletin, Passage, Span
from rag.ingest.budget import Deadline

# A sentence runs to its closing mark and takes any closing quotes or brackets with it.
SENTENCE = re.compile(r"[^。！？；!?;…]*(?:[。！？；!?;]+|…+)[”’」』）)》]*|[^。！？；!?;…]+$")


_LINES = re.compile(r"[^\n]+\n*|\n+")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences of `text`; together they cover it exactly.

    A line break ends a sentence too: an article's first paragraph reads its headline and
    byline, each on its own line, before the lead (the break stays with the line before it)."""
    out: list[tuple[int, int]] = []
    for line in _LINES.finditer(text):
        body = line.group().rstrip("\n")
        found = [
            (line.start() + m.start(), line.start() + m.end())
            for m in SENTENCE.finditer(body)
            if m.end() > m.start()
        ] or [(line.start(), line.start() + len(body))]
        found[-1] = (found[-1][0], line.end())
        out.extend(found)
    return out or [(0, len(text))]


def body_sentences(text: str) -> list[tuple[int, int]]:
    """The sentences a passage is scored and highlighted by: all but the lines that end in a
    line break, which are the head's (kicker, headline, subtitle, byline, and photo credits
    between them); a paragraph's text holds no other line break.

    The headline, kicker and byline a lead passage reads are in its vector and its BM25 terms;
    as sentences of their own they would be "close" to every question on the article's topic
    and be highlighted in place of the sentence that answers."""
    return [(a, b) for a, b in split_sentences(text) if not text[a:b].endswith("\n")]


def _pieces(text: str, count: Callable[[str], int], budget: int) -> Iterator[tuple[int, int]]:
    """Group sentences greedily up to `budget` tokens; a sentence over budget is cut by length."""
    group_start, group_end = None, None
    for s_start, s_end in split_sentences(text):
        if count(text[s_start:s_end]) > budget:
            if group_start is not None:
                yield group_start, group_end  # type: ignore[misc]
                group_start = None
            yield from _cut_long(text, s_start, s_end, count, budget)
            continue
        if group_start is None:
            group_start, group_end = s_start, s_end
        elif count(text[group_start:s_end]) <= budget:
            group_end = s_end
        else:
            yield group_start, group_end  # type: ignore[misc]
            group_start, group_end = s_start, s_end
    if group_start is not None:
        yield group_start, group_end  # type: ignore[misc]


def _cut_long(
    text: str, start: int, end: int, count: Callable[[str], int], budget: int
) -> Iterator[tuple[int, int]]:
    # Prefer cutting after the last comma that fits; without one, cut where the budget runs
    # out. Each piece costs a few counts of about its own length, so a sentence of any length
    # (a megabyte without punctuation) is cut in time linear in it.
    while start < end:
        hi = _longest_fit(text, start, end, count, budget)
        if hi < end:
            comma = max(text.rfind("，", start, hi), text.rfind(",", start, hi))
            if comma > start:
                hi = comma + 1
        yield start, hi
        start = hi


def _longest_fit(text: str, start: int, end: int, count: Callable[[str], int], budget: int) -> int:
    """The largest `hi` (at least start + 1) with text[start:hi] within `budget` tokens.

    Galloping from `budget` characters (about one piece of Chinese), then bisecting: every
    count is of at most twice the piece found, never of the rest of the sentence."""
    fits, width = start, budget
    while True:
        probe = min(end, start + width)
        if count(text[start:probe]) > budget:
            break
        if probe == end:
            return end
        fits, width = probe, width * 2
    lo, hi = fits, probe  # text[start:lo] fits (or is empty), text[start:hi] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count(text[start:mid]) <= budget:
            lo = mid
        else:
            hi = mid
    return max(lo, start + 1)


def _span_locator(paragraph: Paragraph) -> Callable[[int, int], tuple[Span, ...]]:
    """Paragraph.source_spans by bisection: a paragraph joined from thousands of blocks (lines
    without end punctuation) is cut into many passages, and walking every span for each one
    would be quadratic."""
    offsets = list(accumulate((s.end - s.start for s in paragraph.spans), initial=0))

    def locate(start: int, end: int) -> tuple[Span, ...]:
        first = max(0, bisect_right(offsets, start) - 1)
        last = bisect_left(offsets, end)
        out = []
        for k in range(first, min(last, len(paragraph.spans))):
            span, offset = paragraph.spans[k], offsets[k]
            lo, hi = max(start, offset), min(end, offsets[k + 1])
            if lo < hi:
                out.append(Span(span.start + lo - offset, span.start + hi - offset))
        return tuple(out)

    return locate


def chunk_bulletin(
    parsed: ParsedBulletin,
    count: Callable[[str], int],
    budget: int,
    deadline: Deadline | None = None,
) -> list[Passage]:
    """Every paragraph of every article as one or more passages of at most `budget` tokens.

    Raises BulletinError when the work outlasts `deadline` (by default rag.ingest.budget's)."""
    b = parsed.bulletin
    deadline = deadline or Deadline(b.source, "chunking")
    passages = []
    for article in parsed.articles:
        for paragraph in article.paragraphs:
            locate = _span_locator(paragraph)
            for k, (start, end) in enumerate(_pieces(paragraph.text, count, budget)):
                deadline.check()
                passages.append(
                    Passage(
                        passage_id=f"{b.doc_id}:{article.number}:{paragraph.number}:{k}",
                        doc_id=b.doc_id,
                        source=b.source,
                        article=article.number,
                        headline=article.headline,
                        section=paragraph.section,
                        paragraph=paragraph.number,
                        region=article.region,
                        date=article.date,
                        spans=locate(start, end),
                        text=paragraph.text[start:end],
                    )
                )
    return passages
