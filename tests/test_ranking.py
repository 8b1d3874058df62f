"""What shapes the ranking beyond the two legs: document titles, places and years named."""

from __future__ import annotations

import numpy as np
import pytest

from rag.index.backend import Scope
from rag.index.build import build_index
from rag.index.lexical import LexicalIndex, tokenize
from rag.index.store import load_index
from rag.ingest.load import load_bulletins
from rag.places import provinces_named, years_named
from rag.search.retriever import Retriever
from rag.settings import Settings
from tests.conftest import REPO, FakeEmbedder, shared_glossary


def test_a_document_title_is_one_term():
    text = "印发《北京市加快商业航天创新发展行动方案（2024—2028年）》，绘就蓝图"
    terms = tokenize(text, "bigram")
    # Width folded (NFKC) like every term: the brackets inside are the ASCII ones.
    assert "《北京市加快商业航天创新发展行动方案(2024—2028年)》" in terms
    # The title's own words do not count as the paragraph's words...
    assert "航天" not in terms and "2028" not in terms
    # ...while the words around it do.
    assert {"印发", "绘就", "蓝图"} <= set(terms)


def test_an_announcement_does_not_outrank_the_paragraph_with_the_facts():
    texts = [
        "1月24日，印发《商业航天创新发展行动方案（2024—2028年）》。",
        "《方案》明确，到2028年，商业航天创新能力显著增强，产业能级明显提升，培育上市企业。",
    ]
    scores = LexicalIndex(texts, "bigram").scores("商业航天2028目标")
    assert scores[1] > scores[0]


@pytest.mark.parametrize(
    ("question", "named"),
    [
        ("How does Ningxia want to balance its industries?", {"宁夏"}),
        ("北京和四川的目标有什么不同", {"北京", "四川"}),
        ("What is Shanghai's 2024 target?", {"上海"}),
        ("Compare Hong Kong and Inner Mongolia", {"香港", "内蒙古"}),
        ("What is the Yuxi Leap Plan?", set()),
        ("beijingesque architecture", set()),
        # Whole words only: no 河北 in 黄河北岸, no 海南 in 上海南站, no 山西 in 中山西路.
        ("宁夏黄河北岸的工业园区如何发展", {"宁夏"}),
        ("上海南站到中山西路怎么走", {"上海"}),
        ("北京市人民政府印发《方案》", {"北京"}),
        ("宁夏回族自治区工业和信息化工作会议", {"宁夏"}),
    ],
)
def test_provinces_named(question, named):
    assert provinces_named(question) == named


@pytest.mark.parametrize(
    ("text", "years"),
    [
        ("行动方案（2024—2028年）", {2024, 2025, 2026, 2027, 2028}),
        ("2023年，重庆提出", {2023}),
        ("by 2028, and after 2030", {2028, 2030}),
        ("编号12028号，1月24日", set()),
    ],
)
def test_years_named(text, years):
    assert years_named(text) == years


@pytest.fixture(scope="module")
def retrievers(tmp_path_factory):
    """The real bulletin indexed with the fake embedder, with and without the preference."""
    root = tmp_path_factory.mktemp("ranking")
    settings = Settings(root=REPO, index_dir=root / "index", cache_dir=root / "cache")
    embedder = FakeEmbedder()
    build_index(load_bulletins([REPO / "corpus"], REPO), embedder, settings)
    index = load_index(settings, model_id=embedder.model_id, dim=embedder.dim)
    return (
        Retriever(embedder, index, preference=0.0, glossary=shared_glossary()),
        Retriever(embedder, index, preference=1.0, glossary=shared_glossary()),
    )


def test_a_named_place_favours_the_article_about_it(retrievers):
    plain, preferring = retrievers
    question = "How does Ningxia want to balance its industries?"
    # The fake embedder knows no English; without the preference the top is anywhere.
    assert {h.passage.region for h in plain.search(question, k=5, mode="dense")} != {"宁夏"}
    assert {h.passage.region for h in preferring.search(question, k=5, mode="dense")} == {"宁夏"}


def test_a_named_year_favours_the_article_about_that_period(retrievers):
    plain, preferring = retrievers
    # Only the Beijing article's lead names 2028 (its plan runs 2024—2028).
    assert any("2024—2028" in p.text for p in plain.backend.passages if p.region == "北京")
    question = "what happens in 2028"
    assert {h.passage.region for h in preferring.search(question, k=5, mode="dense")} == {"北京"}
    assert {h.passage.region for h in plain.search(question, k=5, mode="dense")} != {"北京"}


