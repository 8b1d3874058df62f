"""The answerable verdict and near-duplicate collapsing."""

from __future__ import annotations

import shutil

import pytest

from rag.index.build import build_index
from rag.index.store import load_index
from rag.ingest.load import load_bulletins
from rag.response import result_of
from rag.search.duplicates import fold
from rag.search.retriever import Retriever
from rag.settings import Settings
from rag.verdict.answerable import has_terms, is_chinese, judge, nothing_admitted, nothing_to_search
from tests.conftest import BULLETIN, FakeEmbedder, shared_glossary

FLOORS = {"floor_zh": 0.875, "floor_en": 0.77}


@pytest.mark.parametrize(
    ("question", "searchable"),
    [
        ("？？？", False),
        ("😀", False),
        ("的", False),
        ("a", False),
        ("What is it?", False),
        ("<>!@#$%^&*()", False),
        ("北京", True),
        ("2028", True),
        ("Beijing", True),
        ("What is the plan?", True),
        ("SELECT * FROM passages;--", True),
        ("钱?", False),
        ("How many 独角兽?", True),
        # Question words and particles alone name nothing; full-width letters are letters.
        ("怎么样？", False),
        ("多少？", False),
        ("的的的", False),
        ("渝西？", True),
        ("光伏是什么", True),
        ("5G", True),
        ("ＧＤＰ", True),
        # Particles are whole words: 目的 and 吗啡 are not 的 and 吗.
        ("目的是什么", True),
        ("吗啡", True),
        ("①②③", False),
        # Other scripts' words are words.
        ("충칭의 산업 투자 성장 목표는?", True),
        ("Чунцин", True),
    ],
)
def test_a_question_must_name_something_to_search_for(question, searchable):
    assert has_terms(question) is searchable


def test_nothing_to_search_is_said_in_the_questions_script():
    assert nothing_to_search("的").message == "问题里没有可以检索的词语，请换一种问法。"
    assert nothing_to_search("what?").message == (
        "The question has no words to search for; please rephrase it."
    )
    both = nothing_to_search("？？？").message
    assert both and "问题里没有" in both and "no words to search" in both
    assert nothing_to_search("的").reason == "no_terms"


def test_a_province_nothing_is_about_makes_it_unanswerable():
    verdict = judge("上海集成电路目标", 0.99, unknown_places={"上海"}, **FLOORS)
    assert not verdict.answerable and verdict.reason == "unknown_place"
    assert verdict.message == "公报中没有关于上海的内容。"


def test_the_floor_depends_on_the_script():
    # 0.80 is close for an English question on this model's scale, far for a Chinese one.
    english = judge("What is the plan?", 0.80, unknown_places=set(), **FLOORS)
    chinese = judge("规划是什么", 0.80, unknown_places=set(), **FLOORS)
    assert english.answerable and english.message is None
    assert not chinese.answerable and chinese.reason == "too_far"
    assert chinese.message and chinese.message.startswith("公报中没有与这个问题足够接近的内容")


def test_exactly_at_the_floor_is_answerable():
    assert judge("规划是什么", 0.875, unknown_places=set(), **FLOORS).answerable
    assert not judge("规划是什么", 0.8749, unknown_places=set(), **FLOORS).answerable
    assert judge("What is it?", 0.77, unknown_places=set(), **FLOORS).answerable
    assert not judge("What is it?", 0.7699, unknown_places=set(), **FLOORS).answerable


@pytest.mark.parametrize(
    ("question", "chinese"),
    [
        ("北京商业航天2028目标是什么", True),
        ("北京商业航天的GDP目标是什么", True),
        ("What is 北京's 2028 goal for commercial space?", False),
        ("How many 独角兽 companies will Beijing have?", False),
        ("What does the 南箭北星 layout mean?", False),
    ],
)
def test_the_script_is_the_questions_main_language(question, chinese):
    assert is_chinese(question) is chinese
    # An English question quoting Chinese names is judged on the English scale, in English.
    verdict = judge(question, 0.80, unknown_places=set(), **FLOORS)
    assert verdict.answerable is not chinese
    if chinese:
        assert verdict.message and verdict.message.startswith("公报")


