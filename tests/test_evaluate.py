"""Metric functions against values computed by hand."""

from __future__ import annotations

import math

import pytest

from rag.evaluate import (
    Question,
    highlight_holds_answer,
    hit_at,
    is_relevant,
    mrr_at,
    ndcg_at,
    recall_at,
    run_eval,
)


def test_hit_and_mrr():
    ranks = [False, False, True, False]
    assert hit_at(ranks, 1) == 0.0 and hit_at(ranks, 3) == 1.0
    assert mrr_at(ranks, 10) == pytest.approx(1 / 3)
    assert mrr_at(ranks, 2) == 0.0


def test_recall_uses_all_relevant_passages():
    assert recall_at([True, False, True], 5, total_relevant=4) == 0.5
    assert recall_at([False], 5, total_relevant=0) == 0.0


def test_ndcg_by_hand():
    # relevant at ranks 2 and 3, three relevant in all
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at([False, True, True], 10, 3) == pytest.approx(dcg / ideal)
    assert ndcg_at([True], 10, 1) == 1.0


def test_relevance_ignores_whitespace():
    assert is_relevant("到2028年，北京 商业航天\n创新能力", ["北京商业航天创新能力"])
    assert not is_relevant("北京商业", ["北京商业航天"])


def test_run_eval_counts_and_misses():
    questions = [
        Question("a", "q1", "exact", ("甲乙",)),
        Question("b", "q2", "english", ("丙丁",)),
        Question("c", "q3", "exact", ()),  # unanswerable: not scored for retrieval
    ]
    results = {"q1": [{"text": "甲乙"}], "q2": [{"text": "无关"}, {"text": "丙丁"}], "q3": []}
    report = run_eval(questions, lambda q, k: {"results": results[q]}, ["甲乙", "无关", "丙丁"])
    assert report.questions == 3 and report.answerable == 2
    assert report.overall["hit@1"] == 0.5
    assert report.overall["mrr@10"] == pytest.approx(0.75)
    assert report.by_category["english"]["hit@1"] == 0.0
    assert [m["id"] for m in report.misses] == ["b"]
    assert report.misses[0]["first_relevant_rank"] == 2


def test_answerability_counts_and_curve():
    questions = [
        Question("a", "甲乙是什么", "exact", ("甲乙",)),
        Question("b", "What is it", "english", ("丙丁",)),
        Question("c", "上海怎么样", "unanswerable", ()),
        Question("d", "天气怎么样", "unanswerable", ()),
    ]
    bodies = {
        "甲乙是什么": {"answerable": True, "best_similarity": 0.95, "reason": None},
        "What is it": {"answerable": False, "best_similarity": 0.70, "reason": "too_far"},
        "上海怎么样": {"answerable": False, "best_similarity": 0.93, "reason": "unknown_place"},
        "天气怎么样": {"answerable": True, "best_similarity": 0.88, "reason": None},
    }
    report = run_eval(
        questions, lambda q, k: {"results": [{"text": "甲乙"}], **bodies[q]}, ["甲乙", "丙丁"]
    )
    assert report.answerability == {
        "unanswerable": 2,
        "unanswerable_flagged": 1,
        "answerable_flagged": 1,
    }
    zh = {row["floor"]: row for row in report.curve if row["script"] == "zh"}
    # A floor flags what lies strictly below it; the unknown place is flagged at every floor.
    assert zh[0.88]["unanswerable_flagged"] == 1 and zh[0.88]["answerable_flagged"] == 0
    assert zh[0.93]["unanswerable_flagged"] == 2 and zh[0.93]["answerable_flagged"] == 0
    assert zh[0.95]["answerable_flagged"] == 0
    en = [row for row in report.curve if row["script"] == "en"]
    assert en == [
        {"script": "en", "floor": 0.7, "unanswerable_flagged": 0, "answerable_flagged": 0}
    ]


def test_a_body_without_the_flag_counts_as_answerable():
    questions = [Question("c", "q", "unanswerable", ())]
    report = run_eval(questions, lambda q, k: {"results": []}, [])
    assert report.answerability["unanswerable_flagged"] == 0
    assert report.curve == []


def test_highlight_holds_answer():
    result = {
        "text": "第一句。到2028年，产业能级明显提升。第三句。",
        "highlights": [{"start": 4, "end": 20}],
    }
    assert result["text"][4:20] == "到2028年，产业能级明显提升。"
    assert highlight_holds_answer(result, ["产业能级 明显提升"])
    # The marked sentence lies inside a longer answer phrase that runs across sentences.
    assert highlight_holds_answer(result, ["第一句。到2028年，产业能级明显提升。第三句"])
    assert not highlight_holds_answer(result, ["第三句"])
    assert not highlight_holds_answer({"text": "甲乙", "highlights": []}, ["甲乙"])


def test_run_eval_judges_the_highlight_of_the_first_relevant_result():
    questions = [Question("a", "q1", "exact", ("答案",)), Question("b", "q2", "exact", ("无处",))]
    marked = {"text": "别的。答案在此。", "highlights": [{"start": 3, "end": 8}]}
    unmarked = {"text": "答案在此。别的。", "highlights": [{"start": 5, "end": 8}]}
    bodies = {"q1": [{"text": "无关", "highlights": []}, marked, unmarked], "q2": [marked]}
    report = run_eval(questions, lambda q, k: {"results": bodies[q]}, None)
    # q1's first relevant result is `marked`; q2 has no relevant result and is not judged.
    assert report.highlight == {"judged": 1, "holding_answer": 1, "rate": 1.0}


def test_boundary_scores_pool_the_pages():
    from rag.evaluate import boundary_scores

    # Page 1: 2 of 3 found starts are right, of 2 labelled; page 2: 1 of 1, of 3 labelled.
    precision, recall = boundary_scores([{0, 10, 20}, {5}], [{0, 20}, {5, 50, 60}])
    assert precision == pytest.approx(3 / 4) and recall == pytest.approx(3 / 5)
    assert boundary_scores([set()], [set()]) == (0.0, 0.0)
