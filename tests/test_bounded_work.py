"""The work one bulletin may cost is bounded: chunking is linear, a sentence without punctuation
is cut at the token budget, and a bulletin over the size or time limit is refused by name."""

from __future__ import annotations

import time
from itertools import pairwise

import pytest

from rag.cli import main
from rag.documents import Bulletin
from rag.index.build import build_index
from rag.ingest import budget
from rag.ingest.chunk import _pieces
from rag.ingest.load import BulletinError, load_bulletins
from rag.ingest.structure import parse_bulletin
from rag.ingest.tokens import count_tokens, get_encoding
from rag.settings import Settings
from tests.conftest import FakeEmbedder

MB = 1_000_000
# What the issue found: a file like the first kept `rag index` busy for more than 700 s.
PATHOLOGICAL = {
    "one repeated character": "标题\n" + "啊" * (MB // 3),
    "one short word without punctuation": "标题\n" + "发展 " * (MB // 7),
    "200,000 short lines": "标题\n" + "短句\n" * 200_000,
}


@pytest.fixture(scope="module")
def count():
    settings = Settings()
    encoding = get_encoding(settings.tiktoken_encoding, settings.cache_dir)
    return lambda text: count_tokens(text, encoding)


def _bulletin(text: str) -> Bulletin:
    return Bulletin("x", "x.txt", text, "t", "zh", "unknown", "0" * 64)


def test_a_sentence_without_punctuation_is_cut_at_the_budget(count):
    text = "啊" * 5000
    pieces = list(_pieces(text, count, 256))
    assert pieces[0][0] == 0 and pieces[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in pairwise(pieces))
    for start, end in pieces:
        assert count(text[start:end]) <= 256
    # Cut where the budget runs out: one character more and the piece would be over it.
    for start, end in pieces[:-1]:
        assert count(text[start : end + 1]) > 256


def test_a_long_sentence_is_still_cut_after_a_comma_that_fits(count):
    clause = "推动制造业企业开展智能化改造和数字化转型，"
    text = clause * 40 + "。"
    pieces = list(_pieces(text, count, 64))
    assert len(pieces) > 1
    for start, end in pieces[:-1]:
        assert text[end - 1] == "，" and count(text[start:end]) <= 64
        # The longest run of whole clauses that fits: one clause more would not.
        assert count(text[start : end + len(clause)]) > 64


def test_cutting_counts_each_character_a_bounded_number_of_times(count):
    # Linear, whatever the length: the old cut counted the rest of the sentence for every
    # piece (more than 200 times the text here, and growing with it).
    counted = 0

    def counting(text: str) -> int:
        nonlocal counted
        counted += len(text)
        return count(text)

    for n in (5_000, 50_000):
        counted = 0
        list(_pieces("啊" * n, counting, 256))
        assert counted < 30 * n, (n, counted)


@pytest.mark.parametrize("kind", list(PATHOLOGICAL))
def test_a_pathological_bulletin_indexes_within_30_s(tmp_path, kind):
    path = tmp_path / "corpus" / "huge.txt"
    path.parent.mkdir()
    path.write_text(PATHOLOGICAL[kind], encoding="utf-8")
    assert path.stat().st_size > 900_000
    # Over the default size limit; raised so that what is timed is the work, not the refusal.
    settings = Settings(root=tmp_path, index_dir=tmp_path / "index", max_bulletin_bytes=4 * MB)
    started, cpu = time.monotonic(), time.process_time()
    bulletins = load_bulletins([path.parent], tmp_path, settings.max_bulletin_bytes)
    report = build_index(bulletins, FakeEmbedder(), settings)
    # The bound the issue asks for, on the clock for the file it names (2-5 s here), in CPU
    # time for the others (the 200,000 lines take 16 s of it, and over 50 s on the clock
    # while the machine is busy with other work).
    if kind == "one repeated character":
        assert time.monotonic() - started < 30
    assert time.process_time() - cpu < 30
    assert report.passages > 100
    # Every character accounted for, as for a real page.
    assert report.unaccounted == {}
    assert report.characters == report.in_passages + report.labelled_only
    assert report.in_passages >= report.characters - 10


def test_a_bulletin_over_the_size_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    huge = corpus / "huge.txt"
    huge.write_text(PATHOLOGICAL["one repeated character"], encoding="utf-8")
    monkeypatch.setenv("RAG_ROOT", str(tmp_path))
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.delenv("RAG_MAX_BULLETIN_BYTES", raising=False)

    def refuse(settings, *, show_progress=False):
        raise AssertionError("the model was loaded for a corpus that is refused")

    monkeypatch.setattr("rag.model.embed.load_embedder", refuse)
    started = time.monotonic()
    code = main(["index", str(corpus)])
    assert code == 1
    assert time.monotonic() - started < 30
    assert not (tmp_path / "index").exists()


def test_the_size_limit_is_a_setting(tmp_path):
    path = tmp_path / "b.txt"
    path.write_text("标题\n" + "正文。" * 100, encoding="utf-8")
    with pytest.raises(BulletinError) as info:
        load_bulletins([path], tmp_path, max_bytes=100)
    assert str(path) in str(info.value) and "RAG_MAX_BULLETIN_BYTES" in str(info.value)
    assert load_bulletins([path], tmp_path, max_bytes=10_000)[0].doc_id == "b"
    assert Settings(max_bulletin_bytes=100).max_bulletin_bytes == 100


def test_a_bulletin_over_the_time_limit_is_refused_by_name(monkeypatch):
    monkeypatch.setattr(budget, "MAX_SECONDS", 0.0)
    with pytest.raises(BulletinError) as info:
        parse_bulletin(_bulletin("标题\n" + "正文。\n" * 50))
    assert str(info.value).startswith("x.txt: parsing took over 0 s")


def test_index_refuses_a_bulletin_over_the_time_limit_in_one_line(tmp_path, monkeypatch, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "slow.txt").write_text("标题\n" + "正文。\n" * 50, encoding="utf-8")
    monkeypatch.setenv("RAG_ROOT", str(tmp_path))
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setattr(
        "rag.model.embed.load_embedder", lambda settings, show_progress=False: FakeEmbedder()
    )
    monkeypatch.setattr(budget, "MAX_SECONDS", 0.0)
    code = main(["index", str(corpus)])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.startswith("rag: corpus/slow.txt: parsing took over 0 s")
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "index" / "current").exists()
