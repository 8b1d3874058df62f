"""What the retriever knows per article: which passages are its, the province it is about, the
years it is about. Filters and the place/year preference need only this, so they are worked out
once per article and spread to its passages by index, with no per-passage Python per query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import numpy as np

from rag.documents import Passage
from rag.places import PROVINCES, years_named
from rag.search.question import Question

# Region masks an ArticleTable keeps (ArticleTable._cached).
_MASKS_KEPT = 64


class ArticleFilter(Protocol):
    """What a filter says of an article (rag.search.retriever.Filters)."""

    @property
    def doc_id(self) -> str | None: ...
    @property
    def article(self) -> int | None: ...
    @property
    def region(self) -> str | None: ...
    @property
    def date_from(self) -> str | None: ...
    @property
    def date_to(self) -> str | None: ...
    def admits_date(self, date: str) -> bool: ...


class ArticleTable:
    """Articles of the index, each known by its first passage, and the passages' article slots."""

    def __init__(self, passages: Sequence[Passage]) -> None:
        slots: dict[tuple[str, int], int] = {}
        self.first: list[Passage] = []
        years: list[set[int]] = []
        lead: list[int] = []
        self.of = np.empty(len(passages), dtype=np.int64)
        for i, p in enumerate(passages):
            key = (p.doc_id, p.article)
            if key not in slots:
                slots[key] = len(self.first)
                self.first.append(p)
                dated = {int(p.date[:4])} if p.date[:4].isdigit() else set()
                years.append(years_named(p.headline) | dated)
                lead.append(p.paragraph)
            slot = self.of[i] = slots[key]
            lead[slot] = min(lead[slot], p.paragraph)
        self._slots = slots
        # The years an article is about: its date, and those its headline and lead name.
        for i, p in enumerate(passages):
            if p.paragraph == lead[self.of[i]]:
                years[self.of[i]] |= years_named(p.text)
        self.years = [frozenset(y) for y in years]
        # Per year, the articles about it: worked out the first time a question names it (a
        # pass over every article, 15 ms at 100k articles), then looked up. Years are 1900-2099 only
        # (rag.places), so there are at most 200 of these.
        self._about_year: dict[int, np.ndarray] = {}
        # Per set of regions, its articles' and its passages' masks, read-only: two gathers
        # over a million articles cost 3.7 ms a question naming a province (bench/search_scale.py),
        # and questions name few sets. Emptied when full rather than grown.
        self._masks: dict[tuple[str, frozenset[str]], np.ndarray] = {}
        self.regions = np.array([a.region for a in self.first])
        # Regions as small integers: comparing a million articles' region strings to a name took
        # milliseconds a question (bench/search_scale.py), a gather of codes a tenth of that.
        self._region_names, codes = np.unique(self.regions, return_inverse=True)
        self._region_of = codes.astype(np.int32)
        self._doc_ids = np.array([a.doc_id for a in self.first])
        self._numbers = np.array([a.article for a in self.first], dtype=np.int64)
        self._dates, self._date_of = np.unique([a.date for a in self.first], return_inverse=True)
        self._region_set = set(self.regions.tolist())
        # Provinces the index knows anything about: an article's region, or a name found in a
        # passage. A plain substring test here errs the safe way (黄河北岸 makes 河北 "known",
        # so a question about 河北 is not refused) and is cheap on a large corpus.
        self.places = set(self.regions.tolist()) | {
            name for name in PROVINCES if any(name in p.text for p in passages)
        }

    def lead_of(self, passage: Passage) -> Passage:
        """The first passage of the article `passage` is of."""
        return self.first[self._slots[(passage.doc_id, passage.article)]]

    def mask(self, filters: ArticleFilter) -> np.ndarray:
        """Per passage, whether its article passes the filters (they look at article metadata
        only). Compared as arrays, and dates once per distinct date: a Python call per article
        took 40 ms a question at 100k passages."""
        keep = np.ones(len(self.first), dtype=bool)
        if filters.doc_id is not None:
            keep &= self._doc_ids == filters.doc_id
        if filters.article is not None:
            keep &= self._numbers == filters.article
        if filters.region is not None:
            keep &= self._in_regions([filters.region])
        if filters.date_from is not None or filters.date_to is not None:
            dated = np.array([filters.admits_date(d) for d in self._dates], dtype=bool)
            keep &= dated[self._date_of]
        return keep[self.of]

    def preferred(self, question: Question, ids: np.ndarray) -> np.ndarray:
        """For the passages `ids`: 1 for those of an article about a province the question
        names, +1 for a year it names. A year every article shares adds nothing."""
        of = self.of[ids]
        preferred = np.zeros(len(ids), dtype=np.float32)
        about = self._about_places(question)
        if about is not None:
            preferred += about[of]
        if question.years:
            about = np.zeros(len(self.first), dtype=bool)
            for year in question.years:
                about |= self._articles_about(year)
            if not about.all():
                preferred += about[of]
        return preferred

    def about_places(self, question: Question) -> np.ndarray | None:
        """Per passage, whether its article is about a province the question names; None when
        no article is."""
        places = self.named_regions(question)
        if not places:
            return None
        return self._cached("passages", places, lambda: self._in_regions(places)[self.of])

    def named_regions(self, question: Question) -> frozenset[str]:
        """The provinces the question names that are some article's region."""
        return question.provinces & self._region_set

    def _about_places(self, question: Question) -> np.ndarray | None:
        """Per article, whether it is about a province the question names (None: none is)."""
        places = self.named_regions(question)
        return self._in_regions(places) if places else None

    def _in_regions(self, regions: Iterable[str]) -> np.ndarray:
        """Per article, whether its region is one of `regions` (read-only)."""
        regions = frozenset(regions)

        def mask() -> np.ndarray:
            wanted = np.zeros(len(self._region_names), dtype=bool)
            for region in regions:
                at = int(np.searchsorted(self._region_names, region))
                if at < len(self._region_names) and self._region_names[at] == region:
                    wanted[at] = True
            return wanted[self._region_of]

        return self._cached("articles", regions, mask)

    def _cached(
        self, kind: str, regions: frozenset[str], make: Callable[[], np.ndarray]
    ) -> np.ndarray:
        key = (kind, regions)
        found = self._masks.get(key)
        if found is None:
            found = make()
            found.flags.writeable = False
            if len(self._masks) >= _MASKS_KEPT:
                self._masks.clear()
            self._masks[key] = found
        return found

    def _articles_about(self, year: int) -> np.ndarray:
        if year not in self._about_year:
            self._about_year[year] = np.array([year in ys for ys in self.years], dtype=bool)
        return self._about_year[year]

    def unknown_places(self, named: set[str]) -> set[str]:
        """The provinces a question names when none of them is known to the index."""
        return set() if named & self.places else named
