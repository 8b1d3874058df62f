"""Search cost as the corpus grows, without the model: what the retriever itself adds per query.

Passages are made from the archive's real text: each is 2 to 6 sentences of the built archive
index, drawn at random and run together, under the metadata of the passage its first sentence
came from. So BM25 sees the paper's vocabulary and posting lengths. A passage's vector is the
normalised mean of its sentences' real vectors (their model vectors, from the index), so the
vectors cluster as real ones do; each sentence keeps its own vector. Questions are the archive
eval's, encoded once beforehand: the timings are the legs, fusion, sentences, filters,
preference, duplicate folding, highlights and the verdict, not the encoder (see
bench/http_latency.py for that).

For each size it prints: search p50/p99 without and with a region filter, the dense leg's
recall@10 against exact search (the same vectors, brute force), the lexical leg's against its
exact sum when it is approximate (above RAG_APPROXIMATE_ABOVE), the index's size in memory and
the process's resident memory.

Run (the archive index must exist, `RAG_INDEX_DIR=index-archive rag index corpus archive`):
    RAG_INDEX_DIR=index-archive .venv/bin/python bench/search_scale.py \\
        [--sizes 100000 1000000] [--kind auto|flat|ivf|hnsw] [--queries 100] [--profile] \\
        [--keep DIR] [--slowest N]

`--keep DIR` keeps each size's BM25 indexes and FAISS index under DIR/<size>-<kind> and reuses
them on the next run (the passages are drawn again from the same seed, and the BM25 indexes are
only trusted when built from the same texts; the FAISS index only by its size, so delete DIR
after changing how dense indexes are built): at 1M the build is 16 minutes, a rerun a few.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from rag.index.dense import dense_index
from rag.index.lexical import LEXICAL_DIR, LexicalIndex, save_lexical
from rag.index.store import LoadedIndex, load_index
from rag.model.embed import load_embedder
from rag.pipeline import SWITCH_INTERVAL
from rag.search.retriever import Filters, Retriever
from rag.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def dense_bytes(faiss_index: Any, vectors: np.ndarray) -> int:
    """What the FAISS index holds besides the vectors: a copy of them when flat, its codes,
    lists and centroids (or graph) otherwise."""
    import faiss

    if isinstance(faiss_index, faiss.IndexFlat):
        return int(vectors.nbytes)
    return int(faiss.serialize_index(faiss_index).nbytes)


class Gathered:
    """Sentence vectors as rows of the archive's own: row i is `unique[of[i]]`, so 4M sentence
    rows cost an index array, not 6 GB of copies."""

    def __init__(self, unique: np.ndarray, of: np.ndarray) -> None:
        self.unique, self.of = unique, of

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        return self.unique[self.of[rows]]

    def __len__(self) -> int:
        return len(self.of)


class Precomputed:
    """The questions' real vectors, encoded before the clock starts."""

    def __init__(self, model_id: str, dim: int, vectors: dict[str, np.ndarray]) -> None:
        self.model_id, self.dim, self._vectors = model_id, dim, vectors

    def encode_queries(self, texts):
        return np.stack([self._vectors[t] for t in texts])

    def encode_passages(self, texts, *, show_progress=False):
        raise NotImplementedError("the bench never embeds passages")


