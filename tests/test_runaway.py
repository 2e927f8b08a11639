"""The runaway guard for Qwen3-TTS (`engines.qwen.runaway`, applied in `engines.qwen.batcher`).

The tiny random checkpoints never emit their end code, so without the guard every sentence runs to
the token cap; the guard must stop each at its bound. Everything is counted in frames (talker steps,
samples of audio), never timed.
"""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest

from engines.base import SynthesisRequest
from engines.qwen import runaway
from engines.qwen.engine import FRAMES_PER_SECOND, QwenCustomEngine, token_cap
from engines.qwen.runaway import REPEATING, TOO_LONG, LoopDetector, RowGuard, bound_s, find_loop
from engines.runtime.timing import RunStats, measured

SAMPLES_PER_FRAME = 1920  # 24 kHz / 12.5 Hz
SHORT = "Hello there."
LONG = "The quick brown fox jumps over the lazy dog and then it runs far away into the woods."


# ----- the bound ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [SHORT, LONG, "Hi.", "It was the best of times, it was the worst of times, it was the age of wisdom. " * 3],
)
def test_the_bound_is_tighter_than_the_token_cap_for_latin_text(text):
    cap_s = token_cap(text, None) / FRAMES_PER_SECOND
    assert bound_s(text, "English") < cap_s


@pytest.mark.parametrize(
    "text,language",
    [
        ("今天天气很好我们去公园散步吧", "Chinese"),
        ("吾輩は猫である。名前はまだ無い。", "Japanese"),
        ("天" * 400, "Auto"),
    ],
)
def test_cjk_text_gets_a_cap_above_its_bound_so_the_guard_and_not_the_cap_ends_it(text, language):
    cap = token_cap(text, None, language=language)
    assert bound_s(text, language, cap / FRAMES_PER_SECOND) < cap / FRAMES_PER_SECOND
    assert cap >= int(FRAMES_PER_SECOND * (3 + 0.2 * len(text)))  # never lower than before


def test_the_bound_grows_with_the_text_and_gives_cjk_characters_more_time_than_letters():
    assert bound_s(LONG, "English") > bound_s(SHORT, "English")
    latin, han = "abcdefghij" * 3, "天" * 30
    assert runaway.expected_s(han, "Chinese") > 2 * runaway.expected_s(latin, "English")
    # kanji in Japanese text are paced as Japanese, not as Chinese hanzi
    assert runaway.expected_s("今日は", "Japanese") < runaway.expected_s("今日天", "Chinese")


def test_the_bound_never_passes_the_cap_it_is_given():
    assert bound_s("天" * 200, "Chinese", cap_s=10.0) == 10.0


def test_punctuation_and_spaces_take_no_time_and_digits_take_several_letters():
    assert runaway.units("a, b. c!") == 3
    assert runaway.expected_s("7", "English") == pytest.approx(runaway.DIGIT_LETTERS * runaway.expected_s("a"))


# ----- the loop detector -------------------------------------------------------------------------
def test_a_repeated_period_is_found_and_the_first_copy_is_kept():
    speech = list(range(100, 130))  # 30 distinct frames
    cycle = [7, 8, 9, 10, 11]
    tokens = speech + cycle * 20
    start = find_loop(tokens)
    assert start == len(speech) + len(cycle)  # sane: the speech and one copy of the period


def test_a_stuck_token_is_a_loop_of_period_one():
    tokens = [5, 6, 7] + [3] * 40
    assert find_loop(tokens) == 4


def test_the_loop_is_reported_as_soon_as_min_repeat_frames_repeat():
    detector = LoopDetector()
    tokens = list(range(200, 210)) + [1, 2, 3, 4] * 20
    found = [n for n, t in enumerate(tokens, 1) if detector.feed(t) is not None]
    assert found[0] == 10 + 4 + runaway.MIN_REPEAT


def test_speech_like_frames_and_short_pauses_are_not_loops():
    rng = np.random.default_rng(0)
    assert find_loop(rng.integers(0, 2048, size=2000).tolist()) is None
    pause = [42] * (runaway.MIN_REPEAT - 1)  # just under 2 s of one token: a pause, not a loop
    assert find_loop(list(range(300, 340)) + pause + list(range(500, 540))) is None


def test_a_period_longer_than_min_repeat_must_repeat_whole():
    period = list(range(1000, 1035))  # 35 frames (2.8 s)
    tokens = list(range(1, 11)) + period + period[:30]
    assert find_loop(tokens) is None  # 30 of 35 frames repeated: not yet a whole period
    assert find_loop(tokens + period[30:]) == 10 + 35


def test_a_row_guard_stops_at_its_bound_or_at_a_loop():
    guard = RowGuard(bound_frames=10)
    assert [guard.feed(t) for t in range(100, 110)] == [False] * 9 + [True]
    assert (guard.reason, guard.keep, guard.frames) == (TOO_LONG, 10, 10)
    looping = RowGuard(bound_frames=1000)
    stops = [looping.feed(t) for t in [1, 2, 3] + [9] * 40]
    assert stops.index(True) == 3 + runaway.MIN_REPEAT
    assert (looping.reason, looping.keep) == (REPEATING, 4)
    assert looping.feed(5) is False  # ended: later frames are ignored


