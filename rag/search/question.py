"""A question read once: cleaned, in the bulletins' script, cut into words, its places and
years named. Every later stage (the legs, the preference, the verdict) reads this object and
none cuts the question again: jieba cut it in four places per search before.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from rag.places import provinces_named, years_named
from rag.verdict.answerable import has_terms, is_chinese, searchable_form
from rag.verdict.topic import chinese_words


class QueryError(ValueError):
    """A question or filter the retriever cannot use; the message says what was wrong."""


@dataclass(frozen=True)
class Question:
    text: str  # as searched: format characters out, in the bulletins' script
    folded: str  # width folded (NFKC), as its words are read
    chinese: bool  # mostly Chinese (rag.verdict.answerable.is_chinese)
    words: tuple[str, ...]  # jieba's words of `folded`
    has_terms: bool  # names something to search for
    provinces: frozenset[str]  # the provinces it names, as Chinese names
    years: frozenset[int]  # the years it names
    # Its Chinese content words, each with the words jieba finds in it (rag.verdict.topic).
    content: tuple[tuple[str, tuple[str, ...]], ...]
    # What the lexical leg searches: the question, and for an English one its words as the
    # Chinese words the bulletins use for them (rag.verdict.topic.Glossary.translate).
    searches: tuple[str, ...]


def clean(raw: str) -> str:
    """The question without format characters (zero-width and the like split words for BM25
    and for jieba: 重\u200b庆), refused when nothing usable is left."""
    if not raw.strip():
        raise QueryError("the question is empty")
    text = "".join(c for c in raw if unicodedata.category(c) != "Cf").strip()
    if not text:
        raise QueryError("the question has only invisible characters (format controls)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # A lone surrogate: JSON can carry "\ud800", and a command line undecodable bytes.
        raise QueryError(f"the question is not valid Unicode at character {exc.start}") from exc
    return text


def parse(
    raw: str,
    *,
    reader: Callable[[str], str],
    render: Callable[[str], str],
) -> Question:
    """Read a question once. `reader` puts it in the bulletins' script (重慶 -> 重庆); `render`
    gives an English question's words as Chinese ones ("" when none is known)."""
    import jieba

    text = reader(clean(raw))
    folded = searchable_form(text)
    words = tuple(jieba.lcut(folded))
    chinese = is_chinese(text)
    searches = (text,) if chinese else tuple(t for t in (text, render(text)) if t)
    return Question(
        text=text,
        folded=folded,
        chinese=chinese,
        words=words,
        has_terms=has_terms(text, words),
        provinces=frozenset(provinces_named(folded, words)),
        years=frozenset(years_named(folded)),
        content=tuple((w, tuple(parts)) for w, parts in chinese_words(folded, words)),
        searches=searches,
    )
