"""The support tests of the verdict: does any of the closest passages speak of the question's
year, its province, its words together?"""

from __future__ import annotations

import numpy as np

from rag.documents import Passage, Span
from rag.index.lexical import LexicalIndex
from rag.places import years_stated
from rag.verdict.support import places_not_named, words_apart, years_not_stated
from tests.conftest import shared_glossary


def _passage(text: str, date: str = "1998-01-05", headline: str = "", region: str = "unknown"):
    return Passage("d:1:1:0", "d", "d.txt", 1, headline, "", 1, region, date, (Span(0, 1),), text)


def test_a_year_named_only_to_compare_with_is_not_stated():
    # The bank's report of 1997 compares with 1996: it gives no figure of 1996.
    text = "１９９７年各项存款余额２７００亿元，比１９９６年增长２０％，比上年增长１８％。"
    assert years_stated(text, "1998-01") == {1997}
    assert years_stated("同1996年相比，产量翻了一番；较去年同期增长5%", "1998-01") == set()
    # Stated outright, the same year counts.
    assert years_stated("１９９６年全行实现利润４０亿元，比上年增长", "1998-01") == {1996}


def test_years_stated_in_any_width_numerals_or_relative_words():
    assert years_stated("１９９７年全年共生产原油", "1998-01") == {1997}
    assert years_stated("一九九七年十二月三十一日", "1998-01") == {1997}
    assert years_stated("去年全市工业增长１２％，今年力争再增", "1998-01-05") == {1997, 1998}
    assert years_stated("全市工业增长较快", "1998-01") == set()


def test_a_question_about_another_year_is_a_near_miss():
    report = _passage("１９９７年胜利海上油田全年共生产原油一百五十万吨。", date="1997-12-31")
    assert years_not_stated("胜利海上油田1998年计划生产多少原油？", [report], [report]) == [1998]
    assert years_not_stated("胜利海上油田1997年生产多少原油？", [report], [report]) == []
    assert years_not_stated("胜利海上油田生产多少原油？", [report], [report]) == []


def test_a_passage_without_a_year_speaks_of_its_leads_or_its_date():
    lead = _passage("去年，北大荒粮食总产量再创新高。")  # 去年 in a 1998 report: 1997
    body = _passage("粮食总产量达到一百亿斤。")
    assert years_not_stated("北大荒1998年的粮食总产量目标？", [body], [lead]) == [1998]
    assert years_not_stated("北大荒1997年的粮食总产量？", [body], [lead]) == []
    storm = _passage("停电使蒙特利尔三百多万人无电可用。")
    assert years_not_stated("Who lost power in the 1998 ice storm?", [storm], [storm]) == []
    # A question that names a day asks about the report's own date.
    dated = _passage("１月５日，中国登山队登上乞力马扎罗山。", date="1998-01-05")
    assert (
        years_not_stated("1998年1月5日登山队登上了哪座山？", [dated], [_passage("１９９７年")])
        == []
    )


def test_a_province_no_close_passage_names():
    beijing = _passage("《甲方乙方》在京的票房收入达两千万元。", region="北京")
    assert places_not_named({"上海"}, [beijing]) == ["上海"]
    assert places_not_named({"北京"}, [beijing]) == []
    assert places_not_named(set(), [beijing]) == []
    # A passage of an article about no province may be about one of its cities (茂名).
    maoming = _passage("茂名石化公司年产３０万吨乙烯工程投产。")
    assert places_not_named({"广东"}, [maoming]) == []


def test_words_no_passage_uses_together():
    texts = ["红烧牛肉面很受欢迎", "排骨价格上涨", "这家饭店的菜好吃", "工业增加值增长，山城重庆"]
    index = LexicalIndex(texts, "bigram")

    def containing(form: str) -> np.ndarray:
        return index.containing(form)

    assert list(index.containing("排骨")) == [1] and list(index.containing("重庆")) == [3]
    for large in (True, False):
        # Each used, never together; two of them together; two words, both used.
        assert words_apart([["红烧"], ["排骨"], ["好吃"]], containing, large=large)
        assert not words_apart([["工业"], ["山城"], ["排骨"]], containing, large=large)
        assert not words_apart([["红烧"], ["排骨"]], containing, large=large)
    # A word used nowhere counts only in an archive.
    assert words_apart([["比特币"], ["价格"]], containing, large=True)
    assert not words_apart([["比特币"], ["价格"]], containing, large=False)


def test_english_phrases_are_rendered_by_the_senses_the_bulletins_use():
    used = {"公共交通", "山东", "徒弟", "几个", "交通"}
    rendered = shared_glossary().translate(
        "How many apprentices in public transport in Shandong?", used.__contains__
    )
    # The phrase before its words (公共交通, not 交通); "how many" names nothing (几个).
    assert set(rendered) == {"公共交通", "山东", "徒弟"}


def test_words_apart_counts_each_word_once_whatever_its_forms() -> None:
    """Against the definition: some passage holds two different words (any of a word's forms
    counting for it, a passage holding two forms of one word counting once)."""
    rng = np.random.default_rng(5)
    for _ in range(300):
        size = int(rng.integers(1, 60))
        words = [
            [f"w{w}f{f}" for f in range(int(rng.integers(1, 4)))]
            for w in range(int(rng.integers(2, 5)))
        ]
        held = {
            form: np.sort(rng.choice(size, size=min(size, int(rng.integers(0, 4))), replace=False))
            for forms in words
            for form in forms
        }
        holders = [set().union(*(held[f].tolist() for f in forms)) for forms in words]
        together = any(holders[a] & holders[b] for a in range(len(words)) for b in range(a))
        used = all(holders)
        for large in (False, True):
            expected = not together
            if not used and not large:
                expected = False
            if len(words) == 2 and used:
                expected = False
            assert words_apart(words, held.__getitem__, large=large) == expected, (words, held)


def test_a_text_holding_two_words_settles_words_apart_as_the_postings_would() -> None:
    """held_together over texts cut into terms agrees with the index's own `containing`: when it
    says two words are held by one of the texts, words_apart over the postings says they are not
    apart; when it says no text holds two, none of those texts holds two by the postings. Words
    of one, two and three characters, a stop character (是, no terms) and a form the texts never
    use."""
    from rag.index.lexical import tokenize, word_terms
    from rag.verdict.support import held_together

    texts = ["红烧牛肉面很受欢迎", "排骨价格上涨", "这家饭店的菜好吃", "工业增加值增长，山城重庆"]
    texts += ["牛肉价格上涨", "重庆的工业", "是", "红烧排骨好吃"]
    index = LexicalIndex(texts, "bigram")
    vocabulary = ["红烧", "牛肉面", "排骨", "价格", "好吃", "工业", "重庆", "山城", "是", "比特币"]
    terms = [set(tokenize(t, "bigram")) for t in texts]
    rng = np.random.default_rng(9)
    outcomes = set()
    for _ in range(200):
        chosen = rng.choice(vocabulary, size=int(rng.integers(2, 5)), replace=False)
        words = [[str(w)] for w in chosen]
        wanted = [[word_terms(f, "bigram") for f in forms] for forms in words]
        rows = rng.choice(len(texts), size=int(rng.integers(1, 4)), replace=False)
        together = held_together(wanted, (terms[r] for r in rows))
        holders = [set(index.containing(forms[0]).tolist()) for forms in words]
        by_postings = any(sum(r in h for h in holders) >= 2 for r in rows)
        assert together == by_postings, (words, rows)
        if together:
            assert not words_apart(words, index.containing, large=True)
        outcomes.add(together)
    assert outcomes == {True, False}