def test_nothing_admitted_speaks_the_questions_language():
    assert nothing_admitted("北京的目标").message == "没有符合筛选条件的段落。"
    assert nothing_admitted("Beijing's goal").message == "No passage matches the filters."
    assert nothing_admitted("Beijing's goal").reason == "filtered_out"


def test_fold_keeps_k_distinct_and_folds_copies_below_the_kth():
    texts = [
        "北京商业航天创新能力显著增强",
        "重庆工业投资增长百分之十四",
        "北京商业航天创新能力显著增强。",
    ]
    # The copy is ranked after the k-th distinct result and is still folded in.
    assert fold([0, 1, 2], texts, k=1) == [(0, [2])]
    assert fold([0, 1, 2], texts, k=2) == [(0, [2]), (1, [])]
    assert fold([], texts, k=3) == []


@pytest.fixture(scope="module")
def reprinted(tmp_path_factory) -> Retriever:
    """The bulletin, plus a second one that reprints one of its paragraphs (as a wire story is
    reprinted by several papers) and adds one of its own."""
    root = tmp_path_factory.mktemp("dup")
    corpus = root / "corpus"
    corpus.mkdir()
    shutil.copy(BULLETIN, corpus / BULLETIN.name)
    reprint = next(
        line for line in BULLETIN.read_text(encoding="utf-8").splitlines() if "到2028年" in line
    )
    (corpus / "reprint.txt").write_text(
        f"商业航天要闻\n本报讯 {reprint.strip()}\n另据报道，上海也在研究商业航天发展规划。\n",
        encoding="utf-8",
    )
    settings = Settings(root=root, corpus_dir=corpus, index_dir=root / "index")
    embedder = FakeEmbedder()
    build_index(load_bulletins([corpus], root), embedder, settings)
    index = load_index(settings, model_id=embedder.model_id, dim=embedder.dim)
    return Retriever(embedder, index, glossary=shared_glossary())


def test_a_reprinted_paragraph_is_one_result_citing_both(reprinted):
    hits = reprinted.search("到2028年，北京商业航天创新能力显著增强", k=5)
    texts = [h.passage.text for h in hits]
    with_2028 = [h for h in hits if "北京商业航天创新能力显著增强" in h.passage.text]
    assert len(with_2028) == 1, texts
    (hit,) = with_2028
    sources = {hit.passage.source, *(d.source for d in hit.duplicates)}
    assert sources == {"corpus/000_a1e9ce7368794dc6.txt", "corpus/reprint.txt"}
    body = result_of(hit).model_dump()
    assert [d["source"] for d in body["duplicates"]] == [d.source for d in hit.duplicates]
    # Collapsing does not cost the user a result: k distinct passages still come back.
    assert len(hits) == 5 and len(set(texts)) == 5
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]


def test_distinct_paragraphs_are_not_collapsed(reprinted):
    hits = reprinted.search("北京商业航天", k=50)
    # Only the reprint's passages fold into the original's; no two passages of one bulletin do.
    folded = [(h.passage.source, d.source) for h in hits for d in h.duplicates]
    assert folded and all(a != b for a, b in folded), folded
    original = [p for p in reprinted.backend.passages if p.source != "corpus/reprint.txt"]
    # Each of the original's passages comes back once: as a result, or folded into the
    # reprint's copy of it when that copy (led by its own headline) ranks first.
    shown = [h.passage for h in hits if h.passage.source != "corpus/reprint.txt"]
    shown += [d for h in hits for d in h.duplicates if d.source != "corpus/reprint.txt"]
    assert sorted(p.passage_id for p in shown) == sorted(p.passage_id for p in original)


def test_a_known_province_named_beside_an_unknown_one_is_answered(reprinted):
    answer = reprinted.answer("北京和江苏的商业航天目标有何不同")
    assert answer.reason != "unknown_place"
    assert reprinted.answer("江苏的商业航天目标").reason == "unknown_place"


def test_a_place_one_passage_mentions_is_not_unknown(reprinted):
    # The reprint mentions 上海 in passing: the question is not flagged for the place.
    answer = reprinted.answer("上海商业航天规划")
    assert answer.reason != "unknown_place"
