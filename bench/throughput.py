"""Searches per second and latency with 1, 8 and 32 clients asking at once, over HTTP.

Starts `rag serve` on a free local port (the index must exist: `rag index`), then, for each
number of clients, keeps that many requests in flight for a fixed time, each client asking the
next question of an eval file as soon as its last answer came. The clients run in this process
on the same two cores as the server, so the figures are what one machine serves to itself.
Run on the archive:
    RAG_INDEX_DIR=index-archive .venv/bin/python bench/throughput.py \\
        --questions eval/archive_questions.jsonl [--clients 1 8 32] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import time

import httpx

# bench/ scripts run as files, so their folder is on the path.
from http_latency import percentile, running_service


async def _load(base: str, queries: list[str], clients: int, seconds: float) -> dict[str, float]:
    """Keep `clients` requests in flight for `seconds`; latencies of those that completed."""
    questions = itertools.cycle(queries)
    latencies: list[float] = []
    failures = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        stop = time.perf_counter() + seconds

        async def one_client() -> None:
            nonlocal failures
            while time.perf_counter() < stop:
                t = time.perf_counter()
                reply = await client.get("/v1/search", params={"q": next(questions), "top_k": 5})
                if reply.status_code == 200:
                    latencies.append((time.perf_counter() - t) * 1000)
                else:
                    failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "searches_per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies),
        "p99_ms": percentile(latencies, 0.99),
        "completed": len(latencies),
        "failed": failures,
    }


def _memory_mb(pid: int) -> dict[str, float]:
    """The process's resident memory now and at its peak (Linux /proc), in MB."""
    fields = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) / 1024
    return fields


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", required=True, help="an eval file; its questions are asked")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with open(args.questions, encoding="utf-8") as rows:
        queries = [json.loads(line)["question"] for line in rows if line.strip()]
    with running_service() as service:
        asyncio.run(_load(service.base, queries, 4, 3.0))  # warm-up: first requests pay imports
        results = [asyncio.run(_load(service.base, queries, n, args.seconds)) for n in args.clients]
        memory = _memory_mb(service.pid)
    print(f"command: {' '.join(sys.argv)}")
    print(f"server resident memory: {memory['VmRSS']:.0f} MB now, {memory['VmHWM']:.0f} MB at peak")
    for r in results:
        print(
            f"{r['clients']:3d} clients: {r['searches_per_s']:6.1f} searches/s   "
            f"p50 {r['p50_ms']:7.1f} ms   p99 {r['p99_ms']:7.1f} ms   "
            f"({r['completed']} completed, {r['failed']} failed)"
        )


if __name__ == "__main__":
    main()
