"""Speak: a caller's synthesis request, admitted by its cost, in its turn on the engine (streamed or whole).

`enter` takes the caller's place in the engine's line (fair across callers, `engines.runtime.work_queue`) and
then asks admission for the request's estimated compute (`service.admission.speech_cost`); a refusal
of either leaves nothing behind: the place is given up and nothing is spent. `stream` and
`synthesize` are `engines.runtime.timing`'s, in that turn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from engines.audio import join
from engines.base import AudioChunk, SynthesisRequest
from engines.runtime import registry, timing, work_queue
from engines.runtime.timing import RunStats
from engines.runtime.work_queue import Ticket

from . import admission
from .caller import Caller


def enter(
    caller: Caller, engine_id: str, request: SynthesisRequest, cancelled: Callable[[], bool] | None = None
) -> Ticket:
    """The caller's place in the engine's line for `request`, admitted by its cost (`BusyError` when
    the line or the caller's share of it is full, `RateLimited` past the caller's allowances). Once
    metered, a request the engine refuses without its model (`registry.check`: e.g. an unknown voice)
    is refused at once, before any model loads; a refused request counts against the caller's
    allowances as it did when the engine refused it, so no refusal is a way past the meter."""
    ticket = timing.enter(engine_id, request, cancelled, caller=caller.bucket)
    try:
        admission.admit(caller, compute_s=admission.speech_cost(engine_id, request.text))
        registry.check(engine_id, request)
    except BaseException:
        ticket.leave()
        raise
    return ticket


def wait_line(ticket: Ticket) -> str:
    """One sentence for a waiting caller: place in line and the estimated wait (labelled as an estimate)."""
    return work_queue.wait_line(ticket)


def stream(
    caller: Caller,
    engine_id: str,
    request: SynthesisRequest,
    stats: RunStats,
    cancelled: Callable[[], bool] | None = None,
    ticket: Ticket | None = None,
) -> Iterator[AudioChunk]:
    """The engine's chunks for `request` in the caller's turn (`ticket`, else one taken here), filling `stats`."""
    ticket = ticket or enter(caller, engine_id, request, cancelled)
    yield from timing.timed_stream(engine_id, request, stats, cancelled, ticket=ticket)


def synthesize(
    caller: Caller, engine_id: str, request: SynthesisRequest, cancelled: Callable[[], bool] | None = None
) -> tuple[np.ndarray, list[AudioChunk], RunStats]:
    """The whole clip for `request` in the caller's turn, with the run's figures."""
    ticket = enter(caller, engine_id, request, cancelled)
    stats = RunStats(engine=engine_id)
    chunks = list(timing.timed_stream(engine_id, request, stats, cancelled, ticket=ticket))
    return join(chunks), chunks, stats
