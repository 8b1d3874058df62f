"""The approximate dense leg against exact search: recall and time per question, by size.

The vectors are made as bench/search_scale.py makes them, without the passages: each is the
normalised mean of 2 to 6 real sentence vectors of the built archive index, so they cluster as
real passage vectors do. The questions are the archive eval's, encoded by the model. For each
size and each index (flat; IVF-PQ fast-scan with several numbers of groups read, the best 2,000
rescored exactly as the leg does; HNSW with several breadths)
it prints:
- recall@10: of the exact 10 nearest, the share the index returns as its 10;
- recall@10 in 200: the share of the exact 10 among the 200 the index returns, which is what
  the retriever asks of the leg (RAG_CANDIDATES) before fusion re-scores them exactly;
- p50 / p99 of one question's search, and the time to build the index.

Run (the archive index must exist, `RAG_INDEX_DIR=index-archive rag index corpus archive`):
    RAG_INDEX_DIR=index-archive .venv/bin/python bench/dense_recall.py [--sizes 300000 1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from rag.index.dense import DenseLeg, dense_index
from rag.index.store import load_index
from rag.model.embed import load_embedder
from rag.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def made_vectors(sentence_vectors: np.ndarray, size: int, seed: int = 1) -> np.ndarray:
    """`size` unit vectors, each the mean of 2-6 random sentence vectors, made in blocks."""
    rng = np.random.default_rng(seed)
    out = np.empty((size, sentence_vectors.shape[1]), dtype=np.float32)
    for start in range(0, size, 100_000):
        n = min(100_000, size - start)
        counts = rng.integers(2, 7, size=n)
        picks = rng.integers(0, len(sentence_vectors), size=(n, 6))
        use = np.arange(6)[None, :] < counts[:, None]
        block = (sentence_vectors[picks] * use[..., None]).sum(axis=1)
        out[start : start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def timed(
    leg: DenseLeg, questions: np.ndarray, n: int, probes: int | None, breadth: int | None
) -> tuple[list[np.ndarray], list[float]]:
    """Each question's `n` nearest by the leg, as a search asks it (for IVF: the codes read,
    their best rescored exactly), reading `probes` IVF groups or HNSW at `breadth`."""
    import faiss

    found, times = [], []
    for q in questions:
        t = time.perf_counter()
        if breadth is not None:
            params = faiss.SearchParametersHNSW(efSearch=breadth)
            _, rows = leg.index.search(q[None, :], n, params=params)
            ids = rows[0][rows[0] >= 0]
        else:
            ids, _ = leg.top(q, n, None, probes=probes)
        times.append((time.perf_counter() - t) * 1000)
        found.append(ids)
    return found, sorted(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[300_000, 1_000_000])
    parser.add_argument(
        "--probes", type=int, nargs="+", default=[0], help="IVF groups read (0: the default share)"
    )
    parser.add_argument("--breadths", type=int, nargs="+", default=[64, 128, 256, 400])
    parser.add_argument("--no-hnsw", action="store_true", help="skip HNSW (long to build)")
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    settings = Settings()
    embedder = load_embedder(settings)
    source = load_index(settings, model_id=embedder.model_id, dim=embedder.dim)
    lines = (REPO / "eval" / "archive_questions.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [json.loads(line)["question"] for line in lines if line.strip()][: args.queries]
    questions = embedder.encode_queries(texts)
    del embedder
    print(f"command: bench/dense_recall.py {' '.join(sys.argv[1:])}".rstrip())
    import faiss

    for size in args.sizes:
        vectors = made_vectors(source.sentence_vectors, size)
        exact10 = [set(np.argsort(-(vectors @ q))[:10].tolist()) for q in questions]
        runs: list[tuple[str, DenseLeg, float, list[int | None]]] = []
        started = time.perf_counter()
        flat = DenseLeg(vectors, dense_index(vectors, "flat"))
        runs.append(("flat (exact)", flat, time.perf_counter() - started, [None]))
        started = time.perf_counter()
        ivf = DenseLeg(vectors, dense_index(vectors, "ivf"))
        runs.append(
            (f"ivf-pq {ivf.index.nlist} lists", ivf, time.perf_counter() - started, args.probes)
        )
        if not args.no_hnsw:
            started = time.perf_counter()
            hnsw = DenseLeg(vectors, dense_index(vectors, "hnsw"))
            runs.append(("hnsw M=32", hnsw, time.perf_counter() - started, args.breadths))
        for name, leg, built, settings_tried in runs:
            for value in settings_tried:
                probes = breadth = None
                label = name
                if value is not None and hasattr(leg.index, "nprobe"):
                    probes = value
                    label = f"{name}, {value or round(0.25 * leg.index.nlist)} read"
                elif value is not None:
                    breadth = value
                    label = f"{name}, efSearch {value}"
                found10, times = timed(leg, questions, 10, probes, breadth)
                found200, _ = timed(leg, questions, 200, probes, breadth)
                r10 = statistics.mean(
                    len(e & set(f.tolist())) / 10 for e, f in zip(exact10, found10, strict=True)
                )
                r200 = statistics.mean(
                    len(e & set(f.tolist())) / 10 for e, f in zip(exact10, found200, strict=True)
                )
                p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
                print(
                    f"{size:>9} {label:32} recall@10 {r10:.3f}  recall@10 in 200 {r200:.3f}  "
                    f"p50 {statistics.median(times):6.2f} ms  p99 {p99:6.2f} ms  "
                    f"(built in {built:.0f} s)",
                    flush=True,
                )
        print(
            f"{size:>9} RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
            f"(faiss {faiss.__version__})",
            flush=True,
        )
        del runs, flat, ivf
    return 0


if __name__ == "__main__":
    sys.exit(main())
