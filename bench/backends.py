"""Search time on each backend, side by side in one run: the local index, Milvus Lite embedded
in this process, and a `milvus-lite server` on 127.0.0.1 (the network path a cluster is
reached by), over the same bulletins; whole searches in process (encoding, both legs, fusion,
verdict), the encoder's share timed apart.

The Milvus index must exist (`RAG_BACKEND=milvus RAG_MILVUS_URI=… rag index …`); the server
is started here over the same data folder once the embedded client has let go of it.
Run, on the archive:
    .venv/bin/python bench/backends.py --index-dir index-archive --milvus /tmp/archive-milvus.db \
        --questions eval/archive_questions.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rag.pipeline import load_model, open_index, open_milvus
from rag.search.retriever import Retriever
from rag.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.milvus_server import milvus_server  # the tests' server runner


def _questions(path: str | None) -> list[str]:
    if not path:
        return ["北京商业航天2028目标是什么", "宁夏的经济发展", "春节期间的物价"]
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
    return [r["question"] for r in rows if r.get("question")]


def _timed(retriever: Retriever, questions: list[str], rounds: int) -> list[float]:
    for q in questions[:5]:  # the first searches read indexes into memory
        retriever.answer(q)
    times = []
    for _ in range(rounds):
        for q in questions:
            started = time.perf_counter()
            retriever.answer(q)
            times.append((time.perf_counter() - started) * 1000)
    return times


def _line(name: str, times: list[float]) -> str:
    cuts = statistics.quantiles(times, n=100)
    return (
        f"{name:<22} n={len(times):<5} p50 {statistics.median(times):6.1f} ms   "
        f"p90 {cuts[89]:6.1f}   p99 {cuts[98]:6.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index-dir", default="index")
    parser.add_argument("--milvus", required=True, help="the Milvus Lite file the index is in")
    parser.add_argument("--questions")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--only",
        choices=["local", "lite", "server"],
        help="one backend (a process each: Lite embedded holds its file until the process ends)",
    )
    args = parser.parse_args()
    if args.only is None:
        # Each in a process of its own, one after the other, on the same questions.
        for kind in ("local", "lite", "server"):
            subprocess.run([sys.executable, __file__, *sys.argv[1:], "--only", kind], check=True)
        return
    questions = _questions(args.questions)
    local = Settings(index_dir=Path(args.index_dir))
    embedder = load_model(local, show_progress=False)
    if args.only == "local":
        started = time.perf_counter()
        for q in questions:
            embedder.encode_queries([q])
        encode = (time.perf_counter() - started) * 1000 / len(questions)
        print(f"{len(questions)} questions; encoding alone {encode:.1f} ms a question")
        retriever = Retriever.from_settings(embedder, open_index(local, embedder), local)
        print(_line("local (FAISS + BM25)", _timed(retriever, questions, args.rounds)))
        return
    lite = local.model_copy(update={"backend": "milvus", "milvus_uri": args.milvus})
    if args.only == "lite":
        started = time.perf_counter()
        backend = open_milvus(lite, embedder)
        print(f"Milvus Lite opened in {time.perf_counter() - started:.1f} s")
        retriever = Retriever.from_settings(embedder, backend, lite)
        print(_line("Milvus Lite embedded", _timed(retriever, questions, args.rounds)))
        return
    with milvus_server(Path(args.milvus)) as server:
        remote = lite.model_copy(update={"milvus_uri": server.uri})
        retriever = Retriever.from_settings(embedder, open_milvus(remote, embedder), remote)
        print(_line("Milvus Lite server", _timed(retriever, questions, args.rounds)))


if __name__ == "__main__":
    main()
