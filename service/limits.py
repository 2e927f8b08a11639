"""Per-client allowances: a token bucket per client, refilled at a rate a minute.

`RateLimiter(per_min)` keeps, per client (an API key's owner id, else a client address), a bucket of
up to `per_min` units that refills at `per_min` a minute. `take(client)` spends one unit (a request);
`take(client, amount)` spends any amount (seconds of compute, bytes, characters). A client may spend
when its bucket holds the amount, or, for an amount larger than the whole bucket, when the bucket is
full; what it spends beyond what it has becomes a debt that the refill pays back before the next
request passes. A client that may not spend is told how many seconds until it may (`Retry-After`).
Memory is bounded: at most `max_clients` buckets are kept, the least recently seen dropped first (a
dropped bucket was idle the longest; it comes back full, which only ever errs towards letting a
client in).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from engines.settings import settings


def rate_from_env() -> int:
    """`API_RATE_PER_MIN` (default 30; 0 turns the limit off)."""
    return settings().api_rate_per_min


class RateLimiter:
    """Token buckets by client id; `take(client, amount)` is 0.0 when allowed (and spent), else the
    seconds to wait (nothing spent); `wait(client, amount)` says the same without spending."""

    def __init__(
        self, rate_per_min: float, max_clients: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.max_clients, self.clock = rate_per_min, max_clients, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, when)
        self._lock = threading.Lock()

    def take(self, client: str, amount: float = 1.0) -> float:
        """Spend `amount` for `client`: 0.0 if it could, else the seconds until it can."""
        return self._use(client, amount, spend=True)

    def wait(self, client: str, amount: float = 1.0) -> float:
        """The seconds until `client` could spend `amount` (0.0: now); spends nothing."""
        return self._use(client, amount, spend=False)

    def _use(self, client: str, amount: float, spend: bool) -> float:
        if self.rate <= 0:
            return 0.0
        per_second = self.rate / 60.0
        need = min(float(amount), float(self.rate))  # a larger amount needs a full bucket
        now = self.clock()
        with self._lock:
            tokens, when = self._buckets.pop(client, (float(self.rate), now))
            tokens = min(float(self.rate), tokens + (now - when) * per_second)
            wait = 0.0 if tokens >= need else (need - tokens) / per_second
            if spend and not wait:
                tokens -= float(amount)
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return wait

    @staticmethod
    def retry_after(wait_s: float) -> str:
        """The `Retry-After` header value for a wait: whole seconds, at least 1."""
        return str(max(1, math.ceil(wait_s)))
