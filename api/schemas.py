"""Request and error shapes of the HTTP API. Field names are stable: clients depend on them.

The search response is rag/response.py's, shared with `rag ask --json`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from rag.mode import MODES
from rag.response import EXAMPLE_QUERY

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
    # Checked by the route rather than typed as a Mode, so a wrong mode gets the API's own
    # message ("'mode' must be one of …"), as it always has.
    mode: str | None = Field(None, description=f"{', '.join(MODES)} (default: the service's)")


class ErrorBody(BaseModel):
    code: str = Field(examples=["query_too_long"])
    message: str = Field(examples=["the query has 612 characters; the limit is 500"])


class ErrorResponse(BaseModel):
    error: ErrorBody
