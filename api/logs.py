"""The server log cannot grow faster than a set rate: a flood of bad requests, refused
connections or crashing searches would otherwise write megabytes a second (107 MB in 16 s was
seen). Lines over the rate are dropped and counted; the count is logged once lines flow again,
at most every NOTE_EVERY seconds, so the notes cannot become a flood of their own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

# The logger that reports dropped lines; its own records are never dropped.
NOTE = logging.getLogger("api.logs")
NOTE_EVERY = 10.0


class RateLimit(logging.Filter):
    """A token bucket over every record of the handlers it is attached to: `burst` lines at
    once, `per_second` sustained. One instance is shared by all the server's handlers, so the
    bound holds for the whole log."""

    def __init__(
        self,
        per_second: float = 50.0,
        burst: int = 500,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.per_second, self.burst, self.clock = per_second, burst, clock
        self.tokens = float(burst)
        self.last = clock()
        self.dropped = 0
        self.noted_at = float("-inf")
        self._lock = threading.Lock()  # the thread pool logs too

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "dropped_note", False):
            return True
        with self._lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.per_second)
            self.last = now
            if self.tokens < 1:
                self.dropped += 1
                return False
            self.tokens -= 1
            dropped = 0
            if self.dropped and now - self.noted_at >= NOTE_EVERY:
                dropped, self.dropped, self.noted_at = self.dropped, 0, now
        if dropped:
            # Logged before the line that let it through, so the gap shows where it was.
            NOTE.warning(
                "%d log lines dropped: more than %g a second",
                dropped,
                self.per_second,
                extra={"dropped_note": True},
            )
        return True
