"""HTTP search latency next to the bare embedding time of the same query, in one run.

Starts `rag serve` on a free local port (the index must exist: `rag index`), sends sequential
requests, then times the embedder alone in this process.
Run: .venv/bin/python bench/http_latency.py [--requests 300] [--questions FILE]
With --questions (an eval file), the requests cycle through its questions, and so does the bare
embedding; on the archive:
    RAG_INDEX_DIR=index-archive .venv/bin/python bench/http_latency.py \
        --questions eval/archive_questions.jsonl
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import httpx

from rag.embed import load_embedder
from rag.settings import Settings

QUERY = "北京商业航天2028目标是什么"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--questions", help="cycle through this eval file's questions")
    args = parser.parse_args()
    queries = [QUERY]
    if args.questions:
        with open(args.questions, encoding="utf-8") as rows:
            queries = [json.loads(line)["question"] for line in rows if line.strip()]
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "serve", "--port", str(port)],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        else:
            raise SystemExit("the server did not become ready in 180 s")
        for _ in range(10):  # warm-up
            client.get("/v1/search", params={"q": QUERY})
        http_ms, server_ms = [], []
        for query in itertools.islice(itertools.cycle(queries), args.requests):
            t = time.perf_counter()
            reply = client.get("/v1/search", params={"q": query, "top_k": 5})
            http_ms.append((time.perf_counter() - t) * 1000)
            server_ms.append(reply.json()["took_ms"])
    finally:
        server.terminate()
        server.wait(timeout=30)

    embedder = load_embedder(Settings())
    for _ in range(10):
        embedder.encode_queries([QUERY])
    embed_ms = []
    for query in itertools.islice(itertools.cycle(queries), args.requests):
        t = time.perf_counter()
        embedder.encode_queries([query])
        embed_ms.append((time.perf_counter() - t) * 1000)

    print(f"command: {' '.join(sys.argv)}")
    for name, values in [
        ("HTTP GET /v1/search", http_ms),
        ("  of which in the service (took_ms)", server_ms),
        ("bare query embedding", embed_ms),
    ]:
        print(
            f"{name:38} median {statistics.median(values):6.1f} ms   "
            f"p99 {percentile(values, 0.99):6.1f} ms   (n={len(values)})"
        )


if __name__ == "__main__":
    main()
