"""HTTP search latency next to the bare embedding time of the same query, in one run.

Starts `rag serve` on a free local port (the index must exist: `rag index`), sends sequential
requests, then times the encoders alone in this process: torch fp32 (the yardstick) and the
one the service runs.
Run: .venv/bin/python bench/http_latency.py [--requests 300] [--questions FILE]
With --questions (an eval file), the requests cycle through its questions, and so does the bare
embedding; on the archive:
    RAG_INDEX_DIR=index-archive .venv/bin/python bench/http_latency.py \
        --questions eval/archive_questions.jsonl
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import httpx

from rag.model.embed import load_embedder
from rag.settings import Settings

QUERY = "北京商业航天2028目标是什么"
SERVE = ("-m", "rag.cli", "serve")  # the service, as `python` runs it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


@dataclass(frozen=True)
class Service:
    base: str  # http://127.0.0.1:<port>
    pid: int


@contextlib.contextmanager
def running_service(command: Sequence[str] = SERVE) -> Iterator[Service]:
    """`rag serve` (or another `python` command that takes `--port`) on a free local port with
    this process's settings, once it is ready."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, *command, "--port", str(port)],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base)
        yield Service(base, server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_ready(base: str, seconds: float = 180) -> None:
    """Return once the service at `base` answers /readyz, or exit saying it did not."""
    deadline = time.time() + seconds
    with httpx.Client(base_url=base, timeout=30) as client:
        while time.time() < deadline:
            try:
                if client.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
    raise SystemExit(f"the server did not become ready in {seconds:.0f} s")


def encoding_ms(settings: Settings, queries: list[str], n: int) -> list[float]:
    """Milliseconds to encode each of `n` questions alone, with the settings' encoder."""
    embedder = load_embedder(settings)
    for _ in range(10):
        embedder.encode_queries([QUERY])
    timings = []
    for query in itertools.islice(itertools.cycle(queries), n):
        t = time.perf_counter()
        embedder.encode_queries([query])
        timings.append((time.perf_counter() - t) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--questions", help="cycle through this eval file's questions")
    args = parser.parse_args()
    queries = [QUERY]
    if args.questions:
        with open(args.questions, encoding="utf-8") as rows:
            queries = [json.loads(line)["question"] for line in rows if line.strip()]
    with running_service() as service:
        client = httpx.Client(base_url=service.base, timeout=30)
        for _ in range(10):  # warm-up
            client.get("/v1/search", params={"q": QUERY})
        http_ms, server_ms = [], []
        for query in itertools.islice(itertools.cycle(queries), args.requests):
            t = time.perf_counter()
            reply = client.get("/v1/search", params={"q": query, "top_k": 5})
            http_ms.append((time.perf_counter() - t) * 1000)
            server_ms.append(reply.json()["took_ms"])

    settings = Settings()
    # The yardstick is the model as sentence-transformers runs it (torch fp32), beside the
    # encoder the service uses.
    torch_ms = encoding_ms(settings.model_copy(update={"encoder": "torch"}), queries, args.requests)
    served_ms = encoding_ms(settings, queries, args.requests)

    print(f"command: {' '.join(sys.argv)}")
    ratio = statistics.median(http_ms) / statistics.median(torch_ms)
    print(f"HTTP p50 / torch fp32 encoding p50: {ratio:.2f}")
    for name, values in [
        ("HTTP GET /v1/search", http_ms),
        ("  of which in the service (took_ms)", server_ms),
        ("bare query encoding, torch fp32", torch_ms),
        (f"bare query encoding, {settings.encoder} (served)", served_ms),
    ]:
        print(
            f"{name:38} median {statistics.median(values):6.1f} ms   "
            f"p99 {percentile(values, 0.99):6.1f} ms   (n={len(values)})"
        )


if __name__ == "__main__":
    main()
