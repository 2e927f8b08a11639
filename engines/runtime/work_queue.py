"""One work queue per engine, fair across callers: admission, turns, place in line, wait estimates.

Every way in (the page's events, the Gradio API and MCP, `/v1`, the CLI) takes its turn here, through
`engines.runtime.timing`: a request enters its engine's line (`enter`, or `turn` as a context manager), waits
until it reaches the head and the engine is free, runs, and leaves, which hands the engine to the next
one. A plain lock would let any waiter win; here the order of service is fixed.

Fair share: each ticket carries its caller's key (`service.caller.Caller.bucket`: an API key's owner or a
client address; None for the operator and tests). The line serves first the caller who has used the
engine least lately (engine seconds, halving every `USAGE_HALF_LIFE_S`; ties: the caller served longest
ago, or never, first) and each caller's own requests first come, first served; so one caller's many long
requests cannot push another caller's short one behind them, and a caller who has just had many seconds
of the engine waits while those who have had little go (a plain round robin would serve the heavy caller
first whenever it was served longer ago). At most `MAX_WAITING_PER_CALLER` (default 2) of one caller's
tickets may wait; past it `enter` raises `BusyError` at once. On an engine that serves one request at a
time, a running request steps aside while each of its chunks is delivered (`Ticket.step_aside`: the
engine is free while the chunk is encoded and sent, however slowly its client reads) and comes back first
in its own caller's line for the next one (`Ticket.resume`), so neither a long request nor a slow reader
holds everyone else's first audio. A chunk's model call can also give way mid-way (`engines.runtime.give_way`,
around a call that can be cut short, e.g. by ONNX Runtime's terminate flag): when a caller who has used
the engine less lately arrives while it runs (and the request has already delivered its first chunk),
the call is cut short, the newcomer goes, and the chunk is computed again
once its turn is back, that time to its end (so a chunk gives way at most once: a heavy caller pays with
part of one chunk's compute, and always gets on).

Admission: at most `max_waiting(engine_id)` requests may wait for one engine (`MAX_WAITING`, or by
default as many as the engine's speed measured at load lets start within `WAIT_TARGET_S` for a
typical request); past it `enter` raises `BusyError` at once with a `retry_after_s`: the estimated
time for the work already in line.

Estimates: each ticket carries a cost, estimated seconds of compute (`cost_of`: characters times the
engine's measured seconds per character, first from its load-time measurement, then from its runs).
A waiting ticket's estimated wait is what is left of the running work plus the cost of the tickets
ahead of it; it is an estimate and is labelled so wherever it is shown.

Slots: an engine that serves several requests at once (`EngineInfo.concurrent_requests`: Qwen3-TTS,
whose batcher puts concurrent requests' sentences in shared `generate` calls) runs that many tickets
from the head of its line together; the others (Kokoro) one. Order of service stays first come, first
served; a waiting ticket's estimate counts the work ahead of it shared over the slots.

Claims: an engine that serves several requests in one model call may instead take the tickets from
the head of its line that it can join (`Ticket.claim`); they then count as served with it (the
results' hand-off is the batching engine's to do).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from engines.base import BusyError, EngineError
from engines.runtime import registry
from engines.settings import settings

log = logging.getLogger(__name__)

WAIT_TARGET_S = 30.0  # the last one waiting should start within about this long (default bound)
TYPICAL_CHARS = 200  # a typical request (the page's examples are 90-280 characters) for the default bound
UNMEASURED_MAX_WAITING = 8  # the bound until the engine has measured its speed
MAX_WAITING_CAP = 64
MAX_CALLERS_REMEMBERED = 10_000  # callers whose last turn and recent use are remembered
USAGE_HALF_LIFE_S = 60.0  # a caller's recent use of the engine halves every minute
POLL_S = 0.25  # how often a waiter looks whether its client has gone
ASIDE_GRACE_S = 0.25  # how long the engine waits for a lighter caller's next chunk while it delivers one
SMOOTHING = 0.3  # weight of the newest run in the measured speed


def max_waiting_per_caller() -> int:
    """`MAX_WAITING_PER_CALLER`: how many of one caller's requests may wait for one engine (default 2)."""
    return settings().max_waiting_per_caller


