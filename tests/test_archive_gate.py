"""The archive's eval gate: the whole archive and the page, indexed with the real model, must
hold eval/archive_baseline.json on the archive's questions and on the page's.

The index is built into the user's cache (an unchanged passage is never embedded twice, so a
second run takes a minute); on a fresh machine the build takes about twenty minutes.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from rag.evaluate import load_questions, local_search, run_eval
from rag.index.build import build_index
from rag.index.store import load_index
from rag.ingest.load import load_bulletins
from rag.search.retriever import Retriever
from rag.settings import Settings
from tests.conftest import REPO, shared_glossary
from tests.gate import regressions

pytestmark = [pytest.mark.model, pytest.mark.archive]

SETS = {
    "archive": "archive_questions.jsonl",
    "archive_heldout": "archive_heldout.jsonl",
    "page": "questions.jsonl",
    "page_heldout": "heldout.jsonl",
}


@pytest.fixture(scope="module")
def archive_retriever(real_embedder, tmp_path_factory) -> Retriever:
    spec = importlib.util.spec_from_file_location("convert", REPO / "eval/archive/convert.py")
    assert spec and spec.loader
    convert = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(convert)
    pages = tmp_path_factory.mktemp("archive")
    convert.convert(convert.archive_path(), pages)
    defaults = Settings()
    settings = Settings(root=REPO, index_dir=defaults.cache_dir / "archive-gate-index")
    report = build_index(
        load_bulletins([settings.corpus_path, pages], REPO), real_embedder, settings
    )
    assert report.unaccounted == {}
    assert report.passages > 10_000
    index = load_index(settings, model_id=real_embedder.model_id, dim=real_embedder.dim)
    return Retriever.from_settings(real_embedder, index, settings, shared_glossary())


@pytest.mark.parametrize("block", list(SETS))
def test_the_archive_holds_its_baseline(archive_retriever, block):
    recorded = json.loads((REPO / "eval" / "archive_baseline.json").read_text(encoding="utf-8"))
    questions = load_questions(REPO / "eval" / SETS[block])
    retriever = archive_retriever
    report = run_eval(questions, local_search(retriever), retriever.passage_texts)
    fallen = regressions(report, recorded[block], recorded["tolerance"])
    assert not fallen, f"{block} regressed:\n" + "\n".join(fallen)
