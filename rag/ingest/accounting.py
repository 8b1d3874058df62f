"""Where every character of a bulletin went: into a paragraph (and so a passage), or into a
labelled span; what is in neither is unaccounted, and ingestion says so, naming the file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rag.documents import ParsedBulletin, Span


@dataclass(frozen=True)
class Coverage:
    """Non-blank characters of one bulletin: in passages, only labelled, or neither."""

    characters: int
    in_passages: int
    labelled_only: int
    unaccounted: tuple[Span, ...]

    @property
    def unaccounted_characters(self) -> int:
        return self.characters - self.in_passages - self.labelled_only


def coverage(parsed: ParsedBulletin) -> Coverage:
    """Account for every non-blank character of the bulletin's text."""
    text = parsed.bulletin.text
    # 0 unread, 1 labelled, 2 in a paragraph: one byte a character, fine for a page of text.
    owner = bytearray(len(text))
    for label in parsed.labels:
        owner[label.span.start : label.span.end] = b"\x01" * (label.span.end - label.span.start)
    for article in parsed.articles:
        for paragraph in article.paragraphs:
            for s in paragraph.spans:
                owner[s.start : s.end] = b"\x02" * (s.end - s.start)
    blank = {i for m in re.finditer(r"\s+", text) for i in range(m.start(), m.end())}
    counts = [0, 0, 0]
    missing: list[Span] = []
    for i, who in enumerate(owner):
        if i in blank:
            continue
        counts[who] += 1
        if who == 0:
            if missing and _blank_between(text, missing[-1].end, i):
                missing[-1] = Span(missing[-1].start, i + 1)
            else:
                missing.append(Span(i, i + 1))
    return Coverage(
        characters=sum(counts),
        in_passages=counts[2],
        labelled_only=counts[1],
        unaccounted=tuple(missing),
    )


def _blank_between(text: str, end: int, i: int) -> bool:
    return not text[end:i].strip() and "\n" not in text[end:i]


def inspection_json(parsed: ParsedBulletin) -> dict[str, Any]:
    """What `rag inspect --json` prints for one file: its articles with their heads and
    paragraphs, its labelled spans, and what is unaccounted (code-point offsets into the file)."""
    b = parsed.bulletin
    cov = coverage(parsed)

    def span(s: Span) -> dict[str, int]:
        return {"start": s.start, "end": s.end}

    return {
        "source": b.source,
        "doc_id": b.doc_id,
        "title": b.title,
        "date": b.date,
        "coverage": {
            "characters": cov.characters,
            "in_passages": cov.in_passages,
            "labelled_only": cov.labelled_only,
            "unaccounted": cov.unaccounted_characters,
        },
        "articles": [
            {
                "number": a.number,
                "span": span(a.span),
                "headline": a.headline,
                "kicker": a.kicker,
                "subtitle": a.subtitle,
                "byline": a.byline,
                "dateline": a.dateline,
                "region": a.region,
                "date": a.date,
                "paragraphs": [
                    {
                        "number": p.number,
                        "section": p.section,
                        "spans": [span(s) for s in p.spans],
                        "text": p.text,
                    }
                    for p in a.paragraphs
                ],
            }
            for a in parsed.articles
        ],
        "labels": [
            {"label": lab.label, **span(lab.span)}
            | ({"repeats": span(lab.repeats)} if lab.repeats else {})
            for lab in parsed.labels
        ],
        "unaccounted": [{**span(s), "text": b.text[s.start : s.end]} for s in cov.unaccounted],
    }
