"""Building, loading and searching the index, with the fake embedder."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

import rag.index.build
from rag.index.backend import Scope
from rag.index.build import build_index, passages_of
from rag.index.store import IndexUnusable, load_index
from rag.ingest.chunk import body_sentences
from rag.ingest.load import load_bulletins
from rag.response import result_of
from rag.search.candidates import joined, lexical_scores
from rag.search.retriever import Filters, QueryError, Retriever
from rag.settings import Settings
from tests.conftest import BULLETIN, REPO, FakeEmbedder, shared_glossary

SECOND = (
    "江苏推进智能制造\n本报记者 张三\n"
    "江苏省日前出台方案，推动制造业企业开展智能化改造和数字化转型。\n"
    "方案还提出，培育一批智能工厂，建设一批数字化车间。\n"
)
SECOND_CHANGED = SECOND.replace("培育一批智能工厂", "培育五十家智能工厂")


def _settings(tmp_path: Path, root: Path = REPO, **overrides) -> Settings:
    return Settings(root=root, index_dir=tmp_path / "index", **overrides)


def _load(settings: Settings, embedder: FakeEmbedder | None = None):
    embedder = embedder or FakeEmbedder()
    return load_index(settings, model_id=embedder.model_id, dim=embedder.dim)


def _snapshot(index_dir: Path) -> tuple[str, bytes, list[str]]:
    """Where `current` points, its manifest, and what is in builds/."""
    return (
        os.readlink(index_dir / "current"),
        (index_dir / "current" / "manifest.json").read_bytes(),
        sorted(p.name for p in (index_dir / "builds").iterdir()),
    )


@pytest.fixture
def two_bulletins(tmp_path) -> Path:
    """tmp_path/corpus with the real bulletin (and its sidecar) and a small second one."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(BULLETIN, corpus / BULLETIN.name)
    sidecar = BULLETIN.with_name(BULLETIN.stem + ".meta.json")
    shutil.copy(sidecar, corpus / sidecar.name)
    (corpus / "second.txt").write_text(SECOND, encoding="utf-8")
    return corpus


@pytest.fixture
def built(tmp_path):
    """An index of the corpus bulletin under tmp_path/index; root is the repository."""
    settings = _settings(tmp_path)
    bulletins = load_bulletins([BULLETIN], REPO)
    embedder = FakeEmbedder()
    report = build_index(bulletins, embedder, settings)
    return settings, bulletins, embedder, report


# --- build and load ------------------------------------------------------------------------------


def test_build_then_load(built):
    settings, bulletins, embedder, report = built
    _, passages = passages_of(bulletins, settings)
    assert (report.files, report.articles, report.passages) == (1, 4, len(passages))
    assert report.embedded == len(passages)
    # Every passage (with its context), and every sentence of every passage on its own, each
    # distinct text once.
    sentences = {p.text[a:b] for p in passages for a, b in body_sentences(p.text)}
    expected = {p.embedding_text(True) for p in passages} | sentences
    assert sorted(embedder.passage_calls) == sorted(expected)
    assert report.sentences_embedded >= len(passages)

    current = settings.index_path / "current"
    assert current.is_symlink() and current.resolve() == report.path.resolve()
    assert report.path.parent == settings.index_path / "builds"

    index = _load(settings)
    assert index.passages == passages
    assert index.vectors.shape == (len(passages), FakeEmbedder.dim)
    assert index.faiss_index.ntotal == len(passages)
    assert index.manifest["counts"] == {"files": 1, "articles": 4, "passages": len(passages)}
    assert index.manifest["files"] == {"corpus/000_a1e9ce7368794dc6.txt": bulletins[0].content_hash}
    assert {k: d["text"] for k, d in index.documents.items()} == {
        "000_a1e9ce7368794dc6": bulletins[0].text
    }


def test_load_without_index_says_to_build(tmp_path):
    with pytest.raises(IndexUnusable, match="rag index"):
        _load(_settings(tmp_path))


