"""The answering sentence of a passage: the highlight a result carries.

Chosen as passages are ranked, by meaning and shared words. Meaning alone picked a sentence
holding the answer for 81% of the eval's questions; mixed as in hybrid ranking, 85%; with a
lead-in's next sentence, 87% (`rag eval` reports it as the highlight rate).
"""

from __future__ import annotations

import re

import numpy as np

# A short sentence opening an enumerated point (一是…, 二要…, 首先…, 一方面…): policy text
# states the point there and makes it in the next sentence. Longer ones make it themselves.
# 首先, 最后… open a point only before a comma: 最后一公里 is a thing.
_LEAD_IN = re.compile(
    r"(?:[一二三四五六七八九十][是要]|(?:首先|其次|再次|最后|此外|一方面|另一方面)[，,])"
)
_LEAD_IN_CHARS = 20


def is_lead_in(sentence: str) -> bool:
    """Whether the sentence only opens an enumerated point (三是落实闭环机制。)."""
    sentence = sentence.strip()
    return len(sentence) <= _LEAD_IN_CHARS and _LEAD_IN.match(sentence) is not None


def answering_span(
    text: str, sentences: np.ndarray, cosines: np.ndarray, bm25: np.ndarray, weight: float
) -> tuple[int, int]:
    """[start, end) in `text` of its sentence that best answers: `sentences` are its (start,
    end) rows in order, `cosines` and `bm25` their scores, `weight` the share of meaning. A
    lead-in is taken with the sentence after it."""
    if not len(sentences):
        return 0, len(text)
    dense, lexical = _scaled(cosines), _scaled(bm25)
    best = int(np.argmax(weight * dense + (1 - weight) * lexical))
    start, end = (int(x) for x in sentences[best])
    if best + 1 < len(sentences) and is_lead_in(text[start:end]):
        end = int(sentences[best + 1][1])
    return start, end


def _scaled(scores: np.ndarray) -> np.ndarray:
    """Scores scaled to [0, 1] within the passage (all 0 when they are equal)."""
    lo, hi = scores.min(), scores.max()
    return (scores - lo) / (hi - lo) if hi > lo else np.zeros_like(scores)
