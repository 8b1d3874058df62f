"""The search backend contract, held by every place an index can live (tests.backends): the
same ranks, ids, highlights, verdicts and citations as the local index; filters applied inside
the store; writes by difference; the alias swapped only when a build is complete.

Ranks and ids are asserted, never Milvus's own BM25 values (Milvus Lite computes IDF per segment
and negates the score); the scores compared are the exact ones search works out (rag.index.sparse).
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from rag.index.backend import LocalBackend, Scope
from rag.index.milvus import store
from rag.ingest.load import load_bulletins
from rag.pipeline import IndexDamaged, IndexStale, build
from rag.search.retriever import Filters
from tests.backends import KINDS, built, opened, settings_for
from tests.conftest import BULLETIN, REPO, FakeEmbedder

QUESTIONS = [
    "北京商业航天2028目标是什么",
    "可重复使用火箭",
    "宁夏的产业发展",
    "What are Beijing's commercial space goals for 2028?",
    "卫星互联网应用",
    "量子计算机的价格",  # off the bulletins' topics
]
# Filter values a user may type, hostile ones included: each must match nothing, not fail.
HOSTILE = ['"] or region != "', 'x" or 1==1 or doc_id == "', "\\", '\\"', "a\nb", "北京'"]


@pytest.fixture
def page(tmp_path):
    """The page in a corpus folder of its own, which a test may change."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(BULLETIN, corpus / BULLETIN.name)
    return corpus


@pytest.fixture(scope="module")
def local(tmp_path_factory, request):
    folder = tmp_path_factory.mktemp("local")
    settings = settings_for("local", folder, request)
    return built(settings, FakeEmbedder(), load_bulletins([BULLETIN], REPO))


@pytest.fixture(scope="module", params=KINDS)
def each(tmp_path_factory, request):
    folder = tmp_path_factory.mktemp(request.param)
    settings = settings_for(request.param, folder, request)
    return built(settings, FakeEmbedder(), load_bulletins([BULLETIN], REPO))


def _ranked(answer):
    return [(h.rank, h.passage.passage_id, h.highlights) for h in answer.hits]


@pytest.mark.parametrize("question", QUESTIONS)
def test_every_backend_ranks_cites_and_judges_as_the_local_one(each, local, question):
    mine, theirs = each.answer(question, k=8), local.answer(question, k=8)
    assert _ranked(mine) == _ranked(theirs)
    assert [h.passage for h in mine.hits] == [h.passage for h in theirs.hits]
    assert mine.answerable == theirs.answerable and mine.reason == theirs.reason
    assert mine.best_similarity == pytest.approx(theirs.best_similarity, abs=1e-5)


def test_the_scores_fusion_reads_are_the_local_ones(each, local):
    ids = np.arange(len(local.backend.passages))
    vector = each.embedder.encode_queries(["北京商业航天的目标"])[0]
    assert [p.passage_id for p in each.backend.passages] == [
        p.passage_id for p in local.backend.passages
    ]
    assert np.allclose(
        each.backend.dense_cosines(vector, ids), local.backend.dense_cosines(vector, ids), atol=1e-5
    )
    search = "商业航天 火箭 2028年"
    assert np.allclose(
        each.backend.lexical_scores(search, ids),
        local.backend.lexical_scores(search, ids),
        rtol=1e-4,
    )
    rows, offsets, lengths = each.backend.sentence_rows(ids)
    theirs = local.backend.sentence_rows(ids)
    assert all(np.array_equal(a, b) for a, b in zip((rows, offsets, lengths), theirs, strict=True))
    assert np.array_equal(each.backend.sentence_spans(rows), local.backend.sentence_spans(rows))
    assert np.allclose(
        each.backend.sentence_cosines(vector, rows),
        local.backend.sentence_cosines(vector, rows),
        atol=1e-5,
    )
    assert np.allclose(
        each.backend.sentence_lexical_scores(search, rows),
        local.backend.sentence_lexical_scores(search, rows),
        rtol=1e-4,
    )
    for word in ["商业航天", "火箭", "宁夏", "量子计算", "2028"]:
        assert each.backend.knows(word) == local.backend.knows(word), word
        assert each.backend.containing(word).tolist() == local.backend.containing(word).tolist()


def test_each_leg_finds_the_best_passages_inside_its_scope(each, local):
    vector = each.embedder.encode_queries(["产业发展"])[0]
    regions = sorted({p.region for p in local.backend.passages})
    for region in regions:
        mask = np.array([p.region == region for p in local.backend.passages])
        scope = Scope(mask, region=region)
        ids, _ = each.backend.dense_top(vector, 5, scope)
        assert ids.tolist() == local.backend.dense_top(vector, 5, scope)[0].tolist()
        assert all(each.backend.passages[i].region == region for i in ids)
        found, _ = each.backend.lexical_top("产业 发展", 5, scope)
        assert found.tolist() == local.backend.lexical_top("产业 发展", 5, scope)[0].tolist()


