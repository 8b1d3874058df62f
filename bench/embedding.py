"""Embedding speed on this machine: single-query latency and passage throughput.

Run: .venv/bin/python bench/embedding.py [--queries 200] [--passages 512]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from rag.ingest.tokens import count_tokens, get_encoding
from rag.model.embed import load_embedder
from rag.settings import Settings

BULLETIN = Path(__file__).resolve().parents[1] / "corpus" / "000_a1e9ce7368794dc6.txt"
QUERIES = [
    "北京商业航天2028目标是什么",
    "重庆工业投资增长多少",
    "What did Ningxia achieve in 2023?",
]


def passages_of_about(tokens: int, settings: Settings) -> list[str]:
    """Slices of the bulletin of roughly `tokens` model-visible tokens each."""
    text = "".join(BULLETIN.read_text(encoding="utf-8").split())
    enc = get_encoding(settings.tiktoken_encoding, settings.cache_dir)
    out, start = [], 0
    while start < len(text):
        end = start + 40
        while end < len(text) and count_tokens(text[start:end], enc) < tokens:
            end += 10
        out.append(text[start:end])
        start = end
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--passages", type=int, default=512)
    args = parser.parse_args()
    settings = Settings()

    started = time.perf_counter()
    embedder = load_embedder(settings)
    load_s = time.perf_counter() - started

    for q in QUERIES:  # warm-up
        embedder.encode_queries([q])
    latencies = []
    for i in range(args.queries):
        t = time.perf_counter()
        embedder.encode_queries([QUERIES[i % len(QUERIES)]])
        latencies.append((time.perf_counter() - t) * 1000)

    pool = passages_of_about(100, settings)
    batch = (pool * (args.passages // len(pool) + 1))[: args.passages]
    t = time.perf_counter()
    embedder.encode_passages(batch)
    rate = len(batch) / (time.perf_counter() - t)

    print(f"command: {' '.join(sys.argv)}")
    print(
        f"model: {embedder.model_id}  dim={embedder.dim}  torch threads={torch.get_num_threads()}"
    )
    print(f"model load: {load_s:.2f} s")
    latencies.sort()
    print(
        f"single short query: median {statistics.median(latencies):.1f} ms, "
        f"p90 {latencies[int(0.9 * len(latencies))]:.1f} ms over {len(latencies)} queries"
    )
    print(f"passages (~100 cl100k tokens, batch {embedder.batch_size}): {rate:.1f} passages/s")


if __name__ == "__main__":
    main()
