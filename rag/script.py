"""Simplified or traditional characters: a question is read in the script of its bulletins.

A question typed in traditional characters (重慶工業投資增長目標是多少) shares no characters with
a simplified bulletin's 重庆工业投资增长, so BM25 missed it and the model matched it less well:
over the eval's Chinese questions written in traditional characters (OpenCC s2t), Hit@1 0.810
against 0.868 in simplified; converted to the bulletins' script first, 0.868 again. OpenCC
converts by phrase (头发 -> 頭髮, 干部 -> 幹部), which a character table cannot.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Script = Literal["simplified", "traditional"]
# Enough text to tell the script of a corpus; the rest would only confirm it.
_SAMPLE_CHARS = 200_000


def script_of(texts: Iterable[str]) -> Script:
    """The script most of the texts are in: the one converting them changes the least."""
    import opencc

    sample, size = [], 0
    for text in texts:
        sample.append(text)
        size += len(text)
        if size >= _SAMPLE_CHARS:
            break
    joined = "".join(sample)
    as_simplified = opencc.OpenCC("t2s.json").convert(joined)
    as_traditional = opencc.OpenCC("s2t.json").convert(joined)
    changed_to_simplified = sum(a != b for a, b in zip(joined, as_simplified, strict=False))
    changed_to_traditional = sum(a != b for a, b in zip(joined, as_traditional, strict=False))
    return "traditional" if changed_to_simplified > changed_to_traditional else "simplified"


class ScriptReader:
    """Writes a question in one script, so that it meets the bulletins' own characters."""

    def __init__(self, script: Script) -> None:
        import opencc

        self.script = script
        self._converter = opencc.OpenCC("t2s.json" if script == "simplified" else "s2t.json")

    def __call__(self, question: str) -> str:
        return str(self._converter.convert(question))
