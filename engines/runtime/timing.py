"""Measured runs: wraps an engine's stream and records time to first audio, total time and RTF.

Every figure the UI, the CLI `bench` command and the API report comes from here, measured on the
run itself: nothing is estimated. Every run takes its turn in the engine's work queue
(`engines.runtime.work_queue`, first come, first served) and records how long it waited there
(`queue_wait_s`) apart from the synthesis, whose figures start when the turn has come.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field

import numpy as np

from engines.audio import join
from engines.base import AudioChunk, Engine, SynthesisRequest
from engines.runtime import give_way, gpu, registry, work_queue
from engines.runtime.work_queue import Ticket


@dataclass
class RunStats:
    """Figures of one synthesis run; `ready_s` is when each chunk was ready, from the start."""

    engine: str
    ttfa_s: float | None = None
    total_s: float = 0.0
    audio_s: float = 0.0
    chunks: int = 0
    ready_s: list[float] = field(default_factory=list)
    durations_s: list[float] = field(default_factory=list)
    queue_wait_s: float | None = None  # seconds in the engine's line before synthesis began
    cancelled: bool = False  # the client went away: the run stopped after the chunk in progress
    notes: list[str] = field(default_factory=list)  # the chunks' notes (`AudioChunk.notes`), in order
    stops: list[dict] = field(default_factory=list)  # sentences the runaway guard stopped (`engines.qwen.runaway`)

    @property
    def rtf(self) -> float | None:
        """Real-time factor: seconds of compute per second of audio (below 1 is faster than real time)."""
        return self.total_s / self.audio_s if self.audio_s else None

    @property
    def underruns(self) -> int:
        """Chunks that were not ready when the audio before them finished playing."""
        if not self.ready_s:
            return 0
        play_at = self.ready_s[0]
        late = 0
        for ready, before in zip(self.ready_s[1:], self.durations_s[:-1], strict=True):
            play_at += before
            if ready > play_at:
                late += 1
                play_at = ready
        return late

    def summary(self) -> dict:
        return {
            "audio_s": round(self.audio_s, 3),
            "total_s": round(self.total_s, 3),
            "ttfa_s": None if self.ttfa_s is None else round(self.ttfa_s, 3),
            "rtf": None if self.rtf is None else round(self.rtf, 3),
            "chunks": self.chunks,
            **({"runaway": self.stops} if self.stops else {}),
        }


def load(engine_id: str) -> Engine:
    """The registry's engine, loaded, with its measured speed handed to its work queue."""
    engine = registry.get(engine_id)
    info = registry.info(engine_id)
    if work_queue.line(engine_id).s_per_char is None:
        work_queue.engine_loaded(engine_id, info.compute_s_per_char)
    # as many at once as the engine serves (Qwen3-TTS batches; a remote tier: all its replicas' share)
    work_queue.set_slots(engine_id, info.concurrent_requests or 1)
    return engine


def enter(
    engine_id: str, request: SynthesisRequest, cancelled: Callable[[], bool] | None = None, caller: str | None = None
) -> Ticket:
    """A place in the engine's line for `caller`'s `request` (`BusyError` at once when the line, or the
    caller's share of it, is full)."""
    work_queue.line(engine_id, registry.ENGINE_NAMES.get(engine_id))  # its messages name the engine
    return work_queue.enter(engine_id, work_queue.cost_of(engine_id, request.text), cancelled, caller=caller)


def timed_stream(
    engine_id: str,
    request: SynthesisRequest,
    stats: RunStats,
    cancelled: Callable[[], bool] | None = None,
    ticket: Ticket | None = None,
    caller: str | None = None,
) -> Iterator[AudioChunk]:
    """The registry engine's chunks in this request's turn, filling `stats`.

    Without a `ticket` the request joins the engine's line here (`BusyError` at once when it is
    full); a caller that shows the wait passes the ticket it waited with. The turn ends when the
    stream does (finished, failed, closed, or `cancelled()` seen between chunks, which also stops a
    wait); the engine is loaded in the turn, before timing starts.
    """
    with ticket or enter(engine_id, request, cancelled, caller) as turn:
        if not turn.wait_turn(cancelled):
            stats.cancelled = True
            return
        stats.queue_wait_s = turn.waited_s
        engine = load(engine_id)
        # while a chunk is delivered the engine is free; the next chunk waits its turn (the line's fair share)
        yield from measured(
            engine, request, stats, cancelled, aside=turn.step_aside, between=lambda: turn.resume(cancelled), turn=turn
        )
        if not stats.cancelled:
            work_queue.observe(engine_id, len(request.text), stats.total_s)


def measured(
    engine: Engine,
    request: SynthesisRequest,
    stats: RunStats,
    cancelled: Callable[[], bool] | None = None,
    between: Callable[[], bool] | None = None,
    aside: Callable[[], None] | None = None,
    turn: Ticket | None = None,
) -> Iterator[AudioChunk]:
    """An engine's chunks, filling `stats` as they come; stops after a chunk once `cancelled()`.
    `aside()` runs as each chunk is handed on and `between()` once the next is asked for (it stops the run
    when it says False): the time from one to the other (the chunk's delivery, another caller's turn) is
    not the run's. `turn`: the ticket whose model calls these are (a call may give way to another caller,
    `engines.runtime.give_way.yielding`; the wait for the turn again is not the run's time either). A request's
    first chunk never gives way: that would delay its first audio, the figure the line protects."""
    start = time.perf_counter()
    with closing(gpu.stream(engine, request)) as chunks:  # on ZeroGPU: one GPU call
        while True:
            with give_way.in_turn(turn if stats.chunks else None):  # a first chunk never gives way
                chunk = next(chunks, None)
            if chunk is None:
                break
            if turn is not None:
                start += turn.take_paused()
            now = time.perf_counter() - start
            if stats.ttfa_s is None:
                stats.ttfa_s = now
            stats.ready_s.append(now)
            stats.durations_s.append(chunk.duration_s)
            stats.audio_s += chunk.duration_s
            stats.chunks += 1
            stats.total_s = now
            stats.notes.extend(chunk.notes)
            stats.stops.extend(chunk.stops)
            paused = time.perf_counter()
            if aside is not None:
                aside()
            yield chunk
            if cancelled is not None and cancelled():
                stats.cancelled = True
                break
            going_on = between() if between is not None else True
            start += time.perf_counter() - paused  # the delivery and another caller's turn are not this run's
            if not going_on:
                stats.cancelled = True
                break
    stats.total_s = time.perf_counter() - start


def synthesize(
    engine_id: str, request: SynthesisRequest, cancelled: Callable[[], bool] | None = None, caller: str | None = None
) -> tuple[np.ndarray, list[AudioChunk], RunStats]:
    """The whole clip: all chunks joined, with the run's figures (`stats.cancelled`: cut short)."""
    stats = RunStats(engine=engine_id)
    chunks = list(timed_stream(engine_id, request, stats, cancelled, caller=caller))
    return join(chunks), chunks, stats
