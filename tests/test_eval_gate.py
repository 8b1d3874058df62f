"""The eval gate: the default configuration must not fall below eval/baseline.json."""

from __future__ import annotations

import json

import pytest

from rag.evaluate import METRICS, load_questions, local_search, run_eval
from rag.index.build import build_index
from rag.index.store import load_index
from rag.ingest.load import load_bulletins
from rag.search.retriever import Retriever
from rag.settings import Settings
from tests.backends import KINDS, built, settings_for
from tests.conftest import REPO, shared_glossary
from tests.gate import regressions

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def gate_folder(tmp_path_factory):
    # One folder for every backend: its embedding cache embeds the page once for all three.
    return tmp_path_factory.mktemp("gate")


@pytest.fixture(scope="module", params=KINDS)
def retriever(real_embedder, gate_folder, request) -> Retriever:
    """The default configuration over the bundled corpus, with the real model, on each backend
    (the local files, Milvus Lite embedded, a Milvus Lite server: tests.backends)."""
    settings = settings_for(request.param, gate_folder, request)
    return built(settings, real_embedder, load_bulletins([settings.corpus_path], REPO))


@pytest.fixture(scope="module")
def local_report(real_embedder, tmp_path_factory):
    """The eval of the local backend, what every other backend must come within 0.02 of."""
    settings = Settings(root=REPO, index_dir=tmp_path_factory.mktemp("gate-local") / "index")
    build_index(load_bulletins([settings.corpus_path], REPO), real_embedder, settings)
    index = load_index(settings, model_id=real_embedder.model_id, dim=real_embedder.dim)
    local = Retriever.from_settings(real_embedder, index, settings, shared_glossary())
    return {
        name: run_eval(
            load_questions(REPO / "eval" / name), local_search(local), local.passage_texts
        )
        for name in ("questions.jsonl", "heldout.jsonl")
    }


def test_the_readme_example(retriever):
    answer = retriever.answer("北京商业航天2028目标是什么")
    assert answer.answerable
    assert "到2028年，北京商业航天创新能力显著增强" in answer.hits[0].passage.text
    (start, end), *_ = answer.hits[0].highlights
    assert "到2028年" in answer.hits[0].passage.text[start:end]


@pytest.mark.parametrize(
    "question",
    [
        "北京商業航天2028目標是什麼",  # traditional characters
        "北京商业\u200b航天2028目标是什么",  # a zero-width space inside a word
        "Tell me about commercial aerospace in Beijing",  # the dictionary misses two words
    ],
)
def test_the_readme_example_asked_otherwise(retriever, question):
    answer = retriever.answer(question)
    assert answer.answerable, answer.message
    if "2028" in question:  # the same question, written otherwise: the same first passage
        assert "到2028年，北京商业航天创新能力显著增强" in answer.hits[0].passage.text
    assert any("北京商业航天" in h.passage.text for h in answer.hits[:2])


OFF_TOPIC = [
    "今天天气怎么样？",
    "红烧肉怎么做才好吃？",
    "苹果公司2024年的营收是多少？",
    "What is the capital of France?",
    "How do I bake sourdough bread?",
]


@pytest.mark.parametrize("question", OFF_TOPIC)
def test_an_off_topic_question_is_not_answerable(retriever, question):
    answer = retriever.answer(question)
    assert not answer.answerable and answer.reason in ("off_topic", "too_far")
    assert answer.hits  # the nearest passages still come, for a client to fold away


@pytest.mark.parametrize("question", [q for q in OFF_TOPIC if "France" not in q])
def test_the_bulletins_words_tell_an_off_topic_question_without_the_floors(retriever, question):
    # With no floor on the cosine, the model would call every one of these answerable. (Two
    # English content words are too few to judge by: "capital of France" is left to the floor.)
    floorless = Retriever(
        retriever.embedder, retriever.backend, answer_floors=(0.0, 0.0), glossary=retriever.glossary
    )
    answer = floorless.answer(question)
    assert not answer.answerable and answer.reason == "off_topic"
    assert answer.message is not None
    assert "的词语" in answer.message or "question's words" in answer.message


@pytest.mark.parametrize(
    ("questions_file", "block"), [("questions.jsonl", None), ("heldout.jsonl", "heldout")]
)
def test_default_configuration_holds_the_baseline(retriever, questions_file, block):
    recorded = json.loads((REPO / "eval" / "baseline.json").read_text(encoding="utf-8"))
    baseline = recorded[block] if block else recorded
    questions = load_questions(REPO / "eval" / questions_file)
    report = run_eval(questions, local_search(retriever), retriever.passage_texts)
    fallen = regressions(report, baseline, recorded["tolerance"])
    assert not fallen, "retrieval regressed:\n" + "\n".join(fallen)


def test_fewer_candidates_hold_the_baseline(retriever):
    """Fusion sees only each leg's best passages (settings: candidates); with ten of the
    bundled corpus' 39 per leg it must still rank as the baseline says."""
    limited = Retriever(
        retriever.embedder,
        retriever.backend,
        preference=retriever.preference,
        answer_floors=(retriever.floor_zh, retriever.floor_en),
        candidates=10,
        glossary=retriever.glossary,
    )
    assert len(limited.backend.passages) > 2 * limited.candidates
    recorded = json.loads((REPO / "eval" / "baseline.json").read_text(encoding="utf-8"))
    questions = load_questions(REPO / "eval" / "questions.jsonl")
    report = run_eval(questions, local_search(limited), limited.passage_texts)
    for metric in METRICS:
        assert report.overall[metric] >= recorded["overall"][metric] - recorded["tolerance"]
    assert report.answerability["answerable_flagged"] == 0


# Milvus's lexical leg finds its candidates with our BM25 weights and the same scores are worked
# out for fusion (rag.index.milvus.search): what may differ is which candidates an approximate
# leg finds, so each figure may move by this much from the local backend's.
BACKEND_TOLERANCE = 0.02


@pytest.mark.parametrize("questions_file", ["questions.jsonl", "heldout.jsonl"])
def test_every_backend_is_within_its_tolerance_of_the_local_one(
    retriever, local_report, questions_file
):
    questions = load_questions(REPO / "eval" / questions_file)
    report = run_eval(questions, local_search(retriever), retriever.passage_texts)
    local = local_report[questions_file]
    for metric in METRICS:
        assert abs(report.overall[metric] - local.overall[metric]) <= BACKEND_TOLERANCE, metric
    assert report.answerability == local.answerability
