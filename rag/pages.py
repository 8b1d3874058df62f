"""Where a PDF's cited words were printed: the page and the boxes of a span of its extracted text.

A PDF bulletin's layout (rag.documents.Layout) is kept in its stored document as plain rows
(`layout_json`), so that a citation can be given its page and boxes from what the index holds,
by the CLI and the service alike, without the PDF. Pure functions; offsets are code points.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rag.documents import Layout, Span

# A row of `layout_json()["lines"]`: start, end, page, top, bottom, [x0...], [x1...].
Row = Sequence[Any]
# How suffixes of PDF files are told (load matches suffixes whatever their case).
PDF_SUFFIX = ".pdf"


@dataclass(frozen=True)
class Box:
    """Part of one printed line, in PDF points from the page's top left corner."""

    page: int
    x0: float
    y0: float
    x1: float
    y1: float


def layout_json(layout: Layout) -> dict[str, Any]:
    """The layout as the stored document holds it: one row per printed line's piece."""
    return {
        "page_sizes": [list(size) for size in layout.page_sizes],
        "lines": [
            [
                line.start,
                line.end,
                line.page,
                round(line.top, 2),
                round(line.bottom, 2),
                [round(x, 2) for x in line.x0],
                [round(x, 2) for x in line.x1],
            ]
            for line in layout.lines
        ],
    }


def page_runs(rows: Sequence[Row]) -> list[dict[str, int]]:
    """The extracted text cut by page: [{page, start, end}], one per run of lines on a page."""
    runs: list[dict[str, int]] = []
    for start, end, page, *_ in rows:
        if runs and runs[-1]["page"] == page:
            runs[-1]["end"] = end
        else:
            runs.append({"page": page, "start": start, "end": end})
    return runs


def boxes_of(rows: Sequence[Row], spans: Iterable[Span]) -> list[Box]:
    """One box per printed line's piece that the spans cover, in text order: from the first
    covered character's left edge to the last one's right edge (rows sorted by start)."""
    starts = [row[0] for row in rows]
    out: list[Box] = []
    for span in spans:
        k = max(0, bisect_right(starts, span.start) - 1)
        while k < len(rows) and rows[k][0] < span.end:
            start, end, page, top, bottom, x0, x1 = rows[k]
            lo, hi = max(span.start, start), min(span.end, end)
            if lo < hi:
                out.append(Box(page, x0[lo - start], top, x1[hi - 1 - start], bottom))
            k += 1
    return out