@pytest.mark.parametrize(
    "filters",
    [
        Filters(region="北京"),
        Filters(article=2),
        Filters(doc_id=BULLETIN.stem),
        Filters(date_from="2024-01"),
        Filters(date_to="2023-12-31"),
        Filters(date_from="2024-01-01", date_to="2024-12"),
    ],
)
def test_filters_admit_what_they_admit_locally(each, local, filters):
    question = "商业航天发展"
    mine, theirs = (
        each.answer(question, k=10, filters=filters),
        local.answer(question, k=10, filters=filters),
    )
    assert _ranked(mine) == _ranked(theirs)
    assert all(filters.admits(h.passage) for h in mine.hits)


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_filter_value_matches_nothing_and_fails_nothing(each, value):
    answer = each.answer("商业航天", k=5, filters=Filters(region=value))
    assert answer.hits == ()
    if isinstance(each.backend, LocalBackend):
        return  # it applies the mask alone, which the retriever stopped at
    # Into the store itself (the retriever stops at an empty mask before asking it).
    vector = each.embedder.encode_queries(["商业航天"])[0]
    for scope in (Scope(region=value), Scope(doc_id=value), Scope(regions=(value, "北京"))):
        found = each.backend.dense_top(vector, 50, scope)[0].tolist()
        found += each.backend.lexical_top("商业航天", 50, scope)[0].tolist()
        assert all(each.backend.passages[i].region == "北京" for i in found)
        assert bool(found) == (scope.regions is not None)
    assert each.backend.document(value) is None
    # One literal, closed where it ends, that reads back as the value (or, for a value with a
    # control character, as one nothing matches).
    literal = store.scope_expression(Scope(region=value)).removeprefix("region == ")
    inner = re.fullmatch(r'"((?:[^"\\]|\\.)*)"', literal)
    assert inner, literal
    assert re.sub(r"\\(.)", r"\1", inner.group(1)) in (value, "\ufffe")


def test_documents_and_the_manifest_read_as_the_local_ones(each, local):
    doc_id = local.backend.passages[0].doc_id
    assert each.backend.document(doc_id) == local.backend.document(doc_id)
    assert each.backend.document("no-such-bulletin") is None
    assert each.backend.manifest["counts"] == local.backend.manifest["counts"]
    assert each.backend.manifest["model_id"] == FakeEmbedder.model_id


@pytest.mark.parametrize("kind", KINDS[1:])
def test_a_rebuild_writes_only_what_changed(kind, tmp_path, page, request):
    settings = settings_for(kind, tmp_path, request, corpus_dir=page)
    embedder = FakeEmbedder()
    first = build(load_bulletins([page], REPO), embedder, settings, show_progress=False)
    assert first.embedded == first.passages
    embedder.passage_calls.clear()
    again = build(load_bulletins([page], REPO), embedder, settings, show_progress=False)
    # The standby side was empty: copied from the current one, embedded never.
    assert again.embedded == 0 and embedder.passage_calls == []
    third = build(load_bulletins([page], REPO), embedder, settings, show_progress=False)
    assert third.embedded == 0 and embedder.passage_calls == []
    retriever = opened(settings, embedder)
    assert retriever.backend.manifest["changes"] == {"added": 0, "removed": 0}

    # One paragraph changed: its passages are written and the old ones deleted, no other.
    path = page / BULLETIN.name
    text = path.read_text(encoding="utf-8")
    old = "产业规模持续壮大"
    path.write_text(text.replace(old, "产业规模迅速壮大"), encoding="utf-8")
    changed = build(load_bulletins([page], REPO), embedder, settings, show_progress=False)
    retriever = opened(settings, embedder)
    changes = retriever.backend.manifest["changes"]
    assert 1 <= changes["added"] == changes["removed"] <= 3
    assert changed.embedded == changes["added"]
    assert any("迅速壮大" in p.text for p in retriever.backend.passages)
    assert not any(old in p.text for p in retriever.backend.passages)
    hit = retriever.answer("产业规模迅速壮大", k=1).hits[0]
    assert "迅速壮大" in hit.passage.text
    assert retriever.backend.knows("迅速") and not retriever.backend.knows("迅速壮大持续")


