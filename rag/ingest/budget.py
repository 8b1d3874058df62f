"""A time limit on the work one bulletin may cost, checked as parsing and chunking go.

Every stage is meant to be linear in the text (a page of the archive parses and chunks in about
50 ms), and the loader refuses files over a size limit before reading them; the deadline is the
backstop for what neither foresaw: a bulletin that still takes this long is refused by name
rather than holding the build for good.

The time is the parsing thread's CPU time, not the clock's: it measures the work, so a machine
busy with other things does not refuse a bulletin it would take in when idle.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from rag.ingest.load import BulletinError

# CPU seconds for each of parsing and chunking one bulletin: 200 times what a page takes. A
# file of 200,000 short lines, the worst measured, parses in 4.7 s.
MAX_SECONDS = 10.0


@dataclass
class Deadline:
    """When the work on one bulletin (`source`, for the message) must be done by."""

    source: str
    stage: str  # "parsing" or "chunking"
    seconds: float = field(default_factory=lambda: MAX_SECONDS)
    _at: float = field(init=False)

    def __post_init__(self) -> None:
        self._at = time.thread_time() + self.seconds

    def check(self) -> None:
        """Raise BulletinError, naming the file, once the time is up."""
        if time.thread_time() >= self._at:
            raise BulletinError(
                f"{self.source}: {self.stage} took over {self.seconds:g} s of CPU time (a page "
                "takes well under one); split the file into smaller bulletins"
            )


# For callers that bound nothing (the parser's pieces when used alone, in tests).
UNBOUNDED = Deadline("", "", math.inf)
