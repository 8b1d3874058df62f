"""Questions that arrive together share a forward pass (rag.model.batching)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest

from rag.model.batching import QueryBatcher
from tests.conftest import FakeEmbedder

QUESTIONS = [f"北京商业航天{n}年目标是什么" for n in range(2020, 2060)]


class SlowEmbedder(FakeEmbedder):
    """The fake embedder, taking a while per pass so that callers pile up; records each pass."""

    def __init__(self, fail_on: str | None = None) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        self.fail_on = fail_on
        self.gate = threading.Event()

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(list(texts))
        self.gate.wait(5)  # the first pass waits until everyone has arrived
        if self.fail_on in texts:
            raise RuntimeError(f"cannot encode {self.fail_on}")
        return super().encode_queries(texts)


def ask_all(batcher: QueryBatcher, questions: list[str]) -> dict[str, object]:
    got: dict[str, object] = {}

    def ask(q: str) -> None:
        try:
            got[q] = batcher.encode_queries([q])[0]
        except RuntimeError as exc:
            got[q] = exc

    threads = [threading.Thread(target=ask, args=(q,)) for q in questions]
    for t in threads:
        t.start()
    while len(batcher._waiting) < len(questions) - 1:  # all but the leader, which is encoding
        threading.Event().wait(0.01)
    batcher.embedder.gate.set()  # type: ignore[attr-defined]
    for t in threads:
        t.join(10)
    return got


def test_concurrent_questions_share_passes_and_each_gets_its_own_vector() -> None:
    slow = SlowEmbedder()
    batcher = QueryBatcher(slow, max_batch=16)
    got = ask_all(batcher, QUESTIONS)
    alone = FakeEmbedder()
    for q in QUESTIONS:
        np.testing.assert_allclose(got[q], alone.encode_queries([q])[0], atol=1e-6)
    # The first arrival went alone; the 39 who waited went in passes of at most 16.
    assert [len(b) for b in slow.batches] == [1, 16, 16, 7]
    assert sorted(q for b in slow.batches for q in b) == sorted(QUESTIONS)
    assert batcher.passes == 4 and batcher.encoded == 40
    assert not batcher._leading and not batcher._waiting


def test_a_failed_pass_fails_its_callers_only_and_the_next_pass_runs() -> None:
    slow = SlowEmbedder(fail_on=QUESTIONS[5])
    got = ask_all(QueryBatcher(slow, max_batch=8), QUESTIONS[:20])
    failed = {q for q, v in got.items() if isinstance(v, RuntimeError)}
    failing_pass = next(b for b in slow.batches if QUESTIONS[5] in b)
    assert failed == set(failing_pass)
    assert all(isinstance(got[q], np.ndarray) for q in QUESTIONS[:20] if q not in failed)


def test_alone_a_question_is_encoded_at_once_and_other_calls_pass_through() -> None:
    fake = FakeEmbedder()
    batcher = QueryBatcher(fake, max_batch=4)
    vectors = batcher.encode_queries(QUESTIONS[:6])  # more than a batch: still one pass
    assert vectors.shape == (6, fake.dim) and batcher.passes == 1
    assert batcher.encode_passages(["一段"]).shape == (1, fake.dim)
    assert fake.passage_calls == ["一段"]
    assert (batcher.model_id, batcher.dim) == (fake.model_id, fake.dim)
    with pytest.raises(ValueError, match="at least 1"):
        QueryBatcher(fake, max_batch=0)