@pytest.mark.parametrize("field", ["chunk_tokens", "tiktoken_encoding", "embed_context"])
def test_load_refuses_other_chunker_settings(built, tmp_path, field):
    settings = built[0]
    changed = {
        "chunk_tokens": settings.chunk_tokens // 2,
        "tiktoken_encoding": "o200k_base"
        if settings.tiktoken_encoding == "cl100k_base"
        else "cl100k_base",
        "embed_context": not settings.embed_context,
    }[field]
    with pytest.raises(IndexUnusable) as info:
        _load(_settings(tmp_path, **{field: changed}))
    message = str(info.value)
    assert "rag index" in message and field in message


def test_load_refuses_other_model(built):
    settings = built[0]
    with pytest.raises(IndexUnusable) as info:
        load_index(settings, model_id="someone/else", dim=FakeEmbedder.dim)
    assert "rag index" in str(info.value) and "someone/else" in str(info.value)
    with pytest.raises(IndexUnusable, match="rag index"):
        load_index(settings, model_id=FakeEmbedder.model_id, dim=FakeEmbedder.dim * 2)


def test_nothing_to_index_is_refused(tmp_path):
    # A photo's credit is labelled, not indexed: nothing is left to search.
    only_headline = tmp_path / "h.txt"
    only_headline.write_text("（新华社记者兰红光摄）\n", encoding="utf-8")
    with pytest.raises(IndexUnusable):
        build_index(load_bulletins([only_headline], tmp_path), FakeEmbedder(), _settings(tmp_path))
    assert not (tmp_path / "index" / "current").exists()


# --- incremental rebuilds ------------------------------------------------------------------------


def test_rebuild_embeds_only_changed_passages(tmp_path, two_bulletins):
    settings = _settings(tmp_path, root=tmp_path)
    first = FakeEmbedder()
    report = build_index(load_bulletins([two_bulletins], tmp_path), first, settings)
    assert report.files == 2 and report.articles == 5
    assert report.embedded == report.passages
    assert len(first.passage_calls) == report.passages + report.sentences_embedded

    unchanged = FakeEmbedder()
    report = build_index(load_bulletins([two_bulletins], tmp_path), unchanged, settings)
    assert unchanged.passage_calls == [] and report.embedded == 0

    (two_bulletins / "second.txt").write_text(SECOND_CHANGED, encoding="utf-8")
    bulletins = load_bulletins([two_bulletins], tmp_path)
    second = FakeEmbedder()
    report = build_index(bulletins, second, settings)
    _, passages = passages_of(bulletins, settings)
    changed = [p for p in passages if "培育五十家智能工厂" in p.text]
    assert len(changed) == 1 and changed[0].source == "corpus/second.txt"
    # The changed passage, then only those of its sentences that changed.
    assert second.passage_calls[0] == changed[0].embedding_text(True)
    assert 1 <= len(second.passage_calls) - 1 == report.sentences_embedded
    assert all(call in changed[0].text for call in second.passage_calls[1:])
    assert report.embedded == 1 and report.passages == len(passages)

    # The reused vectors are the right ones: the index reads back as a fresh build would.
    index = _load(settings)
    assert index.passages == passages
    fresh = FakeEmbedder().encode_passages([p.embedding_text(True) for p in passages])
    np.testing.assert_allclose(index.vectors, fresh, rtol=0, atol=1e-6)
    assert index.manifest["files"]["corpus/second.txt"] == bulletins[1].content_hash


def test_other_model_embeds_everything_again(built):
    settings, bulletins, _, report = built

    class OtherFake(FakeEmbedder):
        model_id = "fake/other"

    other = OtherFake()
    again = build_index(bulletins, other, settings)
    assert again.embedded == report.passages
    assert len(other.passage_calls) == report.passages + report.sentences_embedded


def test_old_builds_are_pruned(built):
    settings, bulletins, _, _ = built
    for budget in (128, 64):
        settings = _settings(settings.index_path.parent, chunk_tokens=budget)
        last = build_index(bulletins, FakeEmbedder(), settings)
    builds = sorted((settings.index_path / "builds").iterdir())
    assert len(builds) == rag.index.build.KEEP_BUILDS
    assert last.path in builds
    assert _load(settings).manifest["chunker"]["chunk_tokens"] == 64


