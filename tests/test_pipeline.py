"""Opening the retriever (rag.pipeline): each way it can fail is its own error, with a message
that says what to do; with the fake embedder."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from rag.index.build import build_index
from rag.ingest.load import load_bulletins
from rag.pipeline import (
    CorpusUnusable,
    IndexDamaged,
    IndexMissing,
    IndexStale,
    open_retriever,
)
from rag.settings import Settings
from tests.conftest import BULLETIN, FakeEmbedder, shared_glossary


@pytest.fixture
def project(tmp_path) -> Settings:
    """A root holding a corpus of the real bulletin, and no index yet."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in (BULLETIN.name, BULLETIN.stem + ".meta.json"):
        shutil.copy(BULLETIN.with_name(name), corpus / name)
    return Settings(root=tmp_path, index_dir=tmp_path / "index")


@pytest.fixture
def no_model(monkeypatch) -> None:
    """Loading the real model fails the test: these tests pass the fake one or need none."""

    def refuse(settings, *, show_progress=False):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("rag.model.embed.load_embedder", refuse)


def _built(settings: Settings) -> Path:
    build_index(load_bulletins([settings.corpus_path], settings.root), FakeEmbedder(), settings)
    return (settings.index_path / "current").resolve()


def _open(settings: Settings, **options):
    return open_retriever(settings, embedder=FakeEmbedder(), glossary=shared_glossary(), **options)


def test_a_missing_index_is_refused_before_the_model_loads(project, no_model):
    with pytest.raises(IndexMissing, match=r"no index at .*; build one with `rag index`"):
        open_retriever(project, build_if_missing=False)


def test_a_missing_index_is_built_when_asked(project, no_model):
    notes: list[str] = []
    retriever = _open(project, build_if_missing=True, say=notes.append)
    assert notes == [f"no index yet; building it from {project.corpus_path}"]
    assert retriever.backend.manifest["counts"]["files"] == 1
    assert retriever.search("北京商业航天", k=1)


def test_an_index_built_with_other_settings_is_stale(project, no_model):
    _built(project)
    other = project.model_copy(update={"chunk_tokens": 128})
    with pytest.raises(IndexStale, match="does not match the running settings") as caught:
        _open(other, build_if_missing=True)  # a stale index is refused, not rebuilt
    assert "chunker" in str(caught.value) and "rag index" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("passages.jsonl", b'{"text": "cut sh'),
        ("passages.jsonl", b'{"text": "no other fields"}\n'),
        ("vectors.npy", b"\x93NUMPY"),
        ("vectors.faiss", b"not faiss"),
    ],
)
def test_an_index_whose_files_cannot_be_read_is_damaged(project, no_model, name, damage):
    (_built(project) / name).write_bytes(damage)
    with pytest.raises(IndexDamaged, match="cannot be read") as caught:
        _open(project, build_if_missing=False)
    assert str(project.index_path) in str(caught.value) and "rag index" in str(caught.value)


def test_a_build_file_gone_is_damaged(project, no_model):
    (_built(project) / "sentences.npy").unlink()
    with pytest.raises(IndexDamaged, match=r"sentences\.npy"):
        _open(project, build_if_missing=False)


def test_an_empty_corpus_is_unusable_not_an_index_error(project, no_model):
    for path in project.corpus_path.iterdir():
        path.unlink()
    with pytest.raises(CorpusUnusable, match="no bulletins here"):
        _open(project, build_if_missing=True)
    assert not (project.index_path / "current").exists()


def test_reopening_keeps_the_model_and_glossary(project, no_model):
    _built(project)
    first = _open(project, build_if_missing=False)
    again = open_retriever(
        project, build_if_missing=False, embedder=first.embedder, glossary=first.glossary
    )
    assert again.embedder is first.embedder and again.glossary is first.glossary
    assert again is not first


def test_an_opened_retriever_leaves_blas_one_thread_and_batches_questions(project, no_model):
    from threadpoolctl import threadpool_info, threadpool_limits

    from rag.model.batching import QueryBatcher
    from rag.pipeline import SWITCH_INTERVAL

    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)  # Python's own
    try:
        with threadpool_limits(limits=2, user_api="blas"):  # as numpy starts on two cores
            retriever = _open(project, build_if_missing=True)
            pools = [p for p in threadpool_info() if p["user_api"] == "blas"]
            assert pools and all(p["num_threads"] == 1 for p in pools)
        # The lexical leg's thread and the encoding one take turns at the interpreter often.
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
        assert SWITCH_INTERVAL < 0.005
    finally:
        sys.setswitchinterval(before)
    assert isinstance(retriever.embedder, QueryBatcher)
    assert retriever.search("北京商业航天2028目标是什么", k=3)
    assert retriever.embedder.passes == 1  # type: ignore[attr-defined]