class Ticket:
    """One request's place in its engine's line; a context manager that leaves the line on exit."""

    def __init__(
        self, line: EngineQueue, cost_s: float, cancelled: Callable[[], bool] | None, caller: str | None = None
    ) -> None:
        self.line, self.cost_s, self.cancelled = line, max(0.0, float(cost_s)), cancelled
        self.caller = caller  # whose request (the fair share's key); None: the operator's
        self.arrived = time.monotonic()
        self.started: float | None = None
        self.ran_s = 0.0  # engine seconds of its earlier turns (it steps aside between chunks)
        self.aside = False  # stepped aside: its chunk is being delivered, the engine is free
        self.aside_at = 0.0
        self.left = False
        self.give_way: Callable[[], None] | None = None  # cuts short its model call in progress (`yielding`)
        self.gave_way = False  # its call was cut short for another caller
        self.paused_s = 0.0  # seconds waited again after giving way (not its run's time; `take_paused`)
        self.leader: Ticket | None = None  # set when served in one batch with an earlier ticket

    @property
    def engine_id(self) -> str:
        return self.line.engine_id

    @property
    def waited_s(self) -> float:
        """Seconds from arrival until the turn began (or until now while waiting)."""
        return (self.started if self.started is not None else time.monotonic()) - self.arrived

    @property
    def has_turn(self) -> bool:
        return self.started is not None

    def position(self) -> int:
        """0 once its turn has come; else its place in line (1: next)."""
        return self.line.position(self)

    def estimate_s(self) -> float | None:
        """Estimated seconds until its turn (None until the engine's speed is measured)."""
        return self.line.estimate(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to `timeout` seconds for the turn; True once it has come."""
        return self.line.wait(self, timeout)

    def wait_turn(self, cancelled: Callable[[], bool] | None = None) -> bool:
        """Wait for the turn, looking every `POLL_S` whether the client has gone (and whether a chunk's
        delivery keeps the engine no longer, `EngineQueue._promote`): False (and out of the line) if it has."""
        cancelled = cancelled or self.cancelled
        while not self.wait(POLL_S):
            if cancelled and cancelled():
                self.leave()
                return False
        return True

    def claim(self, limit: int, match: Callable[[Ticket], bool]) -> list[Ticket]:
        """For an engine that batches: take up to `limit` waiting tickets from the head of the line
        that `match` (e.g. same voice and language), to serve them in this ticket's model call."""
        return self.line.claim(self, limit, match)

    def leave(self) -> None:
        """Out of the line (done, failed or gone); the engine passes to the next one. Idempotent."""
        self.line.leave(self)

    def step_aside(self) -> None:
        """A running request with a chunk to deliver: out of the engine while it is delivered, so the
        next in line may run meanwhile (an engine that serves one request at a time; otherwise nothing
        happens). `resume` puts it back in line, first among its own caller's requests."""
        if self.leader is None:
            self.line.step_aside(self)

    def resume(self, cancelled: Callable[[], bool] | None = None) -> bool:
        """After `step_aside`: back in line and wait for the turn. False if the client left meanwhile
        (then out of the line)."""
        self.line.resume(self)
        return self.wait_turn(cancelled)

    def take_paused(self) -> float:
        """Seconds this ticket waited again after giving way since last asked (`engines.runtime.timing` takes them
        out of the run's figures)."""
        paused, self.paused_s = self.paused_s, 0.0
        return paused

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc) -> None:
        self.leave()


