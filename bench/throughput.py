"""Searches per second and latency with 1, 8 and 32 clients asking at once, over HTTP.

Starts `rag serve` on a free local port (the index must exist: `rag index`), then, for each
number of clients, keeps that many requests in flight for a fixed time, each client asking the
next question of an eval file as soon as its last answer came. The clients run on the same two
cores as the server, so the figures are what one machine serves to itself:
- `--load httpx` (the default): asyncio clients in this process. Python clients are not free:
  each request costs the client a few milliseconds of the cores the server needs.
- `--load wrk`: Debian's wrk (C, one thread, an epoll loop) asks instead, from a second
  process, cycling through the same questions; it takes far less of the cores, so the figures
  are nearer what the server could serve to other machines. `apt-get install wrk`.
Run on the archive:
    RAG_INDEX_DIR=index-archive .venv/bin/python bench/throughput.py \\
        --questions eval/archive_questions.jsonl [--clients 1 8 32] [--seconds 20] [--load wrk]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import httpx

# bench/ scripts run as files, so their folder is on the path.
from http_latency import SERVE, percentile, running_service


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


# wrk cycles through the questions, each of its threads from its own place in the list.
_WRK_SCRIPT = """
local paths = {%s}
local n = 0
request = function()
  n = n %% #paths + 1
  return wrk.format("GET", paths[n])
end
"""
_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _wrk(base: str, queries: list[str], clients: int, seconds: float) -> dict[str, float]:
    """The same load as `_load`, asked by wrk: `clients` connections, one wrk thread."""
    paths = ", ".join(
        json.dumps("/v1/search?" + urllib.parse.urlencode({"q": q, "top_k": 5})) for q in queries
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT % paths)
    command = ["wrk", "-t1", f"-c{clients}", f"-d{seconds:.0f}s", "--timeout", "60s", "--latency"]
    out = subprocess.run(
        [*command, "-s", script.name, base], capture_output=True, text=True, check=True
    ).stdout

    def found(pattern: str) -> re.Match[str]:
        match = re.search(pattern, out, re.MULTILINE)
        if match is None:
            raise SystemExit(f"wrk printed no {pattern!r}:\n{out}")
        return match

    def ms(label: str) -> float:
        value, unit = found(rf"^\s*{label}\s+([\d.]+)(us|ms|s|m)\s*$").groups()
        return float(value) * _WRK_UNITS[unit]

    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = (int(bad.group(1)) if bad else 0) + (sum(map(int, errors.groups())) if errors else 0)
    return {
        "clients": clients,
        "searches_per_s": float(found(r"Requests/sec:\s+([\d.]+)").group(1)),
        "p50_ms": ms("50%"),
        "p99_ms": ms("99%"),
        "completed": int(found(r"(\d+) requests in").group(1)) - failed,
        "failed": failed,
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


def _cpu_seconds(pid: int) -> float:
    """The CPU time the process has used so far, user and system (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", required=True, help="an eval file; its questions are asked")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--load", choices=["httpx", "wrk"], default="httpx")
    parser.add_argument(
        "--without-encoder",
        action="store_true",
        help="serve with each question's vector kept after its first encoding "
        "(bench/recorded_service.py): what a search costs besides the encoder",
    )
    args = parser.parse_args()
    if args.load == "wrk" and shutil.which("wrk") is None:
        raise SystemExit("--load wrk needs wrk on the PATH: apt-get install wrk")
    load = _wrk if args.load == "wrk" else (lambda *a: asyncio.run(_load(*a)))
    with open(args.questions, encoding="utf-8") as rows:
        queries = [json.loads(line)["question"] for line in rows if line.strip()]
    recorded = (str(Path(__file__).with_name("recorded_service.py")),)
    with running_service(recorded if args.without_encoder else SERVE) as service:
        asyncio.run(_load(service.base, queries, 4, 3.0))  # warm-up: first requests pay imports
        if args.without_encoder:  # each question once, so that none is encoded under load
            with httpx.Client(base_url=service.base, timeout=60) as client:
                for q in queries:
                    client.get("/v1/search", params={"q": q, "top_k": 5}).raise_for_status()
        results = []
        for n in args.clients:
            # The server's CPU over the load, in cores: 2.0 on this machine is every core busy,
            # about 1.0 a process held by its one Python thread.
            cpu, started = _cpu_seconds(service.pid), time.perf_counter()
            results.append(load(service.base, queries, n, args.seconds))
            results[-1]["cores"] = (_cpu_seconds(service.pid) - cpu) / (
                time.perf_counter() - started
            )
        memory = _memory_mb(service.pid)
    encoder = "none: vectors kept from a first pass" if args.without_encoder else "the service's"
    print(f"command: {' '.join(sys.argv)} (clients: {args.load}; question encoder: {encoder})")
    print(f"server resident memory: {memory['VmRSS']:.0f} MB now, {memory['VmHWM']:.0f} MB at peak")
    for r in results:
        print(
            f"{r['clients']:3d} clients: {r['searches_per_s']:6.1f} searches/s   "
            f"p50 {r['p50_ms']:7.1f} ms   p99 {r['p99_ms']:7.1f} ms   "
            f"server CPU {r['cores']:.2f} cores   "
            f"({r['completed']} completed, {r['failed']} failed)"
        )


if __name__ == "__main__":
    main()
