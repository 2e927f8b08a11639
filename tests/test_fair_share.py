"""Fair share of an engine's line: the caller who used it least lately first, each caller's own waiting
requests bounded.

These run the work queue's real code (`engines.runtime.timing` -> `engines.runtime.work_queue`) with a fake slow engine.
"""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np
import pytest

from engines.base import AudioChunk, BusyError, EngineInfo, SynthesisRequest
from engines.runtime import give_way, registry, timing, work_queue

_ids = itertools.count()


class SlowEngine:
    """Speaks one 0.1 s chunk per 10 characters, taking a little while for each; logs what happens."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def stream(self, request: SynthesisRequest):
        with self.lock:
            self.events.append(("start", request.text))
        for index in range(max(1, len(request.text) // 10)):
            time.sleep(0.02)
            with self.lock:
                self.events.append(("chunk", request.text))
            yield AudioChunk(audio=np.zeros(2_400, np.float32), text=request.text, phonemes="", index=index)


def installed(monkeypatch, engine) -> tuple[str, object]:
    """`engine` as the registry's engine under a fresh id (its own line), with room in the line."""
    engine_id = f"fair-engine-{next(_ids)}"
    monkeypatch.setattr(registry, "get", lambda e: engine)
    monkeypatch.setattr(registry, "info", lambda e: EngineInfo(id=e, name="Slow", compute_s_per_char=0.002))
    monkeypatch.setenv("MAX_WAITING", "30")
    return engine_id, engine


@pytest.fixture()
def slow_engine(monkeypatch):
    return installed(monkeypatch, SlowEngine())


def until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.005)


def speak(engine_id: str, text: str, caller: str, errors: list) -> threading.Thread:
    def run() -> None:
        try:
            timing.synthesize(engine_id, SynthesisRequest(text, "v"), caller=caller)
        except BusyError as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_one_callers_eight_long_requests_do_not_push_anothers_short_one_behind_them(slow_engine, monkeypatch):
    engine_id, engine = slow_engine
    monkeypatch.setenv("MAX_WAITING_PER_CALLER", "8")  # let key A fill the line, to see the order of service
    line, errors, threads = work_queue.line(engine_id), [], []
    long_texts = [f"A{n} " + "long text " * 30 for n in range(8)]
    for n, text in enumerate(long_texts):
        threads.append(speak(engine_id, text, "key:A", errors))
        until(lambda n=n: line.waiting() + line.running() == n + 1)
    threads.append(speak(engine_id, "B short one.", "key:B", errors))
    for thread in threads:
        thread.join(60)
    assert errors == []
    starts = [text for kind, text in engine.events if kind == "start"]
    assert starts[0] == long_texts[0] and len(starts) == 9
    b_first_audio = engine.events.index(("chunk", "B short one."))
    a_third_start = engine.events.index(("start", long_texts[2]))
    assert b_first_audio < a_third_start  # B's first audio arrives before A's third request starts
    assert [t for t in starts if t.startswith("A")] == long_texts  # A's own requests first come, first served


def test_with_one_key_the_extra_requests_are_refused_at_once(slow_engine, monkeypatch):
    engine_id, _ = slow_engine
    monkeypatch.delenv("MAX_WAITING_PER_CALLER", raising=False)  # the default: 2 waiting per caller
    holder = work_queue.enter(engine_id, 1.0, caller="key:A")  # running
    waiting = [work_queue.enter(engine_id, 1.0, caller="key:A") for _ in range(2)]
    with pytest.raises(BusyError, match="You already have 2 requests waiting") as refused:
        timing.synthesize(engine_id, SynthesisRequest("One more please.", "v"), caller="key:A")
    assert refused.value.retry_after_s >= 1
    other = work_queue.enter(engine_id, 1.0, caller="key:B")  # another caller still gets its place
    assert other.position() == 1  # and B goes before A's two waiting ones
    for ticket in [holder, *waiting, other]:
        ticket.leave()


def test_places_in_line_follow_the_order_of_service(slow_engine):
    engine_id, _ = slow_engine
    holder = work_queue.enter(engine_id, 1.0, caller="a")
    a1, a2 = work_queue.enter(engine_id, 1.0, caller="a"), work_queue.enter(engine_id, 1.0, caller="a")
    b1 = work_queue.enter(engine_id, 1.0, caller="b")
    c1 = work_queue.enter(engine_id, 1.0, caller="c")
    assert [t.position() for t in (b1, c1, a1, a2)] == [1, 2, 3, 4]
    holder.leave()
    assert b1.has_turn and [t.position() for t in (c1, a1, a2)] == [1, 2, 3]
    for ticket in (a1, a2, b1, c1):
        ticket.leave()


def test_a_long_request_hands_the_engine_to_another_caller_between_its_chunks(slow_engine):
    engine_id, engine = slow_engine
    line, errors = work_queue.line(engine_id), []
    long_text = "A long one " + "word " * 200  # ~20 chunks
    first = speak(engine_id, long_text, "key:A", errors)
    until(lambda: ("chunk", long_text) in engine.events)  # A is speaking
    second = speak(engine_id, "B short.", "key:B", errors)
    first.join(60)
    second.join(60)
    assert errors == []
    b_first = engine.events.index(("chunk", "B short."))
    a_last = max(i for i, event in enumerate(engine.events) if event == ("chunk", long_text))
    assert b_first < a_last  # B spoke while A's long request was still going
    assert line.running() == 0 and line.waiting() == 0


