"""Search cost as the corpus grows, without the model: what the retriever itself adds per query.

The bundled bulletin's passages are the models for N synthetic ones: the same metadata and
length, in a bulletin and province of their own, with text drawn at random from the bulletin's
characters (so BM25 sees a realistic vocabulary and no two passages are near-duplicates, as in a
real corpus). Vectors are random unit vectors and the query embedder returns one too, so the
figures are fusion, BM25, filters, preference, duplicate folding and highlights, not the query
embedding (about 18 ms on this machine, see bench/embedding.py).

Run: .venv/bin/python bench/search_scale.py [--sizes 1000 10000 100000] [--queries 50]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rag.index.build import passages_of
from rag.index.lexical import LEXICAL_DIR, save_lexical
from rag.index.store import LoadedIndex
from rag.ingest.chunk import body_sentences
from rag.ingest.load import load_bulletins
from rag.places import PROVINCES
from rag.search.retriever import Filters, Retriever
from rag.settings import Settings

REPO = Path(__file__).resolve().parents[1]
DIM = 384


class RandomEmbedder:
    """A unit vector per call: the search path without the model."""

    model_id = "bench/random"
    dim = DIM

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def encode_queries(self, texts):
        return _unit(self.rng.standard_normal((len(texts), DIM)).astype(np.float32))

    def encode_passages(self, texts, *, show_progress=False):
        return self.encode_queries(texts)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic_index(size: int, path: Path) -> LoadedIndex:
    import faiss

    settings = Settings(root=REPO)
    _, base = passages_of(load_bulletins([REPO / "corpus"], REPO), settings)
    provinces = list(PROVINCES)
    rng = np.random.default_rng(1)
    alphabet = np.array(sorted({ch for p in base for ch in p.text if not ch.isspace()}))
    passages = []
    for i in range(size):
        p = base[i % len(base)]
        copy = i // len(base)
        chars = rng.choice(alphabet, size=len(p.text))
        chars[rng.integers(20, 60) :: 45] = "。"  # sentences of about the bulletin's length
        passages.append(
            dataclasses.replace(
                p,
                passage_id=f"{p.passage_id}-{copy}",
                doc_id=f"{p.doc_id}-{copy}",
                region=provinces[copy % len(provinces)],
                text="".join(chars),
            )
        )
    sentences = np.array(
        [(i, a, b) for i, p in enumerate(passages) for a, b in body_sentences(p.text)],
        dtype=np.int64,
    )
    vectors = _unit(rng.standard_normal((size, DIM)).astype(np.float32))
    sentence_vectors = _unit(rng.standard_normal((len(sentences), DIM)).astype(np.float32))
    flat = faiss.IndexFlatIP(DIM)
    flat.add(vectors)
    return LoadedIndex(
        path=path,
        manifest={"index_kind": "flat", "model_id": RandomEmbedder.model_id, "dim": DIM},
        passages=passages,
        vectors=vectors,
        sentence_vectors=sentence_vectors,
        sentences=sentences,
        faiss_index=flat,
        documents={},
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    questions = [
        json.loads(line)["question"]
        for line in (REPO / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ][: args.queries]
    print(f"command: bench/search_scale.py {' '.join(sys.argv[1:])}".rstrip())
    for size in args.sizes:
        home = Path(tempfile.mkdtemp(prefix="search-scale-"))
        started = time.perf_counter()
        index = synthetic_index(size, home)
        built = time.perf_counter() - started
        started = time.perf_counter()
        Retriever(RandomEmbedder(), index)
        cold = time.perf_counter() - started
        # What `rag index` does: the BM25 indexes saved with the build, so start-up loads them.
        started = time.perf_counter()
        save_lexical(
            home / LEXICAL_DIR, [p.text for p in index.passages], index.sentences, "bigram"
        )
        saving = time.perf_counter() - started
        started = time.perf_counter()
        retriever = Retriever(RandomEmbedder(), index)
        ready = time.perf_counter() - started
        print(
            f"{size:>8} passages: retriever start {cold:.1f} s tokenizing, {ready:.1f} s with the"
            f" BM25 indexes saved at build time ({saving:.1f} s to save;"
            f" synthetic index {built:.1f} s)"
        )
        for label, filters in (("no filter", None), ("region filter", Filters(region="北京"))):
            timings = []
            for q in questions:
                t = time.perf_counter()
                retriever.answer(q, k=5, filters=filters)
                timings.append((time.perf_counter() - t) * 1000)
            timings.sort()
            p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
            print(
                f"{size:>8} passages ({len(index.sentences):>7} sentences) {label:14}"
                f" median {statistics.median(timings):7.1f} ms  p99 {p99:7.1f} ms"
            )
        shutil.rmtree(home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
