"""The per-client rate limit: a token bucket per client, `API_RATE_PER_MIN` requests a minute.

Each client (an API key's owner id, else a client address) has a bucket holding up to `rate`
tokens that refills at `rate` per minute; a request that starts work takes one, and a client with
an empty bucket is told how many seconds until the next token (`Retry-After`). Memory is bounded:
at most `max_clients` buckets are kept, the least recently seen dropped first (a dropped bucket
was idle the longest; it comes back full, which only ever errs towards letting a client in).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from engines.settings import env_int

DEFAULT_RATE_PER_MIN = 30


def rate_from_env() -> int:
    """`API_RATE_PER_MIN` (default 30; 0 turns the limit off; a bad value gives the default)."""
    return env_int("API_RATE_PER_MIN", DEFAULT_RATE_PER_MIN, minimum=0)


class RateLimiter:
    """Token buckets by client id; `take(client)` is 0.0 when allowed, else the seconds to wait."""

    def __init__(
        self, rate_per_min: int, max_clients: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.max_clients, self.clock = rate_per_min, max_clients, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, when)
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """Take one token for `client`: 0.0 if it had one, else the seconds until it will have one."""
        if self.rate <= 0:
            return 0.0
        per_second = self.rate / 60.0
        now = self.clock()
        with self._lock:
            tokens, when = self._buckets.pop(client, (float(self.rate), now))
            tokens = min(float(self.rate), tokens + (now - when) * per_second)
            wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / per_second
            if not wait:
                tokens -= 1.0
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return wait

    @staticmethod
    def retry_after(wait_s: float) -> str:
        """The `Retry-After` header value for a wait: whole seconds, at least 1."""
        return str(max(1, math.ceil(wait_s)))
