"""The search modes, named once for the retriever, the command line, the HTTP API and settings.

A leaf module, importing nothing of the project, so that any module (rag/settings.py too) can
type a mode without pulling the pipeline in.
"""

from __future__ import annotations

from typing import Literal, get_args

Mode = Literal["dense", "lexical", "hybrid"]
MODES: tuple[Mode, ...] = get_args(Mode)


def as_mode(name: str) -> Mode:
    """`name` as a Mode; a ValueError that lists the modes when it is none of them."""
    for mode in MODES:
        if name == mode:
            return mode
    raise ValueError(f"must be one of {', '.join(MODES)}")
