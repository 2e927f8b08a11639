"""The pair runner's events: in turn or together, a failing slot, slot A cloned, the CLI's drain."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from engines.base import AudioChunk, EngineError
from evaluation import compare, pair
from evaluation.compare import CLONE_OF_A, Slot
from evaluation.pair import (
    Measuring,
    MetricsReady,
    PairStarted,
    SlotChunk,
    SlotFailed,
    SlotFinished,
    SlotStarted,
    pair_events,
    run_pair,
)


def noise(seed: int, n: int = 12_000) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * 0.1).astype(np.float32)


@pytest.fixture()
def fake_engines(monkeypatch):
    """Two chunks per slot; the voice "broken" fails at once with a sentence that names it."""
    calls: list[str] = []

    def fake_stream(engine_id, request, stats, **turn):
        calls.append(f"{engine_id}:{request.voice}")
        if request.voice == "broken":
            raise EngineError("Voice 'broken' is not in this model.")
        for i in range(2):
            stats.audio_s += 0.5
            stats.chunks += 1
            yield AudioChunk(audio=noise(i), text=request.text, phonemes="", index=i)

    monkeypatch.setattr(compare, "timed_stream", fake_stream)
    monkeypatch.setattr(pair, "measure", lambda result, text: {"duration_s": result.audio.size / 24_000})
    monkeypatch.setattr(pair, "runs_together", lambda a, b: False)
    return calls


def kinds(events) -> list[str]:
    return [f"{type(e).__name__}:{getattr(e, 'slot', '')}" for e in events]


def test_slots_run_in_turn_and_each_is_measured_last(fake_engines):
    events = list(pair_events("Hello there.", {"A": Slot("kokoro", "jm_kumo"), "B": Slot("qwen-custom", "Ryan")}))
    assert isinstance(events[0], PairStarted) and not events[0].together
    assert kinds(events)[1:] == [
        "SlotStarted:A", "SlotChunk:A", "SlotChunk:A", "SlotFinished:A",
        "SlotStarted:B", "SlotChunk:B", "SlotChunk:B", "SlotFinished:B",
        "Measuring:", "MetricsReady:",
    ]  # fmt: skip
    results = events[-1].results
    assert list(results) == ["A", "B"] and all(r.finished for r in results.values())
    assert results["A"].metrics == {"duration_s": 1.0}
    played = sum(e.audio.size for e in events if isinstance(e, SlotChunk) and e.slot == "A")
    assert played == results["A"].audio.size  # every sample reaches the player, levelled


def test_a_failing_slot_says_why_and_the_other_still_speaks(fake_engines):
    events = list(pair_events("Hi.", {"A": Slot("kokoro", "broken"), "B": Slot("kokoro", "jm_kumo")}))
    failed = [e for e in events if isinstance(e, SlotFailed)]
    assert [f.slot for f in failed] == ["A"] and "broken" in failed[0].sentence
    assert any(isinstance(e, SlotFinished) and e.slot == "B" for e in events)
    results = events[-1].results
    assert results["A"].error and not results["A"].finished and results["B"].finished


def test_a_slot_given_as_an_error_fails_at_once(fake_engines):
    events = list(pair_events("Hi.", {"A": EngineError("No such file."), "B": Slot("kokoro", "jm_kumo")}))
    assert kinds(events)[1] == "SlotFailed:A" and events[1].sentence == "No such file."
    assert isinstance(events[-1], MetricsReady) and events[-1].results["A"].metrics is None
    assert fake_engines == ["kokoro:jm_kumo"]


def test_slot_b_clones_slot_a_once_a_has_finished(fake_engines, monkeypatch):
    monkeypatch.setattr(pair, "clone_of", lambda result, text: Slot("qwen-clone", "from-a"))
    events = list(pair_events("Hi.", {"A": Slot("kokoro", "jm_kumo"), "B": CLONE_OF_A}))
    assert fake_engines == ["kokoro:jm_kumo", "qwen-clone:from-a"]
    assert events[-1].results["B"].slot.voice == "from-a"


def test_cloning_a_failed_slot_a_fails_slot_b_with_a_sentence(fake_engines):
    a, b = run_pair(Slot("kokoro", "broken"), CLONE_OF_A, "Hi.")
    assert a.error and b.error == "Slot A must finish speaking before its voice can be cloned."
    assert b.metrics is not None and b.metrics["duration_s"] == 0.0  # measured: every figure missing


def test_two_slots_together_interleave_their_chunks(fake_engines, monkeypatch):
    b_started = threading.Event()

    def fake_stream(engine_id, request, stats, **turn):
        if request.voice == "Ryan":
            b_started.set()
        for i in range(2):
            if request.voice == "jm_kumo" and i == 1:
                assert b_started.wait(timeout=20), "slot B did not start while slot A was speaking"
            stats.audio_s += 0.5
            yield AudioChunk(audio=noise(i), text=request.text, phonemes="", index=i)

    monkeypatch.setattr(compare, "timed_stream", fake_stream)
    monkeypatch.setattr(pair, "runs_together", lambda a, b: True)
    events = list(pair_events("Hi.", {"A": Slot("kokoro", "jm_kumo"), "B": Slot("qwen-custom", "Ryan")}))
    assert events[0].together
    order = [e.slot for e in events if isinstance(e, SlotChunk | SlotStarted)]
    assert order.index("B") < len(order) - 1 - order[::-1].index("A")  # B began before A's last piece
    assert all(r.together and r.finished for r in events[-1].results.values())
    assert isinstance(events[-2], Measuring)


def test_run_pair_drains_the_events_for_the_cli(fake_engines):
    a, b = run_pair(Slot("kokoro", "jm_kumo"), Slot("kokoro", "jf_alpha"), "Hi.")
    assert a.finished and b.finished and a.metrics and b.metrics
    assert a.slot.system == "kokoro:jm_kumo" and b.slot.system == "kokoro:jf_alpha"
