"""Cut paragraphs into passages: whole sentences, within a token budget, never across articles."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from rag.documents import ParsedBulletin, Passage

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
    # Prefer cutting after a comma; fall back to a hard cut when a clause alone is too long.
    while start < end:
        hi = end
        while count(text[start:hi]) > budget:
            comma = max(text.rfind("，", start, hi - 1), text.rfind(",", start, hi - 1))
            hi = comma + 1 if comma > start else start + max(1, (hi - start) * 3 // 4)
        yield start, hi
        start = hi


def chunk_bulletin(
    parsed: ParsedBulletin, count: Callable[[str], int], budget: int
) -> list[Passage]:
    """Every paragraph of every article as one or more passages of at most `budget` tokens."""
    b = parsed.bulletin
    passages = []
    for article in parsed.articles:
        for paragraph in article.paragraphs:
            for k, (start, end) in enumerate(_pieces(paragraph.text, count, budget)):
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
                        spans=paragraph.source_spans(start, end),
                        text=paragraph.text[start:end],
                    )
                )
    return passages
