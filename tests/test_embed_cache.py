"""The content-addressed embedding cache: a killed build resumes, damage is set aside."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from rag.index.build import build_index
from rag.index.embed_cache import CACHE_DIR, EmbeddingCache, embed_key
from rag.index.store import load_index
from rag.ingest.load import load_bulletins
from rag.settings import Settings
from tests.conftest import BULLETIN, REPO, FakeEmbedder


def _settings(tmp_path) -> Settings:
    return Settings(root=REPO, index_dir=tmp_path / "index")


def test_put_is_on_disk_and_read_back(tmp_path):
    cache = EmbeddingCache(tmp_path, "m", 4)
    keys = [embed_key("m", t) for t in ("甲", "乙")]
    cache.put(keys, np.eye(2, 4, dtype=np.float32))
    again = EmbeddingCache(tmp_path, "m", 4)
    assert len(again) == 2 and keys[1] in again
    assert again.get(keys[1]).tolist() == [0, 1, 0, 0]
    # Another model's vectors live apart: the same text is another key there.
    assert len(EmbeddingCache(tmp_path, "other", 4)) == 0
    assert embed_key("other", "甲") != keys[0]


@pytest.mark.parametrize(
    "damage",
    [b"", b"not a zip at all", "truncate"],
    ids=["empty", "garbage", "truncated"],
)
def test_a_damaged_batch_is_set_aside_and_embedded_again(tmp_path, damage):
    settings = _settings(tmp_path)
    bulletins = load_bulletins([BULLETIN], REPO)
    first = build_index(bulletins, FakeEmbedder(), settings)
    folder = settings.index_path / CACHE_DIR / "fake_char-hash"
    (batch,) = folder.glob("*.npz")
    data = batch.read_bytes()
    batch.write_bytes(data[: len(data) // 2] if damage == "truncate" else damage)

    embedder = FakeEmbedder()
    report = build_index(bulletins, embedder, settings)
    assert report.damaged_cache and batch.name in report.damaged_cache[0]
    assert (folder / f"{batch.name}.damaged").is_file()  # kept for a look, never read again
    assert report.embedded == first.embedded  # every text again: none was trusted
    index = load_index(settings, model_id=embedder.model_id, dim=embedder.dim)
    expected = embedder.encode_passages([p.embedding_text(True) for p in index.passages])
    np.testing.assert_allclose(index.vectors, expected, atol=1e-6)


def test_unused_vectors_are_compacted_away(tmp_path, monkeypatch):
    settings = _settings(tmp_path)
    bulletins = load_bulletins([BULLETIN], REPO)
    build_index(bulletins, FakeEmbedder(), settings)
    full = len(EmbeddingCache(settings.index_path, FakeEmbedder.model_id, FakeEmbedder.dim))
    # Index a bulletin of a few lines: most cached vectors are now unused, so they go.
    small = tmp_path / "small.txt"
    small.write_text("江苏推进智能制造\n\n江苏省日前出台方案，推动智能化改造。\n", encoding="utf-8")
    build_index(load_bulletins([small], tmp_path), FakeEmbedder(), settings)
    cache = EmbeddingCache(settings.index_path, FakeEmbedder.model_id, FakeEmbedder.dim)
    assert 0 < len(cache) < full / 4
    # And what is left is exactly what the current build needs: rebuilding embeds nothing.
    embedder = FakeEmbedder()
    report = build_index(load_bulletins([small], tmp_path), embedder, settings)
    assert report.embedded == 0 and embedder.passage_calls == []


KILLED_BUILD = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {repo!r})
    import rag.index
    from rag.index.build import build_index
    from rag.ingest.load import load_bulletins
    from rag.settings import Settings
    from tests.conftest import BULLETIN, REPO, FakeEmbedder

    class Slow(FakeEmbedder):
        def encode_passages(self, texts, *, show_progress=False):
            time.sleep(0.3)  # a model's pace: the test kills the build in the middle
            return super().encode_passages(texts)

    rag.index.build.CACHE_BATCH = 8
    build_index(load_bulletins([BULLETIN], REPO), Slow(), Settings(root=REPO, index_dir={index!r}))
    """
)


def test_a_killed_build_resumes_where_it_stopped(tmp_path):
    settings = _settings(tmp_path)
    script = KILLED_BUILD.format(repo=str(REPO), index=str(settings.index_path))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    folder = settings.index_path / CACHE_DIR / "fake_char-hash"
    try:
        deadline = time.monotonic() + 120
        while len(list(folder.glob("*.npz"))) < 3:
            assert proc.poll() is None, "the build ended before it could be killed"
            assert time.monotonic() < deadline, "no batch reached the cache"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # no handler runs: what is on disk is what is kept
    finally:
        proc.wait()
    assert not (settings.index_path / "current").exists()  # the build never finished
    kept = len(EmbeddingCache(settings.index_path, FakeEmbedder.model_id, FakeEmbedder.dim))
    assert kept >= 3 * 8

    embedder = FakeEmbedder()
    build_index(load_bulletins([BULLETIN], REPO), embedder, settings)
    distinct = len(EmbeddingCache(settings.index_path, FakeEmbedder.model_id, FakeEmbedder.dim))
    # The second run embedded what the first had not, each text once, and nothing it had.
    assert 0 < len(embedder.passage_calls) == distinct - kept
    assert len(set(embedder.passage_calls)) == len(embedder.passage_calls)
