"""A model call that gives way: the engine's turn of the call running in this thread (`in_turn`, set by
`engines.runtime.timing` around each chunk), and `yielding`, which runs a call that can be cut short so that a
caller who has used the engine less lately may go first (the policy is `engines.runtime.work_queue`'s: it
decides when a running call gives way, and its line is where the call waits for its turn again).

Its own module so that a back-end (`engines.kokoro.backends`) can offer its calls without importing the
work queue, which imports the registry, which imports the back-ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from engines.base import EngineError

T = TypeVar("T")
Ticket = Any  # an `engines.runtime.work_queue.Ticket` (not imported here: see the docstring)

_TURN: ContextVar[Ticket | None] = ContextVar("engine_turn", default=None)


@contextmanager
def in_turn(ticket: Ticket | None) -> Iterator[None]:
    """The model calls made in this block are `ticket`'s (`yielding` finds it here)."""
    token = _TURN.set(ticket)
    try:
        yield
    finally:
        _TURN.reset(token)


def yielding(attempt: Callable[[Callable[[Callable[[], None]], None] | None], T]) -> T:
    """Run a model call that can be cut short and, if it gave way to another caller (see the module
    docstring), wait for the turn again and run it once more to its end. `attempt(offer)` makes the call;
    `offer(cut)`, when given, says how to cut it short (e.g. set ONNX Runtime's terminate flag) and must
    be called before the call starts; the second attempt gets no `offer`."""
    ticket = _TURN.get()
    if ticket is None or ticket.line.slots != 1:
        return attempt(None)
    try:
        return attempt(lambda cut: ticket.line.may_give_way(ticket, cut))
    except Exception:
        if not ticket.gave_way:
            raise
    finally:
        ticket.line.may_give_way(ticket, None)
    waited = time.monotonic()
    ticket.step_aside()
    if not ticket.resume():
        raise EngineError("The request left the line while it waited for its turn again.")
    ticket.paused_s += time.monotonic() - waited
    return attempt(None)
