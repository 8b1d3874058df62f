"""The chat widget: one script any page can embed, and a demo page at / that embeds it."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

# Not part of the API contract, so kept out of the OpenAPI schema; open to all, like the page
# that embeds them: the widget is public, only the search behind it may need a key.
router = APIRouter(include_in_schema=False)

# no-cache: browsers revalidate, so a deployed fix to the widget reaches pages that embed it.
NO_CACHE = {"Cache-Control": "no-cache"}


def _static(name: str) -> str:
    # Read per request: the files are a few kilobytes, and a module global would pin them.
    return (files("api") / "static" / name).read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse)
def demo_page() -> HTMLResponse:
    """A page that explains the service in two lines and embeds the widget."""
    return HTMLResponse(_static("index.html"), headers=NO_CACHE)


@router.get("/widget.js")
def widget_script() -> Response:
    """The widget, one self-contained script with no dependencies."""
    return Response(
        _static("widget.js"),
        media_type="application/javascript; charset=utf-8",
        headers=NO_CACHE,
    )