def test_a_row_that_reaches_a_cap_its_caller_asked_for_ends_there_without_a_notice():
    guard = RowGuard.for_text(LONG, "English", cap_frames=6)
    assert [guard.feed(t) for t in range(100, 106)] == [False] * 5 + [True]
    assert guard.ended and not guard.stopped
    assert not RowGuard.for_text(LONG, "English", cap_frames=1000).capped


@pytest.mark.parametrize("retried,again", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("reason", [TOO_LONG, REPEATING])
def test_the_notice_is_one_sentence(reason, retried, again):
    figures = {"reason": reason, "bound_s": 4.2, "observed_s": 4.2, "kept_s": 2.0, "retried": retried}
    if again:
        figures["again"] = True
    text = runaway.notice(figures)
    words = re.sub(r"\d+\.\d+", "N", text)  # "4.2 s" is not a full stop
    assert words.endswith(".") and sum(words.count(c) for c in ".!?") == 1 and "\n" not in text


# ----- the tiny checkpoints, through the batcher -------------------------------------------------
@pytest.fixture(scope="module")
def engine(qwen_dirs):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QWEN_CUSTOM_VOICE_MODEL", str(qwen_dirs["custom"]))
        mp.setenv("TORCH_THREADS", "1")
        mp.setenv("BATCH_WAIT_MS", "0")
        engine = QwenCustomEngine()
        engine.load("cpu")
        yield engine


class Spy:
    """Counts `generate_custom_voice` calls (texts, cap) and the talker's frames per call, and keeps the
    model from ever sampling its end code (as the guard's own hook runs after this one, only the guard
    ends a row); `force` (frame number -> first-codebook token) makes every row's next frame that token."""

    def __init__(self, engine, monkeypatch, force=None) -> None:
        self.calls: list[dict] = []
        self.force = force
        self.lock = threading.Lock()
        model = engine._model
        original = model.generate_custom_voice
        end_code = model.model.config.talker_config.codec_eos_token_id

        def spy(**kwargs):
            call = {"texts": list(kwargs["text"]), "cap": kwargs["max_new_tokens"], "frames": 0}
            with self.lock:
                self.calls.append(call)
            self.current = call
            return original(**kwargs)

        def hook(module, args, kwargs, output):
            codes = output.hidden_states[1] if output.hidden_states is not None else None
            if codes is not None:
                self.current["frames"] += 1
            if self.force is not None:
                step = self.current["frames"]
                output.logits[:, -1, :] = float("-inf")
                output.logits[:, -1, self.force(step)] = 0.0
            output.logits[:, -1, end_code] = float("-inf")  # random weights rarely sample it: never, here

        monkeypatch.setattr(model, "generate_custom_voice", spy)
        handle = model.model.talker.register_forward_hook(hook, with_kwargs=True)  # before the batcher's
        self.remove = handle.remove


@pytest.fixture()
def spy(request, monkeypatch):
    made = []

    def make(force=None, engine=None):
        made.append(Spy(engine or request.getfixturevalue("engine"), monkeypatch, force))
        return made[-1]

    yield make
    for s in made:
        s.remove()


def run(engine, text):
    stats = RunStats(engine="qwen-custom")
    chunks = list(measured(engine, SynthesisRequest(text=text, voice="Ryan", language="English"), stats))
    return chunks, stats


def sentence_frames(chunks, text):
    """Frames of audio the chunks of one sentence hold (a streamed sentence comes in pieces)."""
    out, current = {}, None
    for chunk in chunks:
        current = chunk.text or current
        out[current] = out.get(current, 0) + len(chunk.audio)
    return out[text] / SAMPLES_PER_FRAME


def bound_frames(text):
    return RowGuard.for_text(text, "English", token_cap(text, None)).bound_frames


def test_a_never_ending_sentence_is_stopped_at_its_bound_well_before_the_cap(engine, spy):
    calls = spy()
    chunks, stats = run(engine, SHORT)
    assert len(calls.calls) == 1  # the first sentence streams: heard, so never generated again
    frames, cap = calls.calls[0]["frames"], calls.calls[0]["cap"]
    assert bound_frames(SHORT) <= frames <= bound_frames(SHORT) + 1  # +1: the step that samples the end code
    assert frames < 0.8 * cap
    assert sentence_frames(chunks, SHORT) == bound_frames(SHORT)
    [stop] = stats.stops
    assert stop["reason"] == TOO_LONG and stop["retried"] is False
    assert stop["observed_s"] == stop["bound_s"] == round(bound_frames(SHORT) / FRAMES_PER_SECOND, 2)
    assert stats.summary()["runaway"] == [stop]
    assert len(stats.notes) == 1 and stats.notes[0] == chunks[-1].notes[0]
    from ui.common import status_line

    assert status_line("qwen-custom", stats, done=True).endswith(f" · {stats.notes[0]}")


def test_a_stopped_sentence_nobody_has_heard_is_retried_once_with_a_new_seed(engine, spy, monkeypatch):
    import torch

    seeds = []
    original = torch.manual_seed
    monkeypatch.setattr(torch, "manual_seed", lambda seed: seeds.append(seed) or original(seed))
    calls = spy()
    chunks, stats = run(engine, f"{SHORT} {LONG}")
    # the first sentence streams (heard: not retried); the second is generated, stopped, retried once
    assert [c["texts"] for c in calls.calls] == [[SHORT], [LONG], [LONG]]
    assert len(seeds) == 1
    assert [s["retried"] for s in stats.stops] == [False, True]
    assert stats.stops[1].get("again") is True  # the tiny model never ends: the retry is stopped too
    assert sentence_frames(chunks, LONG) == bound_frames(LONG)
    assert all(c["frames"] <= bound_frames(c["texts"][0]) + 1 for c in calls.calls)
    assert len(stats.notes) == 2 and all(n.count(". ") == 0 for n in stats.notes)


def test_stopping_one_row_leaves_the_others_of_its_step_running_to_their_own_end(engine, spy):
    calls = spy()
    text = f"{SHORT} {LONG} {LONG[:-1]} again."
    chunks, stats = run(engine, text)
    both = [c for c in calls.calls if len(c["texts"]) == 2]
    assert both, "the two long sentences share one step"
    step = both[0]
    # the step ran for its longest row's bound: one row's stop did not end it, and it ended then, not at the cap
    assert (
        max(bound_frames(t) for t in step["texts"]) <= step["frames"] <= max(bound_frames(t) for t in step["texts"]) + 1
    )
    assert step["frames"] < 0.8 * step["cap"]
    for sentence in step["texts"]:
        assert sentence_frames(chunks, sentence) == bound_frames(sentence)


def test_a_looping_row_is_cut_where_the_loop_began_before_its_bound(engine, spy):
    cycle = [11, 12, 13, 14, 15]
    calls = spy(force=lambda step: cycle[step % len(cycle)])
    chunks, stats = run(engine, f"{SHORT} {LONG}")
    first, second = stats.stops
    assert first["reason"] == second["reason"] == REPEATING
    loop_found_at = len(cycle) + runaway.MIN_REPEAT  # frames generated when the repetition is certain
    assert all(c["frames"] <= loop_found_at + 1 for c in calls.calls)  # well before either bound
    assert loop_found_at < bound_frames(SHORT) < bound_frames(LONG)
    # whole (not streamed) sentence: only the sane part, one copy of the period
    assert sentence_frames(chunks, LONG) == len(cycle)
    assert second["retried"] is True and second["again"] is True and second["kept_s"] == len(cycle) / 12.5
    # the streamed sentence keeps what was already heard, nothing after the loop was found
    assert sentence_frames(chunks, SHORT) <= loop_found_at


# ----- where the notice and the figures reach ------------------------------------------------------
def test_a_chunk_keeps_its_notice_and_figures_across_the_engine_tier_wire():
    from engines.base import AudioChunk
    from engines.runtime.wire import chunk_frame, read_frames

    figures = {"reason": TOO_LONG, "bound_s": 3.0, "observed_s": 3.0, "kept_s": 3.0, "retried": False}
    chunk = AudioChunk(np.zeros(480, np.float32), "", "", 2, notes=(runaway.notice(figures),), stops=(figures,))
    [back] = list(read_frames([chunk_frame(chunk), b"\0\0\0\x0f\0\0\0\0" + b'{"type": "end"}']))
    assert back.notes == chunk.notes and back.stops == (figures,)
    plain = AudioChunk(np.zeros(4, np.float32), "x", "", 0)
    assert b"notes" not in chunk_frame(plain)  # unchanged frames for chunks without them


@pytest.fixture()
def v1(qwen_dirs, monkeypatch, spy):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from api import router
    from engines.runtime import registry

    monkeypatch.setenv("QWEN_CUSTOM_VOICE_MODEL", str(qwen_dirs["custom"]))
    monkeypatch.setenv("TORCH_THREADS", "1")
    monkeypatch.setenv("BATCH_WAIT_MS", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    registry.unload("qwen-custom")
    app = FastAPI()
    app.include_router(router)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            spy(engine=registry.get("qwen-custom"))
            yield client
    finally:
        registry.unload("qwen-custom")


def test_v1_says_in_its_notes_and_figures_that_the_guard_stopped_a_sentence(v1):
    import json

    body = {"model": "qwen-custom", "input": SHORT, "voice": "Ryan", "language": "English"}
    whole = v1.post("/v1/audio/speech", json={**body, "response_format": "wav"})
    assert whole.status_code == 200, whole.text
    assert "Qwen3-TTS ran past" in whole.headers["x-output-notes"]
    with v1.stream("POST", "/v1/audio/speech", json={**body, "stream_format": "sse"}) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    done = events[-1]
    assert done["type"] == "speech.audio.done"
    [stop] = done["figures"]["runaway"]
    assert stop["reason"] == TOO_LONG and stop["retried"] is False and stop["observed_s"] == stop["bound_s"]
    assert any(note.startswith("Qwen3-TTS ran past") for note in done["notes"])