def test_one_callers_own_requests_are_not_interleaved(slow_engine):
    engine_id, engine = slow_engine
    errors = []
    first_text, second_text = "First " + "word " * 60, "Second " + "word " * 10
    first = speak(engine_id, first_text, "key:A", errors)
    until(lambda: ("chunk", first_text) in engine.events)
    second = speak(engine_id, second_text, "key:A", errors)
    first.join(60)
    second.join(60)
    chunks = [text for kind, text in engine.events if kind == "chunk"]
    assert chunks == [first_text] * chunks.count(first_text) + [second_text] * chunks.count(second_text)


def test_a_caller_who_just_had_the_engine_long_goes_after_one_who_had_it_briefly(slow_engine):
    """Heavy had the engine 0.4 s, then light 0.01 s; both wait again: light goes first, although heavy
    was served longer ago (a plain round robin would serve heavy first)."""
    engine_id, _ = slow_engine
    heavy = work_queue.enter(engine_id, 1.0, caller="heavy")
    time.sleep(0.4)
    heavy.leave()
    light = work_queue.enter(engine_id, 1.0, caller="light")
    time.sleep(0.01)
    light.leave()
    holder = work_queue.enter(engine_id, 1.0, caller="someone")
    heavy_again = work_queue.enter(engine_id, 1.0, caller="heavy")  # arrives first
    light_again = work_queue.enter(engine_id, 1.0, caller="light")
    assert (light_again.position(), heavy_again.position()) == (1, 2)
    holder.leave()
    assert light_again.has_turn and not heavy_again.has_turn
    for ticket in (light_again, heavy_again):
        ticket.leave()


def test_a_slow_reader_does_not_hold_the_engine_while_its_chunk_is_delivered(slow_engine):
    """A's client takes A's first chunk and then reads nothing for a while (a slow or hostile reader):
    B, arriving meanwhile, is served to its end; A then gets the rest of its audio."""
    engine_id, engine = slow_engine
    line, errors = work_queue.line(engine_id), []
    long_text = "A long one " + "word " * 50
    stats = timing.RunStats(engine=engine_id)
    reader = timing.timed_stream(engine_id, SynthesisRequest(long_text, "v"), stats, caller="key:A")
    first = next(reader)  # A's client has its first chunk and reads no further for now
    second = speak(engine_id, "B short.", "key:B", errors)
    second.join(10)
    assert not second.is_alive() and errors == []  # B did not wait for A's reader
    assert ("chunk", "B short.") in engine.events
    rest = list(reader)
    assert len([first, *rest]) == len(long_text) // 10 and not stats.cancelled
    assert line.running() == 0 and line.waiting() == 0


class GivingWayEngine:
    """Two chunks per request, each a model call that can be cut short, as ONNX Runtime's terminate flag
    cuts Kokoro's (`engines.runtime.give_way.yielding`); a chunk of a text starting with "A" takes 1 s, the
    others 0.05 s. Events and attempts are counted per chunk ("A long chunk./1": A's second chunk)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.attempts: dict[str, int] = {}
        self.lock = threading.Lock()

    def stream(self, request: SynthesisRequest):
        for index in range(2):
            name = f"{request.text}/{index}"

            def attempt(offer, name=name):
                cut = threading.Event()
                if offer is not None:
                    offer(cut.set)
                with self.lock:
                    self.attempts[name] = self.attempts.get(name, 0) + 1
                deadline = time.monotonic() + (1.0 if request.text.startswith("A") else 0.05)
                while time.monotonic() < deadline:
                    if cut.is_set():
                        raise RuntimeError("terminated")
                    time.sleep(0.005)
                return np.zeros(2_400, np.float32)

            audio = give_way.yielding(attempt)
            with self.lock:
                self.events.append(("chunk", name))
            yield AudioChunk(audio=audio, text=request.text, phonemes="", index=index)


@pytest.fixture()
def giving_way(monkeypatch):
    return installed(monkeypatch, GivingWayEngine())


def test_a_long_model_call_gives_way_once_to_a_caller_who_used_the_engine_less(giving_way):
    """A's second chunk is running when B arrives: it is cut short, B's request is served, A's chunk is
    computed again to its end; C, arriving during that second attempt, waits for it (a chunk gives way
    at most once, so a heavy caller always gets on)."""
    engine_id, engine = giving_way
    errors: list = []
    a = "A long chunk."
    threads = [speak(engine_id, a, "key:A", errors)]
    until(lambda: engine.attempts.get(f"{a}/1") == 1)  # A's first chunk is out; its second runs
    threads.append(speak(engine_id, "B short.", "key:B", errors))
    until(lambda: engine.attempts.get(f"{a}/1") == 2)  # A runs it again once B is done
    threads.append(speak(engine_id, "C short.", "key:C", errors))
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert [name for _, name in engine.events] == [f"{a}/0", "B short./0", "B short./1", f"{a}/1", "C short./0",
                                                  "C short./1"]  # fmt: skip
    assert engine.attempts == {f"{a}/0": 1, f"{a}/1": 2, "B short./0": 1, "B short./1": 1, "C short./0": 1,
                               "C short./1": 1}  # fmt: skip
    line = work_queue.line(engine_id)
    assert line.running() == 0 and line.waiting() == 0


def test_a_requests_first_chunk_never_gives_way(giving_way):
    """B arrives while A's first chunk runs: B waits for it (cutting it would delay A's first audio)."""
    engine_id, engine = giving_way
    errors: list = []
    a = "A long chunk."
    threads = [speak(engine_id, a, "key:A", errors)]
    until(lambda: engine.attempts.get(f"{a}/0") == 1)
    threads.append(speak(engine_id, "B short.", "key:B", errors))
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert [name for _, name in engine.events][:2] == [f"{a}/0", "B short./0"]
    assert engine.attempts[f"{a}/0"] == 1
