"""A `milvus-lite server` in its own process, for tests that talk to Milvus over its URI.

The process can be killed and restarted mid-test (same port, same data), so a test can lose
Milvus in the middle of a request and see it come back. It binds 127.0.0.1 only: the server's
own default host is 0.0.0.0, which would expose the test data to the whole network.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from pymilvus import MilvusClient

READY_TIMEOUT = 60.0  # a cold start imports pyarrow, grpc and jieba: seconds, not milliseconds
STOP_TIMEOUT = 10.0
PROBE_TIMEOUT = 1.0  # per probe; without it pymilvus retries a dead server for minutes


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick on 127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MilvusServer:
    """One server process on a fixed port and data path; `uri` stays valid across restarts."""

    def __init__(self, db_path: Path, port: int) -> None:
        self.db_path = db_path
        self.port = port
        self.uri = f"http://127.0.0.1:{port}"
        # A file, not a pipe: nobody reads a pipe while the test runs, and a full one would
        # block the server mid-request. Appended to, so a restart keeps the earlier output.
        self.log_path = db_path.parent / f"{db_path.name}.server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process and return once it answers `list_collections()`."""
        # milvus-lite 3 is pure Python; its "--data-dir" is the .db path, a folder it creates.
        # `sys.executable -m` runs the venv's milvus-lite whatever PATH says.
        command = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(self.db_path)]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            # Its own session, so stop() signals the whole group: nothing left holding the port.
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._answers():
            if self._proc.poll() is not None:
                self._fail(f"milvus-lite server exited with {self._proc.returncode}")
            if time.monotonic() > deadline:
                self.kill()
                self._fail(f"milvus-lite server not ready after {READY_TIMEOUT:.0f} s")
            time.sleep(0.2)

    def _answers(self) -> bool:
        try:
            # Dedicated: the probe must not share (and then close) the connection that the
            # test's own clients get from pymilvus's connection manager for the same URI.
            client = MilvusClient(self.uri, timeout=PROBE_TIMEOUT, dedicated=True)
        except Exception:
            return False
        try:
            client.list_collections(timeout=PROBE_TIMEOUT)
            return True
        except Exception:
            return False
        finally:
            client.close()

    def _fail(self, reason: str) -> None:
        tail = self.log_path.read_bytes()[-4000:].decode(errors="replace")
        raise RuntimeError(f"{reason}; {self.log_path} ends:\n{tail}")

    def _signal(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError):  # the group is already gone
            os.killpg(self._proc.pid, sig)

    def kill(self) -> None:
        """Kill the server now (SIGKILL, no shutdown), as a crash or OOM kill would."""
        if self._proc is None:
            return
        self._signal(signal.SIGKILL)
        self._proc.wait()
        self._proc = None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within STOP_TIMEOUT."""
        if self._proc is None:
            return
        self._signal(signal.SIGTERM)
        try:
            self._proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self._proc.wait()
        self._proc = None

    def restart(self) -> None:
        """Kill the server if it runs, then start it again on the same port and data."""
        self.kill()
        self.start()


@contextlib.contextmanager
def milvus_server(db_path: Path) -> Iterator[MilvusServer]:
    """A running server on 127.0.0.1 and a free port over `db_path`; stopped on exit."""
    server = MilvusServer(db_path, free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
