"""The eval gate: the default configuration must not fall below eval/baseline.json."""

from __future__ import annotations

import json

import pytest

from rag.evaluate import CATEGORIES, METRICS, load_questions, run_eval
from rag.index import build_index, load_index
from rag.load import load_bulletins
from rag.retrieve import Retriever, hit_json
from rag.settings import Settings
from tests.conftest import REPO

pytestmark = pytest.mark.model


def test_default_configuration_holds_the_baseline(real_embedder, tmp_path):
    baseline = json.loads((REPO / "eval" / "baseline.json").read_text(encoding="utf-8"))
    settings = Settings(root=REPO, index_dir=tmp_path / "index")
    build_index(load_bulletins([settings.corpus_path], REPO), real_embedder, settings)
    index = load_index(settings, model_id=real_embedder.model_id, dim=real_embedder.dim)
    retriever = Retriever.from_settings(real_embedder, index, settings)
    questions = load_questions(REPO / "eval" / "questions.jsonl")
    report = run_eval(
        questions,
        lambda q, k: [hit_json(h) for h in retriever.search(q, k)],
        [p.text for p in index.passages],
    )
    assert report.questions == baseline["questions"]
    tolerance = baseline["tolerance"]
    fallen = [
        f"{scope} {metric}: {row[metric]:.4f} < baseline {base[metric]:.4f}"
        for scope, row, base in [
            ("overall", report.overall, baseline["overall"]),
            *((c, report.by_category[c], baseline["by_category"][c]) for c in CATEGORIES),
        ]
        for metric in METRICS
        if row[metric] < base[metric] - tolerance
    ]
    misses = "\n".join(f"  {m['id']} {m['question']} -> {m['got']}" for m in report.misses)
    assert not fallen, "retrieval regressed:\n" + "\n".join(fallen) + "\nmisses:\n" + misses