# --- interrupted builds --------------------------------------------------------------------------


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("where", ["faiss.write_index", "rag.index.build._point_current_at"])
def test_interrupted_build_keeps_previous_index(tmp_path, two_bulletins, monkeypatch, where):
    settings = _settings(tmp_path, root=tmp_path)
    only_real = two_bulletins / BULLETIN.name
    build_index(load_bulletins([only_real], tmp_path), FakeEmbedder(), settings)
    before = _load(settings).passages
    current_before = os.readlink(settings.index_path / "current")

    monkeypatch.setattr(where, _interrupt)
    with pytest.raises(KeyboardInterrupt):
        build_index(load_bulletins([two_bulletins], tmp_path), FakeEmbedder(), settings)
    monkeypatch.undo()

    assert os.readlink(settings.index_path / "current") == current_before
    index = _load(settings)
    assert index.passages == before
    assert {p.source for p in index.passages} == {f"corpus/{BULLETIN.name}"}
    leftovers = [p.name for p in (settings.index_path / "builds").iterdir()]
    assert not [name for name in leftovers if name.startswith(".") or "partial" in name]
    assert not [p for p in settings.index_path.iterdir() if p.name.startswith(".current")]


def test_build_interrupted_while_writing_leaves_builds_as_they_were(tmp_path, built, monkeypatch):
    settings, bulletins, _, _ = built
    snapshot = _snapshot(settings.index_path)
    monkeypatch.setattr("faiss.write_index", _interrupt)
    with pytest.raises(KeyboardInterrupt):
        build_index(bulletins, FakeEmbedder(), _settings(tmp_path, chunk_tokens=64))
    assert _snapshot(settings.index_path) == snapshot


def test_build_interrupted_at_the_swap_leaves_builds_as_they_were(tmp_path, built, monkeypatch):
    settings, bulletins, _, _ = built
    snapshot = _snapshot(settings.index_path)
    monkeypatch.setattr("rag.index.build._point_current_at", _interrupt)
    with pytest.raises(KeyboardInterrupt):
        build_index(bulletins, FakeEmbedder(), _settings(tmp_path, chunk_tokens=64))
    assert _snapshot(settings.index_path) == snapshot


# --- search --------------------------------------------------------------------------------------


@pytest.fixture
def retriever(built) -> Retriever:
    settings, _, embedder, _ = built
    return Retriever(embedder, _load(settings, embedder), glossary=shared_glossary())


def test_result_shape_and_citation(retriever, built):
    bulletin = built[1][0]
    hits = retriever.search("北京商业航天可重复使用火箭", k=4)
    assert [h.rank for h in hits] == [1, 2, 3, 4]
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    for hit in hits:
        body = result_of(hit).model_dump()
        assert set(body) == {"rank", "score", "text", "highlights", "citation", "duplicates"}
        citation = body["citation"]
        assert set(citation) == {"doc_id", "source", "headline", "section", "paragraph", "spans"}
        assert citation["source"] == "corpus/000_a1e9ce7368794dc6.txt"
        assert citation["doc_id"] == "000_a1e9ce7368794dc6"
        assert citation["headline"] == hit.passage.headline
        assert isinstance(citation["paragraph"], int) and citation["paragraph"] >= 1
        assert citation["spans"] and all(set(s) == {"start", "end"} for s in citation["spans"])
        quoted = "".join(bulletin.text[s["start"] : s["end"]] for s in citation["spans"])
        assert quoted == body["text"] == hit.passage.text
        assert body["rank"] == hit.rank and body["score"] == round(hit.score, 4)


def test_search_finds_the_passage_it_was_given(retriever):
    target = retriever.backend.passages[7]
    query = target.embedding_text(True)
    (hit,) = retriever.search(query, k=1, mode="dense")
    assert hit.passage == target
    # The stored vector is the one the embedder gives for the same text.
    stored = retriever.backend.index.vectors[7] @ retriever.embedder.encode_queries([query])[0]
    assert stored == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("region", ["北京", "四川", "宁夏", "重庆"])
def test_region_filter_restricts_results(retriever, region):
    in_region = [p for p in retriever.backend.passages if p.region == region]
    assert in_region
    hits = retriever.search("产业发展", k=50, filters=Filters(region=region))
    assert len(hits) == min(50, len(in_region))
    assert {h.passage.region for h in hits} == {region}
    assert {h.passage.passage_id for h in hits} <= {p.passage_id for p in in_region}


