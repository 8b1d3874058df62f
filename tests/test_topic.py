"""The off-topic test: whether the bulletins use a question's words at all."""

from __future__ import annotations

import pytest

from rag.answerable import judge
from rag.lexical import LexicalIndex
from rag.topic import chinese_words, english_to_chinese, english_words, words_not_found

BULLETIN_WORDS = {"北京", "商业航天", "光伏", "产业", "火箭", "工业", "目标", "卫星", "发展"}


def known(word: str) -> bool:
    return word in BULLETIN_WORDS


def test_question_words_are_not_content_words():
    assert chinese_words("北京商业航天2028年的目标是什么？") == ["北京", "商业", "航天", "目标"]
    assert english_words("What is the goal of Beijing's plan?") == ["goal", "beijing", "plan"]


@pytest.mark.parametrize(
    ("question", "not_found"),
    [
        ("红烧肉怎么做才好吃？", ["红烧肉", "好吃"]),
        ("北京商业航天2028年的目标是什么？", []),
        # One word the bulletins use is enough for a Chinese question: paraphrases share few.
        ("山城今年想让工业涨多少？", []),
        ("How do I bake sourdough bread?", ["bake", "sourdough", "bread"]),
        ("What are Beijing's goals for rockets?", []),
        # Plural forms are looked up plain: rockets -> rocket -> 火箭, satellites -> 卫星.
        ("Rockets and satellites?", []),
        # English needs two: a common word has many renderings, one may match by chance.
        ("What is the weather in Beijing today?", ["weather", "today"]),
        # Nothing to judge by: no content words at all.
        ("2028?", []),
        ("what is it", []),
    ],
)
def test_words_not_found(question, not_found):
    assert words_not_found(question, known) == not_found


def test_the_dictionary_reads_english_into_chinese():
    table = english_to_chinese()
    assert "光伏" in table["photovoltaic"]
    assert "火箭" in table["rocket"]
    # Single characters are left out: too ambiguous to stand for a topic.
    assert all(len(w) >= 2 for w in table["bread"])


def test_a_lexical_index_knows_the_words_its_texts_use():
    index = LexicalIndex(["北京商业航天创新能力显著增强", "四川光伏产业"], "bigram")
    assert index.knows("商业航天") and index.knows("光伏")
    assert not index.knows("红烧肉") and not index.knows("")
    assert not index.knows("北川")  # both characters occur, never together


def test_the_verdict_names_the_words_not_found():
    floors = {"floor_zh": 0.0, "floor_en": 0.0}
    chinese = judge("红烧肉怎么做", 0.9, unknown_places=set(), words_not_found=["红烧肉"], **floors)
    assert not chinese.answerable and chinese.reason == "off_topic"
    assert chinese.message == "公报里没有出现这个问题的词语（红烧肉）。"
    english = judge(
        "How to bake bread?", 0.9, unknown_places=set(), words_not_found=["bake", "bread"], **floors
    )
    assert english.message == "The bulletins do not use this question's words (bake, bread)."
    # A province the bulletins know nothing of is the more precise reason, and goes first.
    both = judge("上海红烧肉", 0.9, unknown_places={"上海"}, words_not_found=["红烧肉"], **floors)
    assert both.reason == "unknown_place"
