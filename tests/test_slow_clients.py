"""Slow and many clients against the real server process (api.server) on 127.0.0.1.

A thousand connections that send a request a byte at a time must not stop the service answering
everyone else; the server cuts each off at its deadline, refuses connections over its cap with
503 and Retry-After, and its log stays small whatever the flood.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fake_service import build_fake_index, fake_server

pytestmark = pytest.mark.server

SLOW = 1000
TIMEOUT = 4.0  # the server's RAG_REQUEST_TIMEOUT in these tests, seconds
# Long enough for every slow connection to be cut off and opened again at least twice.
NORMAL_SECONDS = 3 * TIMEOUT
LOG_RATE, LOG_BURST = 20, 100
FLOOD = 4000  # malformed requests, each of which uvicorn logs
LINE_BYTES = 150  # more than any line of the server's log takes


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    index_dir = tmp_path_factory.mktemp("slow") / "index"
    build_fake_index(index_dir)
    return index_dir


@pytest.fixture(scope="module", autouse=True)
def open_files() -> Iterator[None]:
    """Room for the test's own thousand sockets: the soft limit raised to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * SLOW if hard == resource.RLIM_INFINITY else min(4 * SLOW, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 2 * SLOW, "too few open files"
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class SlowClients:
    """`count` connections, each sending a request so slowly that it never completes: half a
    head a header a second, half a whole head then a body a byte a second. One the server
    closes is opened again, so `count` stay held for as long as the test runs."""

    def __init__(self, port: int, count: int) -> None:
        self.port, self.count = port, count
        self.open = 0
        self.peak = 0
        self.lifetimes: list[float] = []  # seconds from opening to the server's close
        self.stop = asyncio.Event()

    async def one(self, i: int) -> None:
        while not self.stop.is_set():
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            opened = time.monotonic()
            self.open += 1
            self.peak = max(self.peak, self.open)
            try:
                if i % 2:
                    writer.write(b"GET /v1/search?q=%E5%8C%97%E4%BA%AC HTTP/1.1\r\nHost: x\r\n")
                    drip = b"X-Slow: 1\r\n"
                else:
                    writer.write(
                        b"POST /v1/search HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                        b'{"query": "'
                    )
                    drip = b"x"
                await writer.drain()
                while not self.stop.is_set():
                    try:
                        data = await asyncio.wait_for(reader.read(1024), timeout=1.0)
                    except TimeoutError:
                        writer.write(drip)
                        await writer.drain()
                        continue
                    if not data:  # the server closed the connection
                        self.lifetimes.append(time.monotonic() - opened)
                        break
            except (ConnectionError, OSError):
                self.lifetimes.append(time.monotonic() - opened)
            finally:
                self.open -= 1
                writer.close()


async def normal_clients(base: str, seconds: float, workers: int = 4) -> list[tuple[int, float]]:
    """(status, seconds) of every request of `workers` ordinary clients over `seconds`."""
    answers: list[tuple[int, float]] = []
    end = time.monotonic() + seconds

    async def worker(n: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            while time.monotonic() < end:
                started = time.monotonic()
                if n % 2:
                    reply = await client.get("/v1/search", params={"q": "北京商业航天"})
                else:
                    reply = await client.post("/v1/search", json={"query": "四川光伏产业"})
                answers.append((reply.status_code, time.monotonic() - started))

    await asyncio.gather(*(worker(n) for n in range(workers)))
    return answers


def _flood(port: int, count: int) -> None:
    """Malformed request lines on fresh connections, as fast as the server takes them."""
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"\x00\x01 garbage \xff\r\n\r\n")
            while s.recv(4096):
                pass


def test_a_thousand_slow_connections_do_not_stop_the_service(index_dir, tmp_path):
    env = {
        "RAG_REQUEST_TIMEOUT": str(TIMEOUT),
        "RAG_LOG_LINES_PER_SECOND": str(LOG_RATE),
        "RAG_LOG_BURST_LINES": str(LOG_BURST),
    }
    began = time.monotonic()
    with fake_server(tmp_path, index_dir, **env) as (base, log):
        port = int(base.rsplit(":", 1)[1])

        async def scenario() -> tuple[SlowClients, list[tuple[int, float]]]:
            slow = SlowClients(port, SLOW)
            tasks = [asyncio.create_task(slow.one(i)) for i in range(SLOW)]
            while slow.open < SLOW:  # all held before the ordinary clients begin
                await asyncio.sleep(0.05)
            answers = await normal_clients(base, NORMAL_SECONDS)
            slow.stop.set()
            await asyncio.gather(*tasks)
            return slow, answers

        slow, answers = asyncio.run(scenario())
        started = time.monotonic()
        _flood(port, FLOOD)
        flooded = time.monotonic() - started
        assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200
    elapsed = time.monotonic() - began  # the server's whole life, start-up included
    log_bytes = log.stat().st_size
    text = log.read_text(errors="replace")

    statuses = [status for status, _ in answers]
    times = sorted(seconds for _, seconds in answers)
    p99 = times[int(0.99 * (len(times) - 1))]
    print(
        f"\nslow connections held: {slow.peak} at once, {len(slow.lifetimes)} cut off by the "
        f"server (median lifetime {statistics.median(slow.lifetimes or [0]):.1f} s); ordinary "
        f"requests: {len(answers)}, {statuses.count(200)} answered 200, p99 {p99:.3f} s; "
        f"flood of {FLOOD} malformed requests in {flooded:.1f} s; log {log_bytes} bytes"
    )
    assert slow.peak >= SLOW
    assert len(answers) >= 20 and statuses.count(200) == len(answers), set(statuses)
    assert p99 < 2.0
    # Every slow connection is cut off by its deadline, none kept longer than generously twice
    # it; each of the thousand was cut at least once while the ordinary clients ran.
    assert len(slow.lifetimes) >= SLOW
    assert max(slow.lifetimes) < 2 * TIMEOUT + 2
    # The log took at most its burst and its rate over the run (and a note every 10 s), though
    # the flood alone asked for thousands of lines; and it says what it dropped.
    assert log_bytes < (LOG_BURST + LOG_RATE * elapsed + elapsed / 10 + 1) * LINE_BYTES
    assert "log lines dropped" in text
    assert text.count("log lines dropped") <= elapsed / 10 + 1


def test_connections_over_the_cap_get_503_and_retry_after(index_dir, tmp_path):
    cap = 20
    with fake_server(tmp_path, index_dir, RAG_MAX_CONNECTIONS=str(cap)) as (base, _):
        port = int(base.rsplit(":", 1)[1])
        held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(cap)]
        try:
            time.sleep(0.5)  # the server has accepted them all
            with socket.create_connection(("127.0.0.1", port), timeout=10) as extra:
                reply = b""
                while chunk := extra.recv(4096):
                    reply += chunk
            head, _, body = reply.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503"), reply
            assert b"retry-after: 1" in head.lower()
            assert b"too_many_connections" in body
        finally:
            for s in held:
                s.close()
        time.sleep(0.5)  # closed on the server's side too
        assert httpx.get(f"{base}/v1/search", params={"q": "北京"}, timeout=10).status_code == 200
