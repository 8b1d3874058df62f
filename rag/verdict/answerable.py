"""Whether the bulletins answer a question at all, judged from retrieval evidence alone.

Four tests, all cheap and all explainable to the user:
- the question names nothing to search for ("？？？", "的", "what": the model finds any text
  close to such strings, so without this they came back answerable);
- the question names a province that no indexed article is about and no passage mentions
  (a question about 上海 asked of bulletins about 北京 and 重庆);
- the bulletins use none of the question's content words (red-cooked pork, sourdough bread;
  English questions only when they have three content words or more; see rag.verdict.topic);
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
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

_CJK = re.compile(r"[\u3400-\u9fff]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")
_NUMBER = re.compile(r"\d{2,}")
# 5G, 3D, H2: letters and digits together name a thing where neither alone would.
_CODE = re.compile(r"\d+[A-Za-z]+|[A-Za-z]+\d+")
# Words that ask, or say when, rather than name: a question of these alone has nothing to search
# for, and the off-topic test (rag.verdict.topic) does not count them.
# fmt: off
FUNCTION_WORDS = frozenset({
    "a", "about", "an", "and", "any", "are", "as", "at", "be", "by", "can", "could", "did", "do",
    "does", "for", "from", "has", "have", "how", "i", "if", "in", "is", "it", "its", "me", "my",
    "of", "on", "or", "please", "tell", "that", "the", "their", "there", "these", "this", "to",
    "was", "we", "were", "what", "when", "where", "which", "who", "whom", "whose", "why", "will",
    "with", "would", "you", "your",
})
QUESTION_WORDS = frozenset({
    "什么", "什么样", "多少", "哪些", "哪个", "哪里", "哪儿", "哪天", "哪一天", "哪几", "哪家",
    "怎么", "怎么样", "怎样", "如何", "为什么", "是否", "是不是", "有没有", "能不能", "会不会",
    "今天", "今年", "去年", "明年",
    # words about the bulletins themselves: 公报说了啥 asks about all of them
    "公报", "新闻", "文章", "报道", "内容", "总结", "介绍",
})
# fmt: on
# Words that carry no topic on their own: particles and the copula (as whole words: 目的, 吗啡).
_FILLERS = frozenset(["的", "了", "吗", "呢", "么", "是", "吧", "啊", "呀", "哦", "嘛"])
# Letters of any script but Chinese (Latin, kana, hangul, Cyrillic...).
_LETTERS = re.compile(r"[^\W\d_\u3400-\u9fff]+")

# Why a question was judged unanswerable: it names nothing to search for; it names only
# provinces the index knows nothing of; the bulletins use none of its words; nothing is close
# enough; the closest passages do not state the year it asks about, or are about another
# province than the one it names; the filters admit no passage.
Reason = Literal[
    "no_terms",
    "unknown_place",
    "off_topic",
    "too_far",
    "year_not_found",
    "place_not_found",
    "filtered_out",
]


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
    question = unicodedata.normalize("NFKC", question)
    return len(_CJK.findall(question)) > len(_LATIN_WORD.findall(question))


def searchable_form(question: str) -> str:
    """The question as its words are read: width folded (NFKC), with ① and ² left out first
    (they are numbers only to NFKC, which would make them digits)."""
    question = "".join(c for c in question if unicodedata.category(c) != "No")
    return unicodedata.normalize("NFKC", question)


def has_terms(question: str, words: Sequence[str] | None = None) -> bool:
    """Whether the question names something to search for: two Chinese characters besides
    question words and particles (one is rarely a word on its own; 怎么样 and 的的的 name
    nothing), a number of two digits or more, letters with digits (5G), or a word of another
    script that is not an English function word. Full-width letters and digits count as their
    ASCII forms. `words`: jieba's words of `searchable_form(question)`, when already cut."""
    question = searchable_form(question)
    if words is None:
        import jieba

        words = jieba.lcut(question)
    naming = [w for w in words if w not in QUESTION_WORDS and w not in _FILLERS]
    if sum(len(_CJK.findall(w)) for w in naming) >= 2:
        return True
    if _NUMBER.search(question) or _CODE.search(question):
        return True
    return any(
        len(word) > 1 and word.lower() not in FUNCTION_WORDS for word in _LETTERS.findall(question)
    )


def nothing_to_search(question: str) -> Verdict:
    """The verdict for a question without terms: in its script, in both when it has none."""
    chinese = "问题里没有可以检索的词语，请换一种问法。"
    english = "The question has no words to search for; please rephrase it."
    if _CJK.search(question):
        message = chinese
    elif _LATIN_WORD.search(question):
        message = english
    else:
        message = f"{chinese} {english}"
    return Verdict(False, message, "no_terms")


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
    words_not_found: Sequence[str] = (),
    words_apart: Sequence[str] = (),
    years_not_found: Sequence[int] = (),
    places_not_found: Sequence[str] = (),
    floor_zh: float,
    floor_en: float,
) -> Verdict:
    """The verdict for one question; `unknown_places` are the provinces it names when none of
    them is an article's or a passage's, `words_not_found` its content words when the bulletins
    use none of them (rag.verdict.topic), `words_apart` its content words when no passage uses
    two of
    them together (rag.verdict.support), `years_not_found` and `places_not_found` the years and
    provinces it names when none of the closest passages states one (rag.verdict.support),
    `best_similarity` the cosine of the closest passage or sentence
    it could search."""
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
    if words_not_found:
        words = "、".join(words_not_found) if chinese else ", ".join(words_not_found)
        return Verdict(
            False,
            f"公报里没有出现这个问题的词语（{words}）。"
            if chinese
            else f"The bulletins do not use this question's words ({words}).",
            "off_topic",
        )
    if words_apart:
        words = "、".join(words_apart)
        return Verdict(
            False,
            f"公报里没有同时用到这个问题的词语（{words}）的段落。",
            "off_topic",
        )
    if places_not_found:
        places = "、".join(places_not_found)
        return Verdict(
            False,
            f"最接近的段落都没有提到{places}；下面的段落可能并不回答问题。"
            if chinese
            else f"None of the closest passages speaks of {', '.join(places_not_found)}; "
            "those that follow may not answer the question.",
            "place_not_found",
        )
    if years_not_found:
        years = "、".join(f"{y}年" for y in years_not_found)
        return Verdict(
            False,
            f"最接近的段落都没有提到{years}；下面的段落可能并不回答问题。"
            if chinese
            else f"None of the closest passages speaks of {', '.join(map(str, years_not_found))}; "
            "those that follow may not answer the question.",
            "year_not_found",
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