def recombined(source: LoadedIndex, size: int, seed: int = 1):
    """`size` passages of 2-6 of the archive's sentences each, with their sentence rows and
    vectors (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    rows = source.sentences
    texts = [source.passages[i].text[a:b] for i, a, b in rows]
    owner = rows[:, 0]
    passages, sentence_rows, sentence_of, vectors = [], [], [], []
    counts = rng.integers(2, 7, size=size)
    picks = rng.integers(0, len(rows), size=int(counts.sum()))
    at = 0
    for i, count in enumerate(counts):
        chosen = picks[at : at + count]
        at += count
        model = source.passages[int(owner[chosen[0]])]
        parts, offset = [], 0
        for s in chosen:
            sentence_rows.append((i, offset, offset + len(texts[s])))
            sentence_of.append(s)
            parts.append(texts[s])
            offset += len(texts[s])
        v = source.sentence_vectors[chosen].mean(axis=0)
        vectors.append(v / np.linalg.norm(v))
        passages.append(
            dataclasses.replace(
                model,
                passage_id=f"syn-{i}",
                doc_id=f"syn-{i // 100}",
                article=i % 100 + 1,
                paragraph=1,
                text="".join(parts),
                spans=(),
            )
        )
    return (
        passages,
        np.array(sentence_rows, dtype=np.int64),
        np.array(sentence_of, dtype=np.int64),
        np.stack(vectors).astype(np.float32),
    )


def kept_or_built(path: Path, vectors: np.ndarray, kind: str) -> Any:
    """The FAISS index kept at `path` when it holds these many vectors, else built (and kept)."""
    import faiss

    if path.is_file():
        index = faiss.read_index(str(path))
        if index.ntotal == len(vectors):
            return index
    index = dense_index(vectors, kind)
    faiss.write_index(index, str(path))
    return index


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--kind", default="auto", choices=["auto", "flat", "ivf", "hnsw"])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument(
        "--profile", action="store_true", help="then where a search's time goes (cProfile)"
    )
    parser.add_argument(
        "--slowest", type=int, default=0, help="print the N slowest questions and their times"
    )
    parser.add_argument("--keep", type=Path, help="keep the built indexes here, reuse them")
    args = parser.parse_args()
    settings = Settings()
    embedder = load_embedder(settings)
    source = load_index(settings, model_id=embedder.model_id, dim=embedder.dim)
    rows = [
        json.loads(line)
        for line in (REPO / "eval" / "archive_questions.jsonl").read_text().splitlines()
        if line.strip()
    ][: args.queries]
    questions = [r["question"] for r in rows]
    vectors = dict(zip(questions, embedder.encode_queries(questions), strict=True))
    del embedder  # the encoder's memory is not the search's
    print(f"command: bench/search_scale.py {' '.join(sys.argv[1:])}".rstrip())
    for size in args.sizes:
        started = time.perf_counter()
        passages, sentences, sentence_of, passage_vectors = recombined(source, size)
        made = time.perf_counter() - started
        kind = args.kind
        if kind == "auto":
            kind = "ivf" if size > settings.approximate_above else "flat"
        if args.keep is None:
            home = Path(tempfile.mkdtemp(prefix="search-scale-"))
        else:
            home = args.keep / f"{size}-{kind}"
            home.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        faiss_index = kept_or_built(home / "dense.faiss", passage_vectors, kind)
        dense_s = time.perf_counter() - started
        started = time.perf_counter()
        if not (home / LEXICAL_DIR).is_dir():
            save_lexical(home / LEXICAL_DIR, [p.text for p in passages], sentences, "bigram")
        lexical_s = time.perf_counter() - started
        index = LoadedIndex(
            path=home,
            manifest={"index_kind": kind},
            passages=passages,
            vectors=passage_vectors,
            sentence_vectors=Gathered(source.sentence_vectors, sentence_of),  # type: ignore[arg-type]
            sentences=sentences,
            faiss_index=faiss_index,
            documents={},
        )
        retriever = Retriever(Precomputed(source.manifest["model_id"], 384, vectors), index)
        # As the service runs (rag.pipeline): one BLAS thread, as OpenBLAS's two spin after
        # each product and take the core the other leg runs on (p50 32 against 22 ms at 1M),
        # and the legs' threads taking turns at the interpreter every 0.5 ms.
        threadpool_limits(limits=1, user_api="blas")
        sys.setswitchinterval(SWITCH_INTERVAL)
        bytes_held = (
            passage_vectors.nbytes
            + sentences.nbytes
            + sentence_of.nbytes
            + dense_bytes(faiss_index, passage_vectors)
            + sum(
                np.asarray(a).nbytes
                for lx in (retriever.backend.lexical, retriever.backend.sentence_lexical)
                for a in lx._bm25.scores.values()
                if hasattr(a, "nbytes")
            )
        )
        print(
            f"{size:>9} passages ({len(sentences)} sentences, {kind}): made in {made:.0f} s, "
            f"dense index {dense_s:.0f} s, BM25 {lexical_s:.0f} s; "
            f"index in memory {bytes_held / 2**20:.0f} MB; RSS {rss_mb():.0f} MB"
        )
        # The approximate leg against exact search over the same vectors.
        recalls = []
        for q in questions:
            exact = np.argsort(-(passage_vectors @ vectors[q]))[:10]
            found, _ = retriever.backend.dense_top(vectors[q], 10, None)
            recalls.append(len(set(exact.tolist()) & set(found.tolist())) / 10)
        lexical = lexical_recall(retriever.backend.lexical, questions)
        for q in questions[:5]:
            retriever.answer(q, k=5)  # warm-up
        for label, filters in (("no filter", None), ("region filter", Filters(region="北京"))):
            timings = []
            for q in questions:
                t = time.perf_counter()
                retriever.answer(q, k=5, filters=filters)
                timings.append((time.perf_counter() - t) * 1000)
            if args.slowest:
                slowest = sorted(zip(timings, questions, strict=True), reverse=True)
                for ms, q in slowest[: args.slowest]:
                    print(f"{size:>9} passages {label:14} {ms:6.1f} ms  {q}")
            timings.sort()
            p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
            print(
                f"{size:>9} passages {label:14} search p50 {statistics.median(timings):6.1f} ms"
                f"  p99 {p99:6.1f} ms"
            )
        print(f"{size:>9} passages dense recall@10 against exact: {statistics.mean(recalls):.3f}")
        if lexical:
            print(
                f"{size:>9} passages lexical (approximate) against exact: recall@10 "
                f"{lexical[0]:.3f}, recall@200 {lexical[1]:.3f}; top 200 p50 {lexical[2]:.1f} ms "
                f"against {lexical[3]:.1f} ms exact"
            )
        if args.profile:
            profile(retriever, questions)
        print(f"{size:>9} passages RSS after searching {rss_mb():.0f} MB")
        del retriever, index, faiss_index, passages
        if args.keep is None:
            shutil.rmtree(home)
    return 0


def lexical_recall(lexical: LexicalIndex, questions: list[str]) -> tuple[float, ...] | None:
    """The approximate lexical top 200 against the exact one, when the index is approximate:
    the share of the exact best 10 and 200 that it finds (a text tied with the exact k-th
    counts as found: synthetic passages share sentences, so ties are many), and both p50s."""
    if not lexical.approximate:
        return None
    found: dict[int, list[float]] = {10: [], 200: []}
    timings: dict[bool, list[float]] = {True: [], False: []}
    for q in questions:
        terms = lexical.term_ids(q)
        runs = {}
        for approximate in (True, False):
            lexical.approximate = approximate
            started = time.perf_counter()
            runs[approximate] = lexical.top(terms, 200)[1]
            timings[approximate].append((time.perf_counter() - started) * 1000)
        lexical.approximate = True
        got, exact = runs[True], runs[False]
        for k, shares in found.items():
            if len(exact):
                cut = exact[min(k, len(exact)) - 1]
                reached = int((got[:k] >= cut * (1 - 1e-5)).sum())
                shares.append(min(reached, min(k, len(exact))) / min(k, len(exact)))
    return (
        statistics.mean(found[10]),
        statistics.mean(found[200]),
        statistics.median(timings[True]),
        statistics.median(timings[False]),
    )


def profile(retriever: Retriever, questions: list[str]) -> None:
    """The functions a search's time goes to, by time within and below them, over the
    questions asked once more (unfiltered)."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for q in questions:
        retriever.answer(q, k=5)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    sys.exit(main())
