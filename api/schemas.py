"""Request and response shapes of the HTTP API. Field names are stable: clients depend on them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

EXAMPLE_QUERY = "北京商业航天2028目标是什么"
# A year, a month or a day: filters compare dates as ISO prefixes.
ISO_DATE = r"^\d{4}(-\d{2}(-\d{2})?)?$"


class SearchFilters(BaseModel):
    """Restrict results; unknown fields are refused rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")

    doc_id: str | None = Field(
        None, description="only this bulletin", examples=["000_a1e9ce7368794dc6"]
    )
    article: int | None = Field(None, ge=1, description="only this article number of the bulletin")
    region: str | None = Field(
        None, description="only articles about this region", examples=["北京"]
    )
    date_from: str | None = Field(
        None,
        pattern=ISO_DATE,
        description="ISO date, inclusive",
        examples=["2024-01"],
    )
    date_to: str | None = Field(None, pattern=ISO_DATE, description="ISO date, inclusive")


class SearchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"query": EXAMPLE_QUERY, "top_k": 5, "filters": {"region": "北京"}}]
        },
    )

    query: str = Field(description="the question, Chinese or English", examples=[EXAMPLE_QUERY])
    top_k: int = Field(5, ge=1, le=50, description="how many passages to return")
    filters: SearchFilters | None = None
    mode: str | None = Field(None, description="dense, lexical or hybrid (default: the service's)")


class SpanOut(BaseModel):
    start: int = Field(description="code-point offset into the source text, inclusive")
    end: int = Field(description="code-point offset into the source text, exclusive")


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


class ErrorBody(BaseModel):
    code: str = Field(examples=["query_too_long"])
    message: str = Field(examples=["the query has 612 characters; the limit is 500"])


class ErrorResponse(BaseModel):
    error: ErrorBody
