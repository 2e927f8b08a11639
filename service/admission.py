"""The one admission every costly use case asks, with its caller and its cost, before it starts.

Per caller (`Caller.bucket`: an API key's owner, else a client address), each refilled a minute:
- requests: `API_RATE_PER_MIN` (default 30), the ceiling on calls that start work;
- compute: `CALLER_COMPUTE_S_PER_MIN` (default 60) estimated seconds of compute, where a synthesis or
  a plan costs its characters times the engine's or the G2P's measured seconds per character
  (`speech_cost`, `plan_cost`); one call may cost up to `MAX_CALL_MINUTES` (10) minutes' worth, paid
  back before the caller's next call passes (a batch is one call: admitted by its total);
- bytes: `CALLER_UPLOAD_MB_PER_MIN` (default 64) of uploads and saved voices;
- characters: `CALLER_CHARS_PER_MIN` (default 20,000) of text read by the Arena's classifier.

A request counts once however many use cases it calls (`Caller.request_id`); the operator (the CLI,
code in process) has no allowances. `admit(caller, ...)` checks every allowance first and spends only
when all pass: a refusal (`RateLimited`, with `retry_after_s`, one sentence) costs the caller nothing.
A cost no allowance can ever hold is an `InputError` ("split it"). Each face maps `RateLimited` once:
429 + `Retry-After`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from engines.base import InputError, RateLimited
from engines.runtime import work_queue
from engines.settings import settings

from .caller import Caller
from .limits import RateLimiter, rate_from_env

MAX_REQUESTS_REMEMBERED = 10_000
MAX_CALL_MINUTES = 10  # a call may cost this many minutes of the compute allowance at most
# Until an engine has measured its speed: Kokoro int8 on this 2-core CPU spends ~0.35 s of compute per
# second of audio, ~14 characters of English (FACTS.md), so ~0.025 s a character.
UNMEASURED_S_PER_CHAR = 0.025
# misaki G2P of a ~50-character clause took ~3 ms here (FACTS.md): 6e-5 s a character.
G2P_S_PER_CHAR = 6e-5


def allowances() -> tuple[int, float, int, int]:
    """The allowances as configured now (read on every call, so that operators and tests can set them)."""
    s = settings()
    return rate_from_env(), s.caller_compute_s_per_min, s.caller_upload_mb_per_min, s.caller_chars_per_min


class Admission:
    """The allowances of every caller; `admit` spends from all of them or from none."""

    def __init__(self, rate: int, compute_s: float, upload_mb: int, chars: int) -> None:
        self.requests = RateLimiter(rate)
        self.compute = RateLimiter(compute_s)
        self.bytes = RateLimiter(upload_mb * 1024 * 1024)
        self.chars = RateLimiter(chars)
        self._counted: OrderedDict[str, None] = OrderedDict()  # request ids already counted (bounded)
        self._lock = threading.Lock()

    def admit(
        self, caller: Caller, *, compute_s: float = 0.0, nbytes: int = 0, chars: int = 0, request: bool = True
    ) -> None:
        """Spend this call's cost from `caller`'s allowances, or raise `RateLimited` spending nothing."""
        if caller.is_operator:
            return
        _too_large(self, compute_s, nbytes, chars)
        request = request and (caller.request_id is None or caller.request_id not in self._counted)
        asks = [
            (self.requests, 1.0 if request else 0.0, _too_many_requests),
            (self.compute, compute_s, _too_much_compute),
            (self.bytes, float(nbytes), _too_many_bytes),
            (self.chars, float(chars), _too_many_chars),
        ]
        asks = [(limiter, amount, say) for limiter, amount, say in asks if amount > 0]
        bucket = caller.bucket
        with self._lock:  # check all, then spend all: two calls of one caller cannot both slip through
            for limiter, amount, say in asks:
                wait = limiter.wait(bucket, amount)
                if wait:
                    raise RateLimited(say(limiter, wait), wait)
            for limiter, amount, _ in asks:
                limiter.take(bucket, amount)
            if request and caller.request_id is not None:
                self._counted[caller.request_id] = None
                while len(self._counted) > MAX_REQUESTS_REMEMBERED:
                    self._counted.popitem(last=False)


def _too_large(admission: Admission, compute_s: float, nbytes: int, chars: int) -> None:
    cap = admission.compute.rate * MAX_CALL_MINUTES
    if admission.compute.rate > 0 and compute_s > cap:
        raise InputError(
            f"This request needs about {compute_s:.0f} s of compute, more than one client may use at once "
            f"({cap:.0f} s); please split it into smaller requests."
        )
    if admission.bytes.rate > 0 and nbytes > admission.bytes.rate:
        raise InputError(f"This upload is larger than one client may send in a minute ({_mb(admission.bytes.rate)}).")
    if admission.chars.rate > 0 and chars > admission.chars.rate:
        raise InputError(f"This text is too long: at most {admission.chars.rate:,.0f} characters.")


def _retry(wait: float) -> str:
    return RateLimiter.retry_after(wait)


def _mb(nbytes: float) -> str:
    return f"{nbytes / 1024 / 1024:.0f} MB"


def _too_many_requests(limiter: RateLimiter, wait: float) -> str:
    return f"Too many requests: at most {limiter.rate} a minute from one client; try again in {_retry(wait)} s."


def _too_much_compute(limiter: RateLimiter, wait: float) -> str:
    return (
        f"You have used your share of the server's compute for now (about {limiter.rate:.0f} s a minute for "
        f"one client); try again in {_retry(wait)} s."
    )


def _too_many_bytes(limiter: RateLimiter, wait: float) -> str:
    return f"Too much uploaded: at most {_mb(limiter.rate)} a minute from one client; try again in {_retry(wait)} s."


def _too_many_chars(limiter: RateLimiter, wait: float) -> str:
    return (
        f"Too much text: at most {limiter.rate:,.0f} characters a minute from one client; "
        f"try again in {_retry(wait)} s."
    )


_current: tuple[tuple, Admission] | None = None
_current_lock = threading.Lock()


def current() -> Admission:
    """The server's admission (rebuilt, with fresh allowances, when its settings change)."""
    global _current
    wanted = allowances()
    with _current_lock:
        if _current is None or _current[0] != wanted:
            _current = (wanted, Admission(*wanted))
        return _current[1]


def admit(caller: Caller, *, compute_s: float = 0.0, nbytes: int = 0, chars: int = 0, request: bool = True) -> None:
    """`current().admit(...)`: spend this call's cost from `caller`'s allowances or raise `RateLimited`."""
    current().admit(caller, compute_s=compute_s, nbytes=nbytes, chars=chars, request=request)


def speech_cost(engine_id: str, text: str) -> float:
    """Estimated seconds of compute to speak `text` on the engine: its measured seconds per character
    (from its load-time measurement and its runs; until then the unmeasured default) times the characters."""
    return (work_queue.line(engine_id).s_per_char or UNMEASURED_S_PER_CHAR) * len(text)


def plan_cost(text: str) -> float:
    """Estimated seconds of compute for the G2P of `text` (a plan for the browser)."""
    return G2P_S_PER_CHAR * len(text)
