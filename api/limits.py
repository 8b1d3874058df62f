"""How many searches run at once: a few slots, a short wait for one, then 503 with Retry-After.

Searches are CPU-bound; past a few at once on a small machine each only gets slower, and a
flood would queue without end in the thread pool. A bounded wait keeps a burst of ordinary
clients served while telling an excess to come back, rather than holding it forever.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from api.errors import ApiError

# Seconds a client is told to wait before trying again; a search takes milliseconds.
RETRY_AFTER = "1"


class SearchSlots:
    """At most `size` searches at once; a search waits up to `wait` seconds for a slot."""

    def __init__(self, size: int, wait: float) -> None:
        self.size, self.wait = size, wait
        # Created on first use, inside the server's event loop.
        self._free: anyio.Semaphore | None = None

    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """A slot for the duration of the block, or ApiError 503 when none frees in time."""
        if self._free is None:
            self._free = anyio.Semaphore(self.size)
        free = self._free
        acquired = False
        # Only the wait is bounded, never the search itself.
        with anyio.move_on_after(self.wait):
            await free.acquire()
            acquired = True
        if not acquired:
            raise ApiError(
                503,
                "busy",
                f"{self.size} searches are already running; retry in {RETRY_AFTER} s",
                headers={"Retry-After": RETRY_AFTER},
            )
        try:
            yield
        finally:
            free.release()
