"""The page's eval questions asked of its PDF: no figure below the text version's.

Our page drawn in five columns over two pages (tests.pdf_fixtures), indexed alone with the real
model and the default settings, against the page's text file indexed the same way.
"""

from __future__ import annotations

import shutil

import pytest

from rag.evaluate import METRICS, load_questions, local_search, run_eval
from rag.index.build import build_index
from rag.index.store import load_index
from rag.ingest.load import load_bulletins
from rag.search.retriever import Retriever
from rag.settings import Settings
from tests.conftest import BULLETIN, REPO, shared_glossary
from tests.pdf_fixtures import our_page, render

pytestmark = pytest.mark.model

SETS = ("questions.jsonl", "heldout.jsonl")


def _retriever(embedder, corpus, index_dir) -> Retriever:
    settings = Settings(root=REPO, index_dir=index_dir)
    build_index(load_bulletins([corpus], REPO), embedder, settings)
    index = load_index(settings, model_id=embedder.model_id, dim=embedder.dim)
    return Retriever.from_settings(embedder, index, settings, shared_glossary())


@pytest.fixture(scope="module")
def reports(real_embedder, tmp_path_factory):
    home = tmp_path_factory.mktemp("pdf-eval")
    sidecar = BULLETIN.with_name(BULLETIN.stem + ".meta.json")
    for kind in ("text", "pdf"):
        (home / kind).mkdir()
        shutil.copy(sidecar, home / kind / sidecar.name)
    shutil.copy(BULLETIN, home / "text" / BULLETIN.name)
    (home / "pdf" / f"{BULLETIN.stem}.pdf").write_bytes(render(our_page()))
    out = {}
    for kind in ("text", "pdf"):
        retriever = _retriever(real_embedder, home / kind, home / f"index-{kind}")
        out[kind] = {
            name: run_eval(
                load_questions(REPO / "eval" / name),
                local_search(retriever),
                retriever.passage_texts,
            )
            for name in SETS
        }
    return out


@pytest.mark.parametrize("name", SETS)
def test_the_pdf_scores_no_worse_than_the_text(reports, name):
    text, pdf = reports["text"][name], reports["pdf"][name]
    print(f"\n{name}: text {text.overall} {text.answerability}")
    print(f"{name}: pdf  {pdf.overall} {pdf.answerability}")
    for metric in METRICS:
        assert pdf.overall[metric] >= text.overall[metric], (metric, pdf.misses)
    assert pdf.answerability["answerable_flagged"] <= text.answerability["answerable_flagged"]
    assert pdf.answerability["unanswerable_flagged"] >= text.answerability["unanswerable_flagged"]