def test_a_place_no_article_is_about_adds_nothing(retrievers):
    plain, preferring = retrievers
    question = "上海集成电路产业目标"
    assert [h.passage for h in plain.search(question, k=10)] == [
        h.passage for h in preferring.search(question, k=10)
    ]


def test_top_is_the_stable_order_of_the_best():
    from rag.index.dense import top as _top

    rng = np.random.default_rng(3)
    scores = rng.integers(0, 5, size=200).astype(np.float32)  # many ties
    scores[::7] = -np.inf
    expected = np.argsort(-scores, kind="stable")
    for m in (1, 5, 50, 199, 200):
        assert _top(scores, m).tolist() == expected[:m].tolist()
    assert _top(scores, 0).tolist() == []


QUESTIONS = [
    "北京商业航天2028目标是什么",
    "重庆2024年工业投资增长目标是多少？",
    "宁夏2023年规上工业增加值增长了多少？",
    "四川光伏产业高质量发展座谈会是哪天召开的？",
    "每年发布多少个通导遥应用场景？",
    "“33618”集群体系要贯通培育哪几类产业？",
]


def test_each_leg_returns_its_best_admitted_passages(retrievers):
    full, _ = retrievers
    n = len(full.backend.passages)
    mask = np.ones(n, dtype=bool)
    mask[::3] = False
    for question in QUESTIONS:
        vector = full.embedder.encode_queries([question])[0]
        exact = full.backend.index.vectors @ vector
        ids, cosines = full.backend.dense_top(vector, 10, Scope(mask))
        admitted = np.flatnonzero(mask)
        expected = admitted[np.argsort(-exact[admitted], kind="stable")[:10]]
        assert ids.tolist() == expected.tolist()
        assert np.allclose(cosines, exact[ids], atol=1e-5)
        bm25 = full.backend.lexical.scores(question)
        ids, scores = full.backend.lexical_top(question, 10, Scope(mask))
        assert mask[ids].all() and (scores > 0).all()
        assert scores.tolist() == sorted(scores.tolist(), reverse=True)
        assert min(scores) >= max(bm25[admitted][~np.isin(admitted, ids)], default=0) - 1e-6


def test_few_candidates_keep_the_answers(retrievers):
    _, full = retrievers
    assert len(full.backend.passages) <= full.candidates  # every passage is a candidate here
    limited = Retriever(
        full.embedder, full.backend, preference=1.0, candidates=10, glossary=full.glossary
    )
    for question in QUESTIONS:
        expected, got = full.answer(question, k=3), limited.answer(question, k=3)
        assert got.best_similarity == pytest.approx(expected.best_similarity, abs=1e-6)
        assert (got.hits[0].passage, got.hits[0].highlights) == (
            expected.hits[0].passage,
            expected.hits[0].highlights,
        )


@pytest.mark.parametrize(
    ("sentence", "lead_in"),
    [
        ("三是落实闭环机制。", True),
        ("首先，助力国家战略腹地建设。", True),
        ("三要讲服务，满怀热忱抓落实。", True),
        # Long enough to make its point itself.
        ("一是加大技术创新和技术改造投资力度，加快推动研发机构本地化。", False),
        ("工业投资增长14%；", False),
        ("最后一公里问题需要解决。", False),
    ],
)
def test_lead_in_sentences(sentence, lead_in):
    from rag.search.highlight import is_lead_in

    assert is_lead_in(sentence) is lead_in


def test_a_highlighted_lead_in_takes_the_sentence_that_makes_its_point(retrievers):
    plain, _ = retrievers
    hit = plain.search("落实闭环机制", k=1)[0]
    (start, end), *_ = hit.highlights
    highlighted = hit.passage.text[start:end]
    assert highlighted.startswith("三是落实闭环机制。细化年度工作目标体系")
    assert highlighted.endswith(("。", "；"))


def test_candidates_must_be_positive(retrievers):
    full, _ = retrievers
    with pytest.raises(ValueError, match="candidates"):
        Retriever(full.embedder, full.backend, candidates=0, glossary=full.glossary)