def test_region_masks_are_kept_read_only_and_stay_right_across_questions(retriever):
    """The region masks are kept per set of regions (rag.search.articles): the same region
    asked again, between others and with a province named, admits the same passages, and no
    caller can write into a kept mask."""
    articles = retriever.articles
    first = {
        r: retriever.search("产业发展", k=50, filters=Filters(region=r)) for r in ("北京", "四川")
    }
    for _ in range(2):
        for region, hits in first.items():
            again = retriever.search("产业发展", k=50, filters=Filters(region=region))
            assert [h.passage.passage_id for h in again] == [h.passage.passage_id for h in hits]
    mask = articles._in_regions(["四川"])
    assert mask.any() and not mask.all()
    with pytest.raises(ValueError):
        mask[0] = not mask[0]
    assert articles._in_regions(["四川", "北京"]).sum() > mask.sum()
    assert articles._in_regions(["四川"]) is mask


def test_the_lexical_leg_runs_while_the_question_is_encoded(retriever, monkeypatch):
    """The lexical leg needs no vector (rag.search.retriever): it is under way before the
    encoder returns, its candidates are scored there, and the answer is the one it gave
    before."""
    question = "北京商业航天2028目标是什么"
    before = [h.passage.passage_id for h in retriever.search(question, k=5)]
    started = threading.Event()
    lexical_top, encode = retriever.backend.lexical_top, retriever.embedder.encode_queries
    under_way = []

    def lexical(*args):
        started.set()
        return lexical_top(*args)

    def encoding(texts):
        under_way.append(started.wait(timeout=10))
        return encode(texts)

    scored_on = []
    lexical_scores = retriever.backend.lexical_scores

    def scores(search, ids):
        scored_on.append((threading.current_thread().name.startswith("search-leg"), len(ids)))
        return lexical_scores(search, ids)

    monkeypatch.setattr(retriever.backend, "lexical_top", lexical)
    monkeypatch.setattr(retriever.embedder, "encode_queries", encoding)
    monkeypatch.setattr(retriever.backend, "lexical_scores", scores)
    assert [h.passage.passage_id for h in retriever.search(question, k=5)] == before
    assert under_way == [True]
    # The leg's own candidates were scored for fusion on its thread, beside the encoder.
    assert scored_on and scored_on[0][0] and scored_on[0][1] > 0


@pytest.mark.parametrize("question", ["北京商业航天2028目标是什么", "hydrogen energy corridor"])
def test_candidates_scored_in_two_parts_are_scored_as_one(retriever, question):
    """The lexical leg's candidates are scored on its thread, the dense leg's others after
    (rag.search.candidates): joined, the parts are the whole union's scores, to the bit."""
    backend = retriever.backend
    searches = retriever.parse(question).searches
    rng = np.random.default_rng(3)
    ids = np.sort(rng.choice(len(backend.passages), size=30, replace=False))
    whole = lexical_scores(backend, searches, ids)
    assert len(whole.passages) == len(searches) and any(p.any() for p in whole.passages)
    for _ in range(5):
        early = np.sort(rng.choice(ids, size=int(rng.integers(0, len(ids))), replace=False))
        late = np.setdiff1d(ids, early)
        both = joined(
            lexical_scores(backend, searches, early), lexical_scores(backend, searches, late)
        )
        np.testing.assert_array_equal(both.ids, ids)
        np.testing.assert_array_equal(both.rows, backend.sentence_rows(ids)[0])
        for got, want in zip(
            both.passages + both.sentences, whole.passages + whole.sentences, strict=True
        ):
            np.testing.assert_array_equal(got, want)


def test_filter_that_admits_nothing_returns_nothing(retriever):
    assert retriever.search("产业发展", filters=Filters(region="西藏")) == []


def test_article_filter(retriever):
    hits = retriever.search("光伏产业", k=50, filters=Filters(article=4))
    assert hits and {h.passage.article for h in hits} == {4}
    assert {h.passage.headline for h in hits} == {"四川进一步加大发展光伏产业力度"}


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query_is_refused(retriever, query):
    with pytest.raises(QueryError):
        retriever.search(query)