@pytest.mark.parametrize("kind", KINDS[1:])
def test_a_removed_bulletin_leaves_the_index(kind, tmp_path, page, request):
    extra = page / "002_extra.txt"
    extra.write_text(
        "海南环岛西线高速公路\n\n三亚至九所段日前贯通，全线通车后将缩短行程。\n", encoding="utf-8"
    )
    settings = settings_for(kind, tmp_path, request, corpus_dir=page)
    embedder = FakeEmbedder()
    retriever = built(settings, embedder, load_bulletins([page], REPO))
    assert retriever.answer("三亚至九所段", k=1).hits[0].passage.source.endswith("002_extra.txt")
    extra.unlink()
    retriever = built(settings, embedder, load_bulletins([page], REPO))
    assert not any(p.source.endswith("002_extra.txt") for p in retriever.backend.passages)
    assert retriever.backend.document("002_extra") is None
    assert not retriever.backend.knows("九所")


@pytest.mark.parametrize("kind", KINDS[1:])
def test_a_build_killed_midway_leaves_the_alias_on_the_old_build(
    kind, tmp_path, page, request, monkeypatch
):
    settings = settings_for(kind, tmp_path, request, corpus_dir=page)
    embedder = FakeEmbedder()
    before = built(settings, embedder, load_bulletins([page], REPO))
    path = page / BULLETIN.name
    path.write_text(path.read_text(encoding="utf-8").replace("北京", "天津"), encoding="utf-8")

    from rag.index.milvus import build as milvus_build

    def killed(self, manifest):
        raise KeyboardInterrupt  # as a Ctrl-C after every row is written, before the swap

    monkeypatch.setattr(milvus_build._Writer, "finish", killed)
    with pytest.raises(KeyboardInterrupt):
        build(load_bulletins([page], REPO), embedder, settings, show_progress=False)
    monkeypatch.undo()
    reader = opened(settings, embedder)
    assert [p.text for p in reader.backend.passages] == [p.text for p in before.backend.passages]
    assert (
        reader.answer("北京商业航天", k=1).hits[0].passage
        == before.answer("北京商业航天", k=1).hits[0].passage
    )

    # The next build finishes the side the killed one left, recounting its terms.
    after = built(settings, embedder, load_bulletins([page], REPO))
    assert any("天津" in p.text for p in after.backend.passages)
    assert after.backend.knows("北京") == any("北京" in p.text for p in after.backend.passages)
    fresh_local = built(
        settings_for("local", tmp_path / "local", request, corpus_dir=page),
        embedder,
        load_bulletins([page], REPO),
    )
    ids = np.arange(len(after.backend.passages))
    assert np.allclose(
        after.backend.lexical_scores("天津 商业航天", ids),
        fresh_local.backend.lexical_scores("天津 商业航天", ids),
        rtol=1e-3,
    )


@pytest.mark.parametrize("kind", KINDS[1:])
def test_a_collection_built_for_another_model_is_refused(kind, tmp_path, request):
    settings = settings_for(kind, tmp_path, request)
    built(settings, FakeEmbedder(), load_bulletins([BULLETIN], REPO))

    class Other(FakeEmbedder):
        model_id = "fake/other"

    with pytest.raises(IndexStale, match=r"model_id.*rebuild it with `rag index`"):
        opened(settings, Other())
    chunked = settings.model_copy(update={"chunk_tokens": 128})
    with pytest.raises(IndexStale, match=r"chunker.*rebuild it with `rag index`"):
        opened(chunked, FakeEmbedder())
    # The command it names mends it: the other side is built afresh for the new model.
    mended = built(settings, Other(), load_bulletins([BULLETIN], REPO))
    assert mended.backend.manifest["model_id"] == "fake/other"
    assert len(mended.backend.passages) == len(opened(settings, Other()).backend.passages)


@pytest.mark.parametrize("kind", KINDS[1:])
def test_a_collection_missing_rows_is_refused_as_damaged(kind, tmp_path, request):
    settings = settings_for(kind, tmp_path, request)
    retriever = built(settings, FakeEmbedder(), load_bulletins([BULLETIN], REPO))
    backend = retriever.backend
    victim = backend._keys[3]  # one passage's sentences deleted behind the build's back
    backend.client.delete(backend.names["sentences"], filter=f'passage_key == "{victim}"')
    with pytest.raises(IndexDamaged, match=r"sentences.*rebuild it with `rag index`"):
        opened(settings, FakeEmbedder())
    # The next build writes the other side; the one after, this damaged one, is built afresh
    # (its rows are not those its manifest counts), where by difference it would stay short.
    for _ in range(2):
        mended = built(settings, FakeEmbedder(), load_bulletins([BULLETIN], REPO))
        assert len(mended.backend.passages) == len(retriever.backend.passages)
    assert mended.backend.names == backend.names