class EngineQueue:
    """The line of one engine: tickets waiting in order of arrival and the one(s) being served."""

    def __init__(self, engine_id: str, slots: int = 1) -> None:
        self.engine_id, self.slots = engine_id, slots
        self.name = engine_id  # what messages call the engine (`line(engine_id, name)` sets its display name)
        self._cond = threading.Condition()
        self._waiting: deque[Ticket] = deque()  # in order of arrival; `_order()` is the order of service
        self._turns: OrderedDict[str | None, int] = OrderedDict()  # caller -> number of its last turn
        self._usage: OrderedDict[str | None, tuple[float, float]] = OrderedDict()  # caller -> (engine s, when)
        self._turn_count = 0
        self._running: list[Ticket] = []
        self._aside: list[Ticket] = []  # stepped aside while a chunk of theirs is delivered
        self.s_per_char: float | None = None  # measured seconds of compute per character
        self._bound: int | None = None  # the default bound, fixed once the speed is first known
        self.served = self.refused = 0

    # ----- admission and turns ---------------------------------------------------------------
    def enter(
        self,
        cost_s: float,
        cancelled: Callable[[], bool] | None = None,
        bounded: bool = True,
        caller: str | None = None,
    ) -> Ticket:
        """A new ticket in the line, or `BusyError` at once when the line or the caller's share is full."""
        with self._cond:
            limit = self.max_waiting()
            busy = len(self._running) >= self.slots or bool(self._waiting)
            own = sum(1 for t in self._waiting if t.caller == caller) if caller is not None else 0
            if bounded and busy and caller is not None and own >= max_waiting_per_caller():
                self.refused += 1
                retry = max(1, math.ceil(self._backlog_s() or 1.0))
                raise BusyError(
                    f"You already have {own} requests waiting for the {self.name} engine; "
                    f"please wait for them or try again in about {retry} seconds.",
                    retry,
                )
            if bounded and busy and len(self._waiting) >= limit:
                self.refused += 1
                retry = max(1, math.ceil(self._backlog_s() or 1.0))
                raise BusyError(
                    f"The {self.name} engine is busy ({len(self._waiting)} requests are waiting); "
                    f"please try again in about {retry} seconds.",
                    retry,
                )
            ticket = Ticket(self, cost_s, cancelled, caller)
            self._waiting.append(ticket)
            self._promote()
            self._make_way(ticket)
            return ticket

    def wait(self, ticket: Ticket, timeout: float | None) -> bool:
        with self._cond:
            if ticket.started is None and ticket.left:
                raise EngineError("This request has already left the line.")

            def turn_come() -> bool:
                if ticket.started is None and self._aside and len(self._running) < self.slots:
                    self._promote()  # a reservation of a chunk's delivery may have run out (`_promote`)
                return ticket.started is not None

            return self._cond.wait_for(turn_come, timeout)

    def leave(self, ticket: Ticket) -> None:
        with self._cond:
            if ticket.left:
                return
            ticket.left = True
            if ticket in self._running:
                self._running.remove(ticket)
                self._used(ticket)
                self.served += 1
            elif ticket in self._waiting:
                self._waiting.remove(ticket)
            elif ticket.aside:
                self._aside.remove(ticket)
                ticket.aside = False
                self.served += 1
            self._promote()

    def _make_way(self, newcomer: Ticket) -> None:
        """If the engine runs a call that can give way (lock held) for a caller who has used the engine
        more lately than `newcomer`'s caller (its run so far included), cut the call short."""
        if self.slots != 1 or newcomer.started is not None:
            return
        now = time.monotonic()
        for running in self._running:
            if running.give_way is None or running.gave_way or running.caller == newcomer.caller:
                continue
            theirs = self._recent_use(running.caller, now) + (now - (running.started or now))
            if self._recent_use(newcomer.caller, now) < theirs:
                running.gave_way = True
                running.give_way()

    def may_give_way(self, ticket: Ticket, give_way: Callable[[], None] | None) -> None:
        """While a running ticket's model call can be cut short: how (None once the call is over)."""
        with self._cond:
            ticket.give_way = give_way
            if give_way is None:
                ticket.gave_way = False  # the next call may give way again
            else:
                for waiting in self._waiting:  # one may already be waiting
                    self._make_way(waiting)
                    if ticket.gave_way:
                        break

    def step_aside(self, ticket: Ticket) -> None:
        with self._cond:
            if self.slots != 1 or ticket not in self._running:
                return
            self._running.remove(ticket)
            self._used(ticket)
            ticket.started, ticket.aside, ticket.aside_at = None, True, time.monotonic()
            self._aside.append(ticket)
            self._promote()

    def resume(self, ticket: Ticket) -> None:
        """Back in line first among its caller's requests (its place in the order of service follows
        its caller's recent use, as any waiting ticket's)."""
        with self._cond:
            if not ticket.aside or ticket.left:
                return
            self._aside.remove(ticket)
            ticket.aside = False
            self._waiting.appendleft(ticket)
            self._promote()
            self._make_way(ticket)  # back while a heavier caller's chunk had just begun

    def claim(self, leader: Ticket, limit: int, match: Callable[[Ticket], bool]) -> list[Ticket]:
        with self._cond:
            if leader not in self._running:
                raise EngineError("Only a request whose turn has come can take others into its batch.")
            taken = []
            for ticket in self._order():
                if len(taken) >= limit:
                    break
                if match(ticket):
                    self._waiting.remove(ticket)
                    ticket.started, ticket.leader, ticket.left = time.monotonic(), leader, True
                    taken.append(ticket)
            self.served += len(taken)
            self._cond.notify_all()
            return taken

    def _promote(self) -> None:
        """Give free engine slots to the next in the order of service (lock held). A caller's next request
        waits for the one it set aside; and for `ASIDE_GRACE_S` after a request stepped aside to deliver a
        chunk, no caller who has used the engine more lately than its caller starts (its next chunk would
        otherwise wait behind a heavier caller's whole chunk for a few milliseconds of delivery)."""
        now = time.monotonic()
        held = {t.caller for t in self._aside}
        reserved = [self._recent_use(t.caller, now) for t in self._aside if now - t.aside_at < ASIDE_GRACE_S]
        bar = min(reserved) if reserved else math.inf
        promoted = False
        while self._waiting and len(self._running) < self.slots:
            ticket = next((t for t in self._order() if t.caller not in held), None)
            if ticket is None or self._recent_use(ticket.caller, now) > bar:
                break
            promoted = True
            self._waiting.remove(ticket)
            self._turn_count += 1
            self._turns.pop(ticket.caller, None)
            self._turns[ticket.caller] = self._turn_count
            while len(self._turns) > MAX_CALLERS_REMEMBERED:
                self._turns.popitem(last=False)
            ticket.started = time.monotonic()
            self._running.append(ticket)
        if promoted:
            self._cond.notify_all()

    def _used(self, ticket: Ticket) -> None:
        """Add a running ticket's engine time so far to its caller's recent use (lock held)."""
        if ticket.started is None:
            return
        now = time.monotonic()
        caller = ticket.caller
        ticket.ran_s += now - ticket.started
        self._usage[caller] = (self._recent_use(caller, now) + (now - ticket.started), now)
        self._usage.move_to_end(caller)
        while len(self._usage) > MAX_CALLERS_REMEMBERED:
            self._usage.popitem(last=False)

    def _recent_use(self, caller: str | None, now: float) -> float:
        """A caller's engine seconds, each halved for every `USAGE_HALF_LIFE_S` since (lock held)."""
        used, at = self._usage.get(caller, (0.0, now))
        return used * 0.5 ** ((now - at) / USAGE_HALF_LIFE_S)

    def _order(self, limit: int | None = None) -> list[Ticket]:
        """The waiting tickets in the order they will be served (lock held): the caller who has used the
        engine least lately first (ties: the one served longest ago, or never), counting each ticket
        ahead at its estimated cost; each caller's tickets in order of arrival."""
        queues: dict[str | None, deque[Ticket]] = {}
        for ticket in self._waiting:
            queues.setdefault(ticket.caller, deque()).append(ticket)
        now = time.monotonic()
        used = {caller: self._recent_use(caller, now) for caller in queues}
        last = {caller: self._turns.get(caller, -1) for caller in queues}
        arrival = {caller: index for index, caller in enumerate(queues)}
        order: list[Ticket] = []
        count = self._turn_count
        wanted = len(self._waiting) if limit is None else min(limit, len(self._waiting))
        while len(order) < wanted:
            caller = min((c for c in queues if queues[c]), key=lambda c: (used[c], last[c], arrival[c]))
            ticket = queues[caller].popleft()
            order.append(ticket)
            count += 1
            last[caller] = count
            used[caller] += ticket.cost_s
        return order

    # ----- place in line and estimates -------------------------------------------------------
    def position(self, ticket: Ticket) -> int:
        with self._cond:
            if ticket.started is not None:
                return 0
            order = self._order()
            return order.index(ticket) + 1 if ticket in order else 0

    def estimate(self, ticket: Ticket) -> float | None:
        with self._cond:
            if ticket.started is not None:
                return 0.0
            if self.s_per_char is None:
                return None
            order = self._order()
            ahead = order[: order.index(ticket)] if ticket in order else []
            return self._remaining_s() + sum(t.cost_s for t in ahead) / self.slots

    def _remaining_s(self) -> float:
        now = time.monotonic()
        left = [max(0.0, t.cost_s - t.ran_s - (now - (t.started or now))) for t in self._running]
        return min(left) if len(left) >= self.slots and left else 0.0

    def _backlog_s(self) -> float | None:
        if self.s_per_char is None:
            return None
        return self._remaining_s() + sum(t.cost_s for t in self._waiting) / self.slots

    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    def running(self) -> int:
        with self._cond:
            return len(self._running)

    # ----- speed and bound -------------------------------------------------------------------
    def observe(self, chars: int, seconds: float) -> None:
        """A finished run: `chars` characters took `seconds` of compute."""
        if chars <= 0 or seconds <= 0:
            return
        rate = seconds / chars
        with self._cond:
            self.s_per_char = rate if self.s_per_char is None else (1 - SMOOTHING) * self.s_per_char + SMOOTHING * rate
            if self._bound is None:
                self._bound = _bound_for(self.s_per_char, self.slots)
                log.info(
                    "%s: %.4f s of compute per character measured; default MAX_WAITING %d",
                    self.engine_id, self.s_per_char, self._bound,
                )  # fmt: skip

    def max_waiting(self) -> int:
        """`MAX_WAITING`, else the bound computed from the speed measured at load (or the first run)."""
        configured = settings().max_waiting
        if configured is not None:
            return configured
        return self._bound if self._bound is not None else UNMEASURED_MAX_WAITING

    def cost_of(self, text: str) -> float:
        return (self.s_per_char or 0.0) * len(text)