def test_unknown_doc_id_is_refused(retriever):
    with pytest.raises(QueryError, match="nope"):
        retriever.search("产业", filters=Filters(doc_id="nope"))


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_an_approximate_index_answers_like_the_exact_one(tmp_path, kind):
    settings = _settings(tmp_path, index_kind=kind)
    embedder = FakeEmbedder()
    build_index(load_bulletins([BULLETIN], REPO), embedder, settings)
    index = _load(settings, embedder)
    assert index.manifest["index_kind"] == kind
    approximate = Retriever(embedder, index, glossary=shared_glossary())
    target = index.passages[7]
    (hit,) = approximate.search(target.embedding_text(True), k=1, mode="dense")
    assert hit.passage == target
    answer = approximate.answer("北京商业航天可重复使用火箭", k=5)
    assert len(answer.hits) == 5 and [h.rank for h in answer.hits] == [1, 2, 3, 4, 5]
    # A filter is applied inside the approximate leg, not after it.
    ids, _ = approximate.backend.dense_top(
        embedder.encode_queries(["产业"])[0],
        5,
        Scope(np.array([p.region == "宁夏" for p in index.passages])),
    )
    assert ids.size and all(index.passages[i].region == "宁夏" for i in ids)


def test_the_ivf_leg_filters_inside_and_returns_exact_cosines(monkeypatch):
    # Vectors clustered as passages are (a few topics, each a spread around its centre), the
    # filter large enough to go through the codes rather than the exact path.
    import rag.index.dense as dense

    rng = np.random.default_rng(7)
    centres = rng.standard_normal((20, 32))
    vectors = (centres[rng.integers(0, 20, 4000)] + 0.6 * rng.standard_normal((4000, 32))).astype(
        np.float32
    )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    leg = dense.DenseLeg(vectors, dense.dense_index(vectors, "ivf"))
    assert leg.index.nlist == int(2 * np.sqrt(4000))
    monkeypatch.setattr(dense, "EXACT_WITHIN", 0)
    mask = np.arange(4000) % 3 != 0
    recalls = []
    for q in vectors[:40:2]:
        ids, cosines = leg.top(q, 10, mask)
        assert len(ids) == 10 and mask[ids].all()
        assert np.allclose(cosines, vectors[ids] @ q)  # rescored: exact, best first
        assert (np.diff(cosines) <= 0).all()
        exact = np.argsort(-np.where(mask, vectors @ q, -np.inf))[:10]
        recalls.append(len(set(ids.tolist()) & set(exact.tolist())) / 10)
    assert np.mean(recalls) >= 0.8, recalls


def test_the_build_saves_bm25_so_start_up_does_not_tokenize(built, monkeypatch):
    settings, _, embedder, _ = built
    index = _load(settings, embedder)
    assert (index.path / "lexical" / "passages" / "built_from").is_file()
    fresh = Retriever(embedder, index, glossary=shared_glossary())

    def no_indexing(*args, **kwargs):
        raise AssertionError("BM25 was built again at start-up")

    monkeypatch.setattr("bm25s.BM25.index", no_indexing)
    loaded = Retriever(embedder, index, glossary=shared_glossary())
    for question in ("北京商业航天2028目标", "光伏产业", "《方案》"):
        assert np.allclose(
            loaded.backend.lexical.scores(question), fresh.backend.lexical.scores(question)
        )
        assert np.allclose(
            loaded.backend.sentence_lexical.scores(question),
            fresh.backend.sentence_lexical.scores(question),
        )
    # Saved for another tokenizer, or for other texts: built here instead.
    with pytest.raises(AssertionError, match="built again"):
        Retriever(embedder, index, lexical_tokenizer="jieba", glossary=shared_glossary())


@pytest.mark.parametrize(
    "filters",
    [
        Filters(region="北京"),
        Filters(article=2),
        Filters(date_from="2024-01", date_to="2024-01-31"),
        Filters(date_from="2099"),
        Filters(doc_id="000_a1e9ce7368794dc6", region="宁夏"),
    ],
    ids=["region", "article", "month", "none", "doc+region"],
)
def test_the_article_mask_is_the_filter_per_passage(retriever, filters):
    # The mask is computed as arrays (and dates once per distinct date): the same verdict as
    # asking the filter of every passage.
    expected = [filters.admits(p) for p in retriever.backend.passages]
    assert retriever.articles.mask(filters).tolist() == expected
