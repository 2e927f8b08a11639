"""The one stream-and-level loop of the tabs (`ui.streaming`): waiting, levelled int16 pieces, the player's messages."""

from __future__ import annotations

import json

import gradio as gr
import numpy as np

from engines.audio import OutputSettings, StreamLeveler, to_int16
from engines.base import AudioChunk, SynthesisRequest
from engines.runtime.timing import RunStats
from evaluation.compare import ClipResult, Slot
from evaluation.pair import Measuring, SlotChunk, SlotFinished, SlotStarted
from ui import streaming
from ui.player import StreamPlayer


def noise(seed: int, seconds: float = 0.3) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(24_000 * seconds)) * 0.1).astype(np.float32)


def test_a_run_waits_then_plays_levelled_pieces_in_order_and_ends_with_what_was_held(monkeypatch):
    def fake_wait(engine_id, request, show):
        yield show("You are 2nd in line.")
        return "ticket"

    def fake_stream(engine_id, request, stats, ticket=None):
        assert ticket == "ticket"
        for i in range(3):
            yield AudioChunk(noise(i), f"part {i}", "", i)

    monkeypatch.setattr(streaming, "wait_for_turn", fake_wait)
    monkeypatch.setattr(streaming, "timed_stream", fake_stream)
    settings, chunks = OutputSettings(lufs=-16), []
    request = SynthesisRequest("Hello.", "jm_kumo")
    steps = list(streaming.levelled_run("kokoro", request, settings, RunStats(engine="kokoro"), chunks))

    assert steps[0] == streaming.Step(waiting="You are 2nd in line.")
    assert [s.chunk.index if s.chunk else None for s in steps[1:]] == [0, 1, 2, None] and steps[-1].done
    by_hand = StreamLeveler(settings)
    expected = [by_hand.feed(noise(i)) for i in range(3)] + [by_hand.flush()]
    for step, want in zip(steps[1:], expected, strict=True):
        if want.size:
            np.testing.assert_array_equal(step.sound, to_int16(want))
        else:
            assert step.sound is None  # the opening is held until 0.4 s have arrived
    assert [c.index for c in chunks] == [0, 1, 2]


def test_played_wraps_a_run_in_the_players_start_and_end():
    stats = RunStats(engine="kokoro", ttfa_s=0.25)
    piece = np.zeros(240, np.int16)
    updates = iter([(None, "waiting", None), (piece, "streaming", stats), (None, "finished", stats)])
    out = list(streaming.played(StreamPlayer, updates, outputs=2))
    assert json.loads(out[0][0])["k"] == "start" and out[0][1] == gr.skip()
    assert out[1] == (gr.skip(), "waiting")
    message = json.loads(out[2][0])
    assert message["k"] == "piece" and message["ttfa"] == 0.25 and out[2][1] == "streaming"
    assert out[3] == (gr.skip(), "finished")
    assert json.loads(out[4][0])["k"] == "end" and len(out) == 5


def test_pair_events_become_player_messages_with_or_without_figures():
    result = ClipResult(Slot("kokoro", "jm_kumo"), RunStats(engine="kokoro", ttfa_s=0.5))
    start = json.loads(streaming.pair_message(SlotStarted("A", result)))
    assert start["k"] == "start" and result.player_run == start["run"]
    chunk = SlotChunk("A", noise(0), result)
    assert json.loads(streaming.pair_message(chunk))["ttfa"] == 0.5
    assert "ttfa" not in json.loads(streaming.pair_message(chunk, figures=False))  # the blind arena
    assert json.loads(streaming.pair_message(SlotFinished("A", result)))["k"] == "end"
    assert streaming.pair_message(Measuring()) is None
