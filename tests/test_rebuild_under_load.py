"""20 clients search for 30 s while the index is rebuilt and reloaded twice: no error, and every
answer wholly from the old index or the new one (bench/reliability.py's probe, with the fake
embedder; the bench runs it heavier, with the model)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from bench.reliability import builds_holding, passage_signatures, probe, serving, shift_down
from tests.conftest import BULLETIN, REPO

SECOND = (
    "江苏推进智能制造\n本报记者 张三\n"
    "江苏省日前出台方案，推动制造业企业开展智能化改造和数字化转型。\n"
    "方案还提出，培育一批智能工厂，建设一批数字化车间。\n"
)


@pytest.mark.server
def test_answers_under_rebuild_and_reload_are_wholly_old_or_new(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(BULLETIN, corpus / BULLETIN.name)
    (corpus / "second.txt").write_text(SECOND, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")} | {
        "PYTHONPATH": str(REPO),
        "RAG_ROOT": str(tmp_path),
        "RAG_INDEX_DIR": str(tmp_path / "index"),
        # The fake embedder's cosines mean nothing: no floor hides an answer.
        "RAG_ANSWER_FLOOR_ZH": "0",
        "RAG_ANSWER_FLOOR_EN": "0",
    }

    def index() -> None:
        subprocess.run(
            [sys.executable, "-m", "tests.fake_rag", "index", str(corpus)],
            env=env,
            cwd=REPO,
            check=True,
            capture_output=True,
            timeout=300,
        )

    def rebuild(k: int) -> None:
        # The page moves a line down: the same words, every citation's offsets changed.
        shift_down(corpus)
        index()

    index()
    queries = [
        json.loads(line)["question"]
        for line in (REPO / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    command = [sys.executable, "-m", "tests.fake_service"]
    with serving(command, env, tmp_path / "server.log") as base:
        report = probe(
            base,
            lambda: (tmp_path / "index" / "current").resolve(),
            rebuild,
            queries,
            clients=20,
            seconds=30,
            rebuilds=2,
        )
    assert report.errors == 0, report.samples
    assert report.reloads == report.reloads_while_searching == 2
    assert report.mixed == 0, report.samples
    assert report.requests > 100
    # The probe could tell the builds apart: answers only the first, the second and the third
    # build could give were all seen.
    assert set(report.by_build) == {0, 1, 2}, report.figures()
    print(json.dumps(report.figures()))


def test_an_answer_citing_two_builds_is_mixed(tmp_path):
    """The check the probe rests on, on two hand-made builds that differ in one passage."""
    rows = [
        {"doc_id": "d", "headline": "h", "section": "", "paragraph": 1, "spans": [], "text": "a"},
        {"doc_id": "d", "headline": "h", "section": "", "paragraph": 2, "spans": [], "text": "b"},
    ]
    builds = []
    for k, shift in enumerate((0, 1)):
        folder = tmp_path / f"b{k}"
        folder.mkdir()
        with (folder / "passages.jsonl").open("w", encoding="utf-8") as out:
            for row in rows:
                spans = [{"start": row["paragraph"] * 10 + shift, "end": row["paragraph"] * 10 + 5}]
                out.write(json.dumps(row | {"spans": spans}) + "\n")
        builds.append(passage_signatures(folder))

    def cite(paragraph: int, shift: int, text: str) -> tuple:
        return ("d", "h", "", paragraph, ((paragraph * 10 + shift, paragraph * 10 + 5),), text)

    answers = [
        [cite(1, 0, "a"), cite(2, 0, "b")],  # wholly the first
        [cite(2, 1, "b")],  # wholly the second
        [cite(1, 0, "a"), cite(2, 1, "b")],  # one of each: mixed
        [cite(1, 0, "changed")],  # the first's offsets, another text: in neither
    ]
    assert builds_holding(answers, builds) == [[0], [1], [], []]
