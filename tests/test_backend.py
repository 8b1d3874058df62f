"""The search backend seam, on the local FAISS + BM25 backend: writes are seen by both legs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rag.index.backend import LocalBackend
from rag.index.build import build_index
from rag.index.store import load_index
from rag.ingest.load import load_bulletins
from rag.settings import Settings
from tests.conftest import BULLETIN, REPO, FakeEmbedder

NEW_TEXT = "海南环岛西线高速公路三亚至九所段日前贯通。全线通车后将缩短行程。"


@pytest.fixture
def backend(tmp_path) -> LocalBackend:
    settings = Settings(root=REPO, index_dir=tmp_path / "index")
    embedder = FakeEmbedder()
    build_index(load_bulletins([BULLETIN], REPO), embedder, settings)
    index = load_index(settings, model_id=embedder.model_id, dim=embedder.dim)
    return LocalBackend(index, "bigram")


def _passage(backend: LocalBackend, passage_id: str, text: str):
    return dataclasses.replace(backend.passages[0], passage_id=passage_id, text=text)


def _upsert(backend: LocalBackend, passage) -> np.ndarray:
    embedder = FakeEmbedder()
    vector = embedder.encode_passages([passage.text])
    spans = [(0, passage.text.index("。") + 1), (passage.text.index("。") + 1, len(passage.text))]
    sentence_vectors = embedder.encode_passages([passage.text[a:b] for a, b in spans])
    backend.upsert([passage], vector, [spans], [sentence_vectors])
    return vector[0]


def test_an_upserted_passage_is_found_by_both_legs(backend):
    before = len(backend.passages)
    vector = _upsert(backend, _passage(backend, "new-1", NEW_TEXT))
    assert len(backend.passages) == before + 1
    ids, cosines = backend.dense_top(vector, 1, None)
    assert ids.tolist() == [before] and cosines[0] == pytest.approx(1.0, abs=1e-5)
    ids, scores = backend.lexical_top("三亚至九所段高速公路", 3, None)
    assert ids[0] == before and scores[0] > 0
    rows, _, lengths = backend.sentence_rows(np.array([before]))
    assert lengths.tolist() == [2]
    first = NEW_TEXT.index("。") + 1
    assert backend.sentence_spans(rows).tolist() == [[0, first], [first, len(NEW_TEXT)]]
    assert backend.knows("三亚")


def test_a_deleted_passage_leaves_every_leg(backend):
    target = backend.passages[3]
    vector = FakeEmbedder().encode_passages([target.embedding_text(True)])[0]
    assert backend.dense_top(vector, 1, None)[0].tolist() == [3]
    assert backend.delete([target.passage_id]) == 1
    assert 3 not in backend.dense_top(vector, 10, None)[0].tolist()
    words = target.text[:12]
    assert 3 not in backend.lexical_top(words, 50, None)[0].tolist()
    assert backend.delete([target.passage_id]) == 0  # gone already: nothing to delete


def test_upserting_an_existing_id_replaces_it(backend):
    old = backend.passages[5]
    replacement = _passage(backend, old.passage_id, NEW_TEXT)
    _upsert(backend, replacement)
    found = backend.lexical_top("三亚至九所段", 10, None)[0].tolist()
    assert found[0] == len(backend.passages) - 1
    assert 5 not in backend.lexical_top(old.text[:12], 50, None)[0].tolist()


def test_an_upsert_must_bring_its_vectors(backend):
    with pytest.raises(ValueError, match="one vector"):
        backend.upsert([_passage(backend, "x", NEW_TEXT)], np.zeros((0, 64)), [[]], [])


def test_the_lexical_top_turns_approximate_above_the_setting_and_stays_so_after_writes(
    backend: LocalBackend,
) -> None:
    """As the dense leg, the lexical leg is exact up to RAG_APPROXIMATE_ABOVE passages and
    approximate above (rag.index.lexical.LexicalIndex.top); a write rebuilds BM25 and keeps it."""
    assert backend.approximate_above is None and not backend.lexical.approximate
    count = len(backend.passages)
    above = LocalBackend(backend.index, "bigram", approximate_above=count - 1)
    assert above.lexical.approximate
    _upsert(above, _passage(above, "new-1", NEW_TEXT))
    assert above.lexical.approximate  # the rebuilt index keeps the choice
    at = LocalBackend(backend.index, "bigram", approximate_above=count)
    assert not at.lexical.approximate
