"""The per-engine work queue: first come first served, bounded, places and estimates, cancellation."""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np
import pytest

from engines.base import AudioChunk, BusyError, EngineError, EngineInfo, SynthesisRequest
from engines.runtime import registry, timing, work_queue

_ids = itertools.count()


def fresh_id() -> str:
    return f"test-engine-{next(_ids)}"


def until(condition, timeout: float = 10.0) -> None:
    """Wait for a condition another thread makes true (a deadline only against hanging, not a timing assert)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.005)


def test_threads_are_served_in_the_order_they_arrived(monkeypatch):
    monkeypatch.setenv("MAX_WAITING", "20")
    engine_id = fresh_id()
    line = work_queue.line(engine_id)
    served: list[int] = []
    holder = work_queue.enter(engine_id, 1.0)
    assert holder.wait(0)

    def client(n: int) -> None:
        with work_queue.turn(engine_id, 1.0) as ticket:
            assert ticket is not None
            served.append(n)

    threads = []
    for n in range(12):
        thread = threading.Thread(target=client, args=(n,))
        thread.start()
        threads.append(thread)
        until(lambda n=n: line.waiting() == n + 1)  # each one is in line before the next arrives
    holder.leave()
    for thread in threads:
        thread.join(30)
    assert served == list(range(12))
    assert line.waiting() == 0 and line.running() == 0


def test_past_max_waiting_a_request_is_refused_at_once_with_a_retry_time(monkeypatch):
    monkeypatch.setenv("MAX_WAITING", "2")
    engine_id = fresh_id()
    work_queue.observe(engine_id, 100, 2.0)  # 0.02 s per character
    running = work_queue.enter(engine_id, 2.0)
    waiting = [work_queue.enter(engine_id, 2.0), work_queue.enter(engine_id, 2.0)]
    with pytest.raises(BusyError) as refused:
        work_queue.enter(engine_id, 2.0)
    assert refused.value.retry_after_s >= 1
    message = str(refused.value)
    assert message.count(".") == 1 and "busy" in message and "try again in about" in message
    assert [t.position() for t in (running, *waiting)] == [0, 1, 2]
    running.leave()  # the head moves up: there is room for one more
    assert waiting[0].position() == 0 and waiting[1].position() == 1
    work_queue.enter(engine_id, 2.0).leave()
    for ticket in waiting:
        ticket.leave()
    assert work_queue.line(engine_id).refused == 1


def test_an_idle_engine_admits_even_with_max_waiting_zero(monkeypatch):
    monkeypatch.setenv("MAX_WAITING", "0")
    engine_id = fresh_id()
    with work_queue.turn(engine_id, 1.0) as ticket:
        assert ticket is not None and ticket.position() == 0
        with pytest.raises(BusyError):
            work_queue.enter(engine_id, 1.0)


def test_the_default_bound_follows_the_measured_speed(monkeypatch):
    monkeypatch.delenv("MAX_WAITING", raising=False)
    slow, fast, unknown = fresh_id(), fresh_id(), fresh_id()
    work_queue.engine_loaded(slow, 0.05)  # 10 s for a typical request: three fit in 30 s
    work_queue.engine_loaded(fast, 0.001)
    assert work_queue.max_waiting(slow) == 3
    assert work_queue.max_waiting(fast) == work_queue.MAX_WAITING_CAP
    assert work_queue.max_waiting(unknown) == work_queue.UNMEASURED_MAX_WAITING
    monkeypatch.setenv("MAX_WAITING", "5")
    assert work_queue.max_waiting(slow) == 5


def test_estimates_grow_with_the_work_ahead_and_are_labelled(monkeypatch):
    monkeypatch.setenv("MAX_WAITING", "10")
    engine_id = fresh_id()
    first = work_queue.enter(engine_id, work_queue.cost_of(engine_id, "x" * 100))
    second = work_queue.enter(engine_id, 0.0)
    assert second.estimate_s() is None and "not estimated yet" in work_queue.wait_line(second)
    work_queue.observe(engine_id, 100, 5.0)
    first.cost_s = second.cost_s = work_queue.cost_of(engine_id, "x" * 100)
    third = work_queue.enter(engine_id, work_queue.cost_of(engine_id, "x" * 200))
    fourth = work_queue.enter(engine_id, 0.0)
    assert third.cost_s == pytest.approx(10.0)
    assert 0 < third.estimate_s() < fourth.estimate_s()
    line = work_queue.wait_line(fourth)
    assert "place 3 in line" in line and "2 requests are ahead of you" in line and "estimate" in line
    for ticket in (first, second, third, fourth):
        ticket.leave()


def test_a_batching_engine_takes_matching_requests_from_the_head(monkeypatch):
    monkeypatch.setenv("MAX_WAITING", "10")
    engine_id = fresh_id()
    leader = work_queue.enter(engine_id, 1.0)
    others = [work_queue.enter(engine_id, 1.0) for _ in range(4)]
    voices = {id(t): v for t, v in zip(others, ["Ryan", "Aiden", "Ryan", "Ryan"], strict=True)}
    taken = leader.claim(2, lambda t: voices[id(t)] == "Ryan")
    assert taken == [others[0], others[2]]
    assert all(t.wait(0) and t.leader is leader for t in taken)
    assert others[1].position() == 1 and others[3].position() == 2
    leader.leave()
    assert others[1].position() == 0
    for ticket in others:
        ticket.leave()


def test_a_waiter_whose_client_left_gives_up_its_place(monkeypatch):
    monkeypatch.setenv("MAX_WAITING", "10")
    engine_id = fresh_id()
    gone = threading.Event()
    holder = work_queue.enter(engine_id, 1.0)
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(work_queue.enter(engine_id, 1.0, gone.is_set).wait_turn()))
    thread.start()
    until(lambda: work_queue.line(engine_id).waiting() == 1)
    gone.set()
    thread.join(10)
    assert outcome == [False] and work_queue.line(engine_id).waiting() == 0
    holder.leave()


class CountingEngine:
    """A fake engine that yields `chunks` one-second chunks and records how many it produced."""

    def __init__(self, chunks: int = 5) -> None:
        self.chunks, self.produced, self.closed = chunks, 0, 0

    def stream(self, request: SynthesisRequest):
        try:
            for index in range(self.chunks):
                self.produced += 1
                yield AudioChunk(audio=np.zeros(24_000, np.float32), text=request.text, phonemes="", index=index)
        finally:
            self.closed += 1


@pytest.fixture()
def fake_engine(monkeypatch):
    monkeypatch.setenv("MAX_WAITING", "10")
    engine_id, engine = fresh_id(), CountingEngine()
    monkeypatch.setattr(registry, "get", lambda e: engine)
    monkeypatch.setattr(registry, "info", lambda e: EngineInfo(id=e, name="Fake", compute_s_per_char=0.01))
    return engine_id, engine


def test_closing_a_stream_frees_the_engine_for_the_next_request(fake_engine):
    engine_id, engine = fake_engine
    request = SynthesisRequest("Hello there.", "v")
    stats = timing.RunStats(engine=engine_id)
    stream = timing.timed_stream(engine_id, request, stats)
    next(stream)
    waiting_stats = timing.RunStats(engine=engine_id)
    later = timing.timed_stream(engine_id, request, waiting_stats)
    result = []
    thread = threading.Thread(target=lambda: result.append(len(list(later))))
    thread.start()
    until(lambda: work_queue.line(engine_id).waiting() == 1)
    stream.close()  # the page's visitor left: Gradio closes the handler's generator
    thread.join(10)
    assert result == [5] and engine.closed == 2 and engine.produced == 6
    assert waiting_stats.queue_wait_s is not None and stats.queue_wait_s is not None
    assert work_queue.line(engine_id).running() == 0


def test_a_whole_file_run_stops_after_the_chunk_in_progress_when_cancelled(fake_engine):
    engine_id, engine = fake_engine
    seen = []
    audio, chunks, stats = timing.synthesize(
        engine_id, SynthesisRequest("Hello.", "v"), cancelled=lambda: len(seen.append(1) or seen) >= 2
    )
    assert len(chunks) == 2 and engine.produced == 2 and engine.closed == 1 and stats.cancelled
    assert work_queue.line(engine_id).running() == 0
    audio, chunks, stats = timing.synthesize(engine_id, SynthesisRequest("Hello.", "v"))
    assert len(chunks) == 5 and not stats.cancelled


def test_a_full_line_refuses_through_timing_too(fake_engine, monkeypatch):
    engine_id, _ = fake_engine
    monkeypatch.setenv("MAX_WAITING", "0")
    holder = work_queue.enter(engine_id, 1.0)
    with pytest.raises(BusyError):
        timing.synthesize(engine_id, SynthesisRequest("Hello.", "v"))
    holder.leave()
    assert len(timing.synthesize(engine_id, SynthesisRequest("Hello.", "v"))[1]) == 5


def test_a_ticket_that_left_the_line_cannot_wait_again():
    engine_id = fresh_id()
    holder, ticket = work_queue.enter(engine_id, 1.0), work_queue.enter(engine_id, 1.0)
    ticket.leave()
    ticket.leave()  # idempotent
    with pytest.raises(EngineError):
        ticket.wait(0)
    holder.leave()
