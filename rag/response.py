"""The answer as clients receive it: the JSON of `rag ask --json` and of the HTTP API's search.

One set of models, so the two cannot drift apart. Field names are stable: the widget and other
clients depend on them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, model_serializer

from rag.pages import PDF_SUFFIX, boxes_of

if TYPE_CHECKING:
    from rag.documents import Passage
    from rag.search.retriever import Answer, Hit

EXAMPLE_QUERY = "北京商业航天2028目标是什么"


class SpanOut(BaseModel):
    start: int = Field(description="code-point offset into the source text, inclusive")
    end: int = Field(description="code-point offset into the source text, exclusive")


class BoxOut(BaseModel):
    page: int = Field(description="the PDF's page, 1-based", examples=[1])
    x0: float = Field(description="left edge, PDF points from the page's left")
    y0: float = Field(description="top edge, PDF points from the page's top")
    x1: float = Field(description="right edge")
    y1: float = Field(description="bottom edge")


class Citation(BaseModel):
    doc_id: str = Field(examples=["000_a1e9ce7368794dc6"])
    source: str = Field(
        description="path relative to the project root",
        examples=["corpus/000_a1e9ce7368794dc6.txt"],
    )
    headline: str = Field(examples=["北京将建设具有全球影响力的商业航天创新发展高地"])
    section: str = Field(description="sub-heading, empty for an article's lead")
    paragraph: int = Field(description="paragraph number within the article (¶n)", examples=[2])
    spans: list[SpanOut] = Field(
        description="where the words are in the source; several when a cut paragraph was joined"
    )
    page: int | None = Field(
        None, description="a PDF's: the page the words start on, 1-based; absent otherwise"
    )
    boxes: list[BoxOut] | None = Field(
        None,
        description="a PDF's: where the words were printed, one box per line's piece; absent "
        "otherwise",
    )

    @model_serializer(mode="wrap")
    def _without_absent_pages(self, handler: Any) -> dict[str, Any]:
        # A citation into text, a web page or a Word file has no page: the keys are left out,
        # so its JSON is what it always was.
        out = handler(self)
        for key in ("page", "boxes"):
            if out.get(key) is None:
                out.pop(key, None)
        return out


class Result(BaseModel):
    rank: int = Field(examples=[1])
    score: float = Field(examples=[0.93])
    text: str = Field(
        description="the bulletin's own words",
        examples=["《方案》明确，到2028年，北京商业航天创新能力显著增强，产业能级明显提升。"],
    )
    highlights: list[SpanOut] = Field(description="the answering sentence: offsets into `text`")
    citation: Citation
    duplicates: list[Citation] = Field(
        default_factory=list,
        description="the same text elsewhere (a pull quote, another bulletin), collapsed into "
        "this result",
    )


class SearchResponse(BaseModel):
    query: str = Field(examples=[EXAMPLE_QUERY])
    took_ms: float = Field(description="time spent answering, in milliseconds")
    answerable: bool = Field(
        description="false when the bulletins do not answer the question; `results` then holds "
        "the nearest passages, which should not be shown as an answer (none when the filters "
        "admit no passage or the question names nothing to search for)"
    )
    message: str | None = Field(
        None,
        description="why the question was judged unanswerable, in the question's language "
        "(in both when it has neither Chinese nor English words)",
        examples=[None, "公报中没有关于上海的内容。"],
    )
    results: list[Result]


# A stored document by doc_id (the backend's `document`): what a PDF's citations read their
# pages and boxes from.
Documents = Callable[[str], "dict[str, Any] | None"]


def citation_of(p: Passage, documents: Documents | None = None) -> Citation:
    """Where a passage's words are: bulletin, article headline, section, paragraph, spans; for
    a PDF, with `documents` to look its layout up, also the page and the printed boxes."""
    page, boxes = None, None
    if documents is not None and p.source.lower().endswith(PDF_SUFFIX):
        stored = documents(p.doc_id) or {}
        rows = stored.get("layout", {}).get("lines", [])
        found = boxes_of(rows, p.spans)
        if found:
            page = found[0].page
            boxes = [BoxOut(page=b.page, x0=b.x0, y0=b.y0, x1=b.x1, y1=b.y1) for b in found]
    return Citation(
        doc_id=p.doc_id,
        source=p.source,
        headline=p.headline,
        section=p.section,
        paragraph=p.paragraph,
        spans=[SpanOut(start=s.start, end=s.end) for s in p.spans],
        page=page,
        boxes=boxes,
    )


def result_of(hit: Hit, documents: Documents | None = None) -> Result:
    """One ranked passage with its answering sentence, citation and folded copies."""
    return Result(
        rank=hit.rank,
        score=round(hit.score, 4),
        text=hit.passage.text,
        highlights=[SpanOut(start=a, end=b) for a, b in hit.highlights],
        citation=citation_of(hit.passage, documents),
        duplicates=[citation_of(d, documents) for d in hit.duplicates],
    )


def search_response(
    query: str, answer: Answer, took_ms: float, documents: Documents | None = None
) -> SearchResponse:
    """The body `rag ask --json` prints and the HTTP API returns for a question (`documents`:
    the index's stored documents, for a PDF's pages and boxes)."""
    return SearchResponse(
        query=query,
        took_ms=took_ms,
        answerable=answer.answerable,
        message=answer.message,
        results=[result_of(h, documents) for h in answer.hits],
    )