def _bound_for(s_per_char: float, slots: int = 1) -> int:
    typical = s_per_char * TYPICAL_CHARS / slots  # `slots` requests run together, each at the measured speed
    return max(1, min(MAX_WAITING_CAP, int(WAIT_TARGET_S / typical) if typical > 0 else MAX_WAITING_CAP))


_lines: dict[str, EngineQueue] = {}
_lines_lock = threading.Lock()


def line(engine_id: str, name: str | None = None) -> EngineQueue:
    """The engine's queue (one per engine id, created on first use with the engine's slots and display
    name, read without loading the model); `name` overrides the display name for its messages."""
    with _lines_lock:
        found = _lines.get(engine_id)
    if found is None:
        info = registry.info(engine_id)
        slots = max(1, int(info.concurrent_requests or 1))
        with _lines_lock:
            found = _lines.setdefault(engine_id, EngineQueue(engine_id, slots))
            if found.name == engine_id and info.name:
                found.name = info.name
    if name:
        found.name = name
    return found


def enter(
    engine_id: str,
    cost_s: float,
    cancelled: Callable[[], bool] | None = None,
    bounded: bool = True,
    caller: str | None = None,
) -> Ticket:
    """Join the engine's line as `caller` (`BusyError` at once when `max_waiting` already wait, or
    `MAX_WAITING_PER_CALLER` of the caller's own)."""
    return line(engine_id).enter(cost_s, cancelled, bounded, caller)


