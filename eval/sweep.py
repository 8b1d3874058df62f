"""Sweep ranking and verdict knobs on one index, in one process, over a question set.

    RAG_INDEX_DIR=index-archive .venv/bin/python eval/sweep.py eval/archive_questions.jsonl \\
        --dense-weight 0.4 0.5 0.6 --preference 0 0.1 0.2 --support-depth 0 3

Prints one line per combination: the figures `rag eval` gives, and the answerable flag's counts.
Tune on a tuning set; report the chosen setting on the held-out set with `rag eval`.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from rag.evaluate import load_questions, local_search, run_eval
from rag.pipeline import open_retriever
from rag.search.retriever import Retriever
from rag.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("questions", type=Path)
    parser.add_argument("--dense-weight", type=float, nargs="+", default=[0.5])
    parser.add_argument("--preference", type=float, nargs="+", default=[0.2])
    parser.add_argument("--support-depth", type=int, nargs="+", default=[3])
    parser.add_argument("--candidates", type=int, nargs="+", default=[200])
    args = parser.parse_args()
    settings = Settings()
    base = open_retriever(settings, build_if_missing=False)
    questions = load_questions(args.questions)
    print("weight pref ydepth cands   hit@1   R@5  MRR@10  en-hit@1  unans-flagged ans-flagged")
    for weight, pref, depth, sents in itertools.product(
        args.dense_weight, args.preference, args.support_depth, args.candidates
    ):
        retriever = Retriever(
            base.embedder,
            base.index,
            dense_weight=weight,
            preference=pref,
            answer_floors=(base.floor_zh, base.floor_en),
            candidates=sents,
            support_depth=depth,
            glossary=base.glossary,
        )
        report = run_eval(questions, local_search(retriever), retriever.passage_texts)
        o, a = report.overall, report.answerability
        print(
            f"{weight:6.2f} {pref:4.2f} {depth:6d} {sents:5d} {o['hit@1']:7.3f} "
            f"{o['recall@5']:5.3f} {o['mrr@10']:7.3f} {report.by_category['english']['hit@1']:9.3f}"
            f" {a['unanswerable_flagged']:>8d}/{a['unanswerable']:<5d}"
            f"{a['answerable_flagged']:>6d}/{report.answerable}",
            flush=True,
        )


if __name__ == "__main__":
    main()
