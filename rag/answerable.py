"""Whether the bulletins answer a question at all, judged from retrieval evidence alone.

Two tests, both cheap and both explainable to the user:
- the question names a province that no indexed article is about and no passage mentions
  (a question about 上海 asked of bulletins about 北京 and 重庆);
- the best-matching passage or sentence is less similar to the question than a floor set a
  margin below the least similar answerable question of the eval. The similarity scale of a
  multilingual model differs by language (off-topic Chinese questions score about 0.85,
  off-topic English ones about 0.75), so the floor is set per script. The floors belong to the
  default model: `rag eval` prints the trade-off curve to choose them again for another model.

What these tests cannot catch, and do not pretend to: a question about the right place and topic
whose detail the bulletins lack (北京商业航天安排了多少财政补贴资金). Telling that apart needs a
model that reads the passage, not a similarity score.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

_CJK = re.compile(r"[\u3400-\u9fff]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")

# Why a question was judged unanswerable: it names only provinces the index knows nothing of;
# nothing is close enough; the filters admit no passage.
Reason = Literal["unknown_place", "too_far", "filtered_out"]


@dataclass(frozen=True)
class Verdict:
    answerable: bool
    message: str | None = None
    reason: Reason | None = None  # None when answerable


def is_chinese(question: str) -> bool:
    """Whether the question is mostly Chinese: more Chinese characters than Latin words.

    A Chinese character is about a word's worth of meaning, so "What is 北京's 2028 goal?" is
    English (2 against 4) and "北京商业航天的GDP目标" is Chinese.
    """
    return len(_CJK.findall(question)) > len(_LATIN_WORD.findall(question))


def nothing_admitted(question: str) -> Verdict:
    """The verdict when the filters leave no passage to search."""
    return Verdict(
        False,
        "没有符合筛选条件的段落。" if is_chinese(question) else "No passage matches the filters.",
        "filtered_out",
    )


def judge(
    question: str,
    best_similarity: float,
    *,
    unknown_places: set[str],
    floor_zh: float,
    floor_en: float,
) -> Verdict:
    """The verdict for one question; `unknown_places` are the provinces it names when none of
    them is an article's or a passage's, `best_similarity` the cosine of the closest passage or
    sentence it could search."""
    chinese = is_chinese(question)
    if unknown_places:
        places = "、".join(sorted(unknown_places))
        return Verdict(
            False,
            f"公报中没有关于{places}的内容。"
            if chinese
            else f"The bulletins say nothing about {places}.",
            "unknown_place",
        )
    if best_similarity < (floor_zh if chinese else floor_en):
        return Verdict(
            False,
            "公报中没有与这个问题足够接近的内容；下面是最接近的段落，可能并不回答问题。"
            if chinese
            else "Nothing in the bulletins is close to this question; the nearest passages "
            "follow and may not answer it.",
            "too_far",
        )
    return Verdict(True)