@contextmanager
def turn(
    engine_id: str, cost_s: float, cancelled: Callable[[], bool] | None = None, caller: str | None = None
) -> Iterator[Ticket | None]:
    """Wait for this request's turn on the engine (first come, first served) and hold it for the block.

    Raises `BusyError` at once when the line is full; yields None (without a turn) if `cancelled()`
    became true while waiting.
    """
    with enter(engine_id, cost_s, cancelled, caller=caller) as ticket:
        yield ticket if ticket.wait_turn() else None


def cost_of(engine_id: str, text: str) -> float:
    """Estimated seconds of compute for `text` on the engine (0 until its speed is measured)."""
    return line(engine_id).cost_of(text)


def observe(engine_id: str, chars: int, seconds: float) -> None:
    """Record a finished run's speed (the estimates and the default bound follow it)."""
    line(engine_id).observe(chars, seconds)


def engine_loaded(engine_id: str, s_per_char: float | None) -> None:
    """The engine's speed measured when it loaded (`EngineInfo.compute_s_per_char`): the first estimate."""
    queue = line(engine_id)
    if s_per_char and queue.s_per_char is None:
        queue.observe(1_000, s_per_char * 1_000)


def set_slots(engine_id: str, slots: int) -> None:
    """How many of the engine's requests may run at once (`EngineInfo.concurrent_requests`; for a
    remote tier, its replicas x the requests each takes, known once it answers)."""
    queue = line(engine_id)
    with queue._cond:
        if queue.slots != max(1, slots):
            queue.slots = max(1, slots)
            queue._promote()


def max_waiting(engine_id: str) -> int:
    return line(engine_id).max_waiting()


def wait_line(ticket: Ticket) -> str:
    """One sentence for a waiting visitor: place in line and the estimated wait, labelled as an estimate."""
    place = ticket.position()
    estimate = ticket.estimate_s()
    ahead = "you are next" if place == 1 else f"{place - 1} requests are ahead of you"
    if estimate is None:
        guess = "the wait is not estimated yet (the engine's speed is not measured yet)"
    else:
        guess = f"estimated wait about {max(1, round(estimate))} s (an estimate from the engine's measured speed)"
    name = ticket.line.name
    return f"Waiting for {name}: place {place} in line, {ahead}; {guess} · waited {ticket.waited_s:.0f} s"
