"""The archive's eval gate: the whole archive and the page, indexed with the real model, must
hold eval/archive_baseline.json on the archive's questions and on the page's.

The index is built into the user's cache (an unchanged passage is never embedded twice, so a
second run takes a minute); on a fresh machine the build takes about twenty minutes.
"""

from __future__ import annotations

import json

import pytest

from rag.evaluate import METRICS, EvalReport, load_questions, local_search, run_eval
from rag.index.build import build_index
from rag.index.store import load_index
from rag.ingest.load import load_bulletins
from rag.pipeline import build, open_milvus
from rag.search.retriever import Retriever
from rag.settings import Settings
from tests.conftest import REPO, shared_glossary
from tests.gate import regressions
from tests.test_eval_gate import BACKEND_TOLERANCE

pytestmark = [pytest.mark.model, pytest.mark.archive]

SETS = {
    "archive": "archive_questions.jsonl",
    "archive_heldout": "archive_heldout.jsonl",
    "page": "questions.jsonl",
    "page_heldout": "heldout.jsonl",
}


@pytest.fixture(scope="module")
def archive_retriever(real_embedder, archive_dir) -> Retriever:
    pages = archive_dir
    defaults = Settings()
    settings = Settings(root=REPO, index_dir=defaults.cache_dir / "archive-gate-index")
    report = build_index(
        load_bulletins([settings.corpus_path, pages], REPO), real_embedder, settings
    )
    assert report.unaccounted == {}
    assert report.passages > 10_000
    index = load_index(settings, model_id=real_embedder.model_id, dim=real_embedder.dim)
    return Retriever.from_settings(real_embedder, index, settings, shared_glossary())


@pytest.fixture(scope="module")
def milvus_archive_retriever(archive_retriever, real_embedder, archive_dir) -> Retriever:
    """The same bulletins in Milvus Lite (embedded), their vectors from the local build's
    embedding cache; the collection is kept in the user's cache too, so a second run writes only
    what changed."""
    defaults = Settings()
    settings = Settings(
        root=REPO,
        index_dir=defaults.cache_dir / "archive-gate-index",
        backend="milvus",
        milvus_uri=str(defaults.cache_dir / "archive-gate-milvus.db"),
        milvus_switch_grace_seconds=0,
    )
    bulletins = load_bulletins([settings.corpus_path, archive_dir], REPO)
    build(bulletins, real_embedder, settings, show_progress=False)
    backend = open_milvus(settings, real_embedder)
    return Retriever.from_settings(real_embedder, backend, settings, shared_glossary())


_reports: dict[tuple[str, str], EvalReport] = {}


def _report(retriever: Retriever, backend: str, block: str) -> EvalReport:
    if (backend, block) not in _reports:
        questions = load_questions(REPO / "eval" / SETS[block])
        _reports[backend, block] = run_eval(
            questions, local_search(retriever), retriever.passage_texts
        )
    return _reports[backend, block]


@pytest.mark.parametrize("block", list(SETS))
def test_the_archive_holds_its_baseline(archive_retriever, block):
    recorded = json.loads((REPO / "eval" / "archive_baseline.json").read_text(encoding="utf-8"))
    report = _report(archive_retriever, "local", block)
    fallen = regressions(report, recorded[block], recorded["tolerance"])
    assert not fallen, f"{block} regressed:\n" + "\n".join(fallen)


@pytest.mark.parametrize("block", list(SETS))
def test_the_archive_on_milvus_is_within_its_tolerance_of_the_local_index(
    archive_retriever, milvus_archive_retriever, block
):
    local = _report(archive_retriever, "local", block)
    mine = _report(milvus_archive_retriever, "milvus", block)
    for metric in METRICS:
        assert abs(mine.overall[metric] - local.overall[metric]) <= BACKEND_TOLERANCE, (
            block,
            metric,
            mine.overall[metric],
            local.overall[metric],
        )
    for count, found in mine.answerability.items():
        assert abs(found - local.answerability[count]) <= 1, (count, found)
