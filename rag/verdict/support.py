"""Whether the closest passages speak of what a question pins down: its year, its place.

At the scale of an archive the model finds a close passage for any question, and the nearest
ones to a near miss (1996's figure when the paper gives 1997's; a film's takings in Shanghai
when the paper gives Beijing's) are about the right topic. What gives the near miss away is
that none of them states the year or names the place the question asks about. Both tests are
cheap, run on the few best passages only, and are explained to the user by name.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from rag.documents import Passage
from rag.places import PROVINCES, years_named, years_stated

# A question that names a month or a day asks about a date: the year of a passage's article
# (its dateline) then counts as stated (1998年1月5日 is answered by a report dated 1998-01-05
# that says only １月５日).
_MONTH = re.compile(
    r"\d{1,2}月|年[初底末]|\b(?:early|late|mid|january|february|march|april|june|july|"
    r"august|september|october|november|december)\b",  # not "may": a question may say it
    re.IGNORECASE,
)


def years_not_stated(
    question: str, passages: Sequence[Passage], leads: Sequence[Passage]
) -> list[int]:
    """The years `question` names when none of `passages` states one of them; [] otherwise.
    `leads[i]`: the first passage of the article `passages[i]` is of."""
    folded = unicodedata.normalize("NFKC", question)
    asked = years_named(folded)
    if not asked:
        return []
    dated = bool(_MONTH.search(folded))
    for p, lead in zip(passages, leads, strict=True):
        stated = years_stated(f"{p.headline}\n{p.text}", p.date)
        # A passage that states no year speaks of the year its article's lead states (北大荒's
        # harvest of 1997, reported in January 1998), or, when that states none either, of
        # its article's date (the 1998 ice storm, in a report of January 1998).
        if not stated:
            stated = years_stated(lead.text, lead.date)
        if p.date[:4].isdigit() and (dated or not stated):
            stated.add(int(p.date[:4]))
        if asked & stated:
            return []
    return sorted(asked)


def places_not_named(named: set[str], passages: Sequence[Passage]) -> list[str]:
    """The provinces a question names (`named`, Chinese names) when each of `passages` is of
    an article about another province and names none of them; [] otherwise.

    Absence alone is no evidence: a passage about 茂名's refinery answers a question about
    广东's without naming the province. An article about 北京 answering a question about 上海
    is."""
    if not named:
        return []
    for p in passages:
        text = f"{p.headline}\n{p.text}"
        if p.region in ("unknown", *named) or any(name in text for name in named):
            return []
    return sorted(named & set(PROVINCES))


def held_together(words: Sequence[Sequence[Sequence[str]]], texts: Iterable[set[str]]) -> bool:
    """Whether one of `texts` (each the set of its search terms) holds two of the words:
    `words`, per content word, its forms, each as the terms a text holding it holds (rag.index.
    lexical.word_terms); a form without terms is held by none, as `containing` finds none.
    When so, `words_apart` is false whatever the other passages hold, and the postings of
    common words it reads (5 ms a question at 1M passages) need not be read."""
    for terms in texts:
        held = sum(any(form and terms.issuperset(form) for form in forms) for forms in words)
        if held >= 2:
            return True
    return False


def words_apart(
    words: Sequence[Sequence[str]], containing: Callable[[str], np.ndarray], *, large: bool
) -> bool:
    """Whether no passage uses two of a question's content words together: of three words or
    more; of two when one is used nowhere. With `large` false (a few pages, not an archive),
    only when every word is used somewhere. `words`: per content word, the forms any of which
    counts (卫星网络: 卫星, 网络); `containing(form)`: the passages holding a form.

    At an archive's scale the bulletins use almost any word somewhere (红烧, 排骨 and 好吃 each
    occur), so the test of whether they use a question's words at all stops telling a recipe
    question from one about the news; that no passage uses any two of them together still does.
    (Half of them together flagged a third of the eval's paraphrases: they share few words.)"""
    if len(words) < 2:
        return False
    found = [[np.asarray(containing(f), dtype=np.int64) for f in forms] for forms in words]
    size = 1 + max((int(a.max()) for per in found for a in per if len(a)), default=-1)
    # Each word's passages as a mask over the passages, and how many words each passage
    # holds: at 300,000 passages (bench/search_scale.py --profile) the sorted unions of the
    # forms' postings (np.unique) took 8 ms of a 31 ms search; with masks the whole verdict
    # takes 1.6 ms.
    together = np.zeros(size, dtype=np.int32)
    used = []
    for per in found:
        mask = np.zeros(size, dtype=bool)
        for passages in per:
            mask[passages] = True
        used.append(bool(mask.any()))
        together += mask
    if not all(used) and not large:
        # In a few pages, a word used nowhere is no evidence: a paraphrase uses words the
        # page never does (山城 for 重庆). In an archive, it is (比特币, 抖音).
        return False
    if len(words) == 2 and all(used):
        return False  # two words, both used somewhere: too little to judge by (山城, 工业)
    return not size or int(together.max()) < 2
