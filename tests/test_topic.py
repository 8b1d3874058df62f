"""The off-topic test: whether the bulletins use a question's words at all."""

from __future__ import annotations

import pytest

from rag.index.lexical import LexicalIndex
from rag.verdict.answerable import judge
from rag.verdict.topic import chinese_words, english_words, words_not_found
from tests.conftest import shared_glossary

BULLETIN_WORDS = {
    "北京",
    "重庆",
    "商业",
    "航天",
    "光伏",
    "产业",
    "火箭",
    "工业",
    "目标",
    "卫星",
    "发展",
}


def known(word: str) -> bool:
    return word in BULLETIN_WORDS


def test_content_words_leave_out_question_words():
    words = chinese_words("重庆卫星网络的目标是什么？")
    assert [word for word, _ in words] == ["重庆", "卫星网络", "目标"]
    # A compound is looked up by the words jieba finds inside it too.
    assert {"卫星", "网络", "卫星网络"} <= set(words[1][1])
    assert english_words("What is the goal of Beijing's plan? The GOAL!") == [
        "goal",
        "Beijing",
        "plan",
    ]


@pytest.mark.parametrize(
    ("question", "not_found"),
    [
        ("红烧肉怎么做才好吃？", ["红烧肉", "好吃"]),
        ("北京商业航天2028年的目标是什么？", []),
        # One word the bulletins use is enough for a Chinese question: paraphrases share few.
        ("山城今年想让工业涨多少？", []),
        ("卫星网络会用在哪里？", []),
        ("How do I bake sourdough bread?", ["bake", "sourdough", "bread"]),
        ("What are Beijing's goals for rockets and satellites?", []),
        # One word the bulletins use is enough in English too.
        ("What is the weather in Beijing today?", []),
        ("Tell me about commercial aerospace in Beijing", []),
        ("How do I reset my router password?", ["reset", "router", "password"]),
        # Under three English content words: too little to judge by (the floor still may).
        ("Solar panels?", []),
        ("What is the capital of France?", []),
        ("2028?", []),
        ("what is it", []),
        # Full-width letters are read as ASCII.
        ("Ｈｏｗ ｄｏ Ｉ ｂａｋｅ ｓｏｕｒｄｏｕｇｈ ｂｒｅａｄ?", ["bake", "sourdough", "bread"]),
    ],
)
def test_words_not_found(question, not_found):
    assert words_not_found(question, known, shared_glossary()) == not_found


def test_the_glossary_reads_english_into_chinese():
    glossary = shared_glossary()
    assert "光伏" in set(glossary.renderings("photovoltaic"))
    assert "火箭" in set(glossary.renderings("rockets"))  # plain form looked up
    assert all(len(w) >= 2 for w in glossary.renderings("bread"))


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


def test_the_glossary_is_saved_once_and_read_back_the_same(tmp_path) -> None:
    from rag.verdict.topic import Glossary, _cache_file

    built = shared_glossary()
    first = Glossary.cached(tmp_path)  # made from CC-CEDICT and saved
    path = _cache_file(tmp_path)
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == [path.name]
    again = Glossary.cached(tmp_path)  # read from the file
    for glossary in (first, again):
        assert glossary._english == built._english and glossary._senses == built._senses
    assert set(again.renderings("satellite")) == set(built.renderings("satellite")) != set()


@pytest.mark.parametrize("damage", [b"", b"{not json", b'["only one table"]', b"\xff\xfe"])
def test_a_damaged_saved_glossary_is_made_again(tmp_path, damage: bytes) -> None:
    from rag.verdict.topic import Glossary, _cache_file

    path = _cache_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(damage)
    glossary = Glossary.cached(tmp_path)
    assert glossary._english == shared_glossary()._english
    assert Glossary.cached(tmp_path)._senses == shared_glossary()._senses  # the file is mended
    assert path.read_bytes() != damage


def test_a_cache_folder_it_cannot_write_still_gives_the_glossary(tmp_path) -> None:
    from rag.verdict.topic import Glossary

    blocked = tmp_path / "cache"
    blocked.write_text("a file where the folder would be")  # mkdir fails, as on a read-only disk
    assert Glossary.cached(blocked)._english == shared_glossary()._english
