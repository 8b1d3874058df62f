"""Questions are read in the script of the bulletins: simplified or traditional characters."""

from __future__ import annotations

import shutil

import opencc
import pytest

from rag.index.build import build_index
from rag.index.store import load_index
from rag.ingest.load import load_bulletins
from rag.script import ScriptReader, script_of
from rag.search.retriever import Retriever
from rag.settings import Settings
from tests.conftest import BULLETIN, REPO, FakeEmbedder, shared_glossary

TO_TRADITIONAL = opencc.OpenCC("s2t.json")


def test_the_script_of_a_corpus():
    text = BULLETIN.read_text(encoding="utf-8")
    assert script_of([text]) == "simplified"
    assert script_of([TO_TRADITIONAL.convert(text)]) == "traditional"


def test_a_reader_converts_by_phrase():
    assert (
        ScriptReader("simplified")("重慶工業投資增長目標是多少？") == "重庆工业投资增长目标是多少？"
    )
    assert ScriptReader("traditional")("头发 干部 5G") == "頭髮 幹部 5G"
    assert ScriptReader("simplified")("北京商业航天") == "北京商业航天"


def _retriever(root, corpus_dir) -> Retriever:
    # The index goes under the test's own root, never the repository's index/.
    settings = Settings(root=root, corpus_dir=corpus_dir, index_dir=root / "index")
    embedder = FakeEmbedder()
    build_index(load_bulletins([corpus_dir], root), embedder, settings)
    index = load_index(settings, model_id=embedder.model_id, dim=embedder.dim)
    return Retriever(embedder, index, answer_floors=(0.0, 0.0), glossary=shared_glossary())


@pytest.fixture(scope="module")
def simplified(tmp_path_factory) -> Retriever:
    root = tmp_path_factory.mktemp("simplified")
    shutil.copytree(REPO / "corpus", root / "corpus")
    return _retriever(root, root / "corpus")


@pytest.fixture(scope="module")
def traditional(tmp_path_factory) -> Retriever:
    root = tmp_path_factory.mktemp("traditional")
    (root / "corpus").mkdir()
    text = TO_TRADITIONAL.convert(BULLETIN.read_text(encoding="utf-8"))
    (root / "corpus" / "bulletin.txt").write_text(text, encoding="utf-8")
    return _retriever(root, root / "corpus")


@pytest.mark.parametrize(
    "question", ["重庆工业投资增长目标是多少？", "北京商业航天2028年的目标是什么", "光伏产业座谈会"]
)
def test_a_question_in_the_other_script_finds_the_same_passages(simplified, traditional, question):
    in_traditional = TO_TRADITIONAL.convert(question)
    assert in_traditional != question
    for retriever in (simplified, traditional):
        one = retriever.answer(question, k=5)
        other = retriever.answer(in_traditional, k=5)
        assert [h.passage.passage_id for h in one.hits] == [
            h.passage.passage_id for h in other.hits
        ]
        assert one.answerable and other.answerable


def test_the_word_test_reads_both_scripts(traditional):
    # A traditional corpus, asked in English: the dictionary's simplified renderings are looked
    # up in the bulletins' script.
    assert not traditional.backend.knows("工业投资")
    assert traditional._uses("工业投资") and traditional._uses("工業投資")
    assert traditional.answer("红烧肉怎么做才好吃？").reason == "off_topic"
