"""Batching across visitors (`engines.qwen.batcher`) on the tiny random Qwen3-TTS checkpoints.

Counted, never timed: the `generate_*` calls and the rows of each, per-request chunk texts and order.
Where audio is compared, generation is made greedy (deterministic) by the spy that counts the calls.
"""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from engines.base import SynthesisRequest
from engines.qwen.batcher import batch_wait_s
from engines.qwen.engine import BATCH_SIZE, QwenCloneEngine, QwenCustomEngine
from engines.reference import load_reference
from engines.runtime import registry, timing, work_queue
from engines.settings import SettingsError

SAMPLES_PER_FRAME = 1920
WAIT_FOR_ALL = "60000"  # BATCH_WAIT_MS, its most: the first step waits for full rows (ends early when they are)


def tone_wav(seconds: float) -> bytes:
    t = np.arange(int(seconds * 24_000)) / 24_000
    buffer = io.BytesIO()
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), 24_000, format="WAV")
    return buffer.getvalue()


def until(condition, timeout: float = 60.0) -> None:
    """Wait for something another thread does (a deadline against hanging, not a timing assert)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.005)


@pytest.fixture(scope="module")
def qwen_env(qwen_dirs):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QWEN_CUSTOM_VOICE_MODEL", str(qwen_dirs["custom"]))
        mp.setenv("QWEN_BASE_MODEL", str(qwen_dirs["clone"]))
        mp.setenv("TORCH_THREADS", "1")
        yield


@pytest.fixture(scope="module")
def engine(qwen_env):
    engine = QwenCustomEngine()
    engine.load("cpu")
    return engine


@pytest.fixture()
def calls(engine, monkeypatch):
    """Every `generate_custom_voice` call as (texts, languages, speakers), made greedy; `calls.before`
    may hold a function run at the start of a call (in the step's thread, the model's lock held)."""
    original = engine._model.generate_custom_voice
    record = _Calls()

    def spy(**kwargs):
        record.append((list(kwargs["text"]), list(kwargs["language"]), list(kwargs["speaker"])))
        if record.before is not None:
            record.before(len(record))
        return original(**kwargs, do_sample=False, subtalker_dosample=False)

    monkeypatch.setattr(engine._model, "generate_custom_voice", spy)
    return record


class _Calls(list):
    before = None


def together(engine, requests: list[SynthesisRequest], keep=None) -> list:
    """Each request streamed in its own thread, in the batcher in this order; its chunks (or the
    exception it raised). Under `WAIT_FOR_ALL` the first step starts when its rows are full."""
    results: list = [None] * len(requests)

    def visitor(n: int) -> None:
        try:
            results[n] = list(engine.stream(requests[n])) if keep is None else keep(n, engine.stream(requests[n]))
        except Exception as exc:  # the test looks at it
            results[n] = exc

    threads = [threading.Thread(target=visitor, args=(n,)) for n in range(len(requests))]
    for n, thread in enumerate(threads):
        thread.start()
        until(lambda n=n: len([j for j in engine._batcher._jobs if not j.finished]) == n + 1)
    for thread in threads:
        thread.join(300)
    return results


REQUESTS = [
    SynthesisRequest("Hello there friend. And more words here.", "Ryan", language="English", max_new_tokens=16),
    SynthesisRequest("Guten Tag. Wie geht es dir heute?", "Aiden", language="German", max_new_tokens=16),
    SynthesisRequest("Short one. Another short one.", "Vivian", max_new_tokens=16),
    SynthesisRequest("Bonjour a tous. Merci beaucoup.", "Serena", language="French", max_new_tokens=16),
]


def test_concurrent_requests_share_generate_calls_and_each_gets_its_own_audio(engine, calls, monkeypatch):
    monkeypatch.setenv("BATCH_WAIT_MS", "0")
    alone = [list(engine.stream(r)) for r in REQUESTS]  # one after another: one row per call
    assert [len(texts) for texts, _, _ in calls] == [1] * 8
    calls.clear()
    monkeypatch.setenv("BATCH_WAIT_MS", WAIT_FOR_ALL)
    steps = engine._batcher.steps
    batched = together(engine, REQUESTS)
    # two calls of four rows: every first sentence, then every second one; languages and speakers per row
    assert [len(texts) for texts, _, _ in calls] == [BATCH_SIZE, BATCH_SIZE] and engine._batcher.steps == steps + 2
    firsts = {(r.text.split(". ")[0] + ".", r.language or "Auto", r.voice) for r in REQUESTS}
    assert set(zip(*calls[0], strict=True)) == firsts
    for request, mine, solo in zip(REQUESTS, batched, alone, strict=True):
        sentences = [c.text for c in mine if c.text]
        assert sentences == request.text.replace(". ", ".|").split("|")  # its own sentences, in order
        assert [c.index for c in mine] == list(range(len(mine)))
        # greedy generation: each visitor's audio is what the same request gets alone
        assert [len(c.audio) for c in mine] == [len(c.audio) for c in solo]
        assert max(np.max(np.abs(a.audio - b.audio)) for a, b in zip(mine, solo, strict=True)) < 1e-4


def test_a_request_arriving_mid_text_joins_the_next_sentence_step(engine, calls, monkeypatch):
    monkeypatch.setenv("BATCH_WAIT_MS", "0")
    long = SynthesisRequest(" ".join(f"Sentence number {n} is here." for n in range(9)), "Ryan", max_new_tokens=4)
    late = SynthesisRequest("Bee one is here. Bee two is here.", "Aiden", max_new_tokens=4)
    arrived: list = []

    def on_call(n: int) -> None:
        if n == 2:  # the long text's second step is running: the late visitor arrives now
            arrived.append(threading.Thread(target=lambda: arrived.append(list(engine.stream(late)))))
            arrived[0].start()
            until(lambda: len(engine._batcher._jobs) == 2)

    calls.before = on_call
    chunks = list(engine.stream(long))
    arrived[0].join(300)
    texts = [t for t, _, _ in calls]
    s = [f"Sentence number {n} is here." for n in range(9)]
    # one step per call: the late one's first sentence is in the third, before the long one's last
    assert texts == [[s[0]], s[1:5], ["Bee one is here.", s[5], s[6], s[7]], [s[8], "Bee two is here."]]
    assert [c.text for c in chunks] == s
    assert [c.text for c in arrived[1]] == ["Bee one is here.", "Bee two is here."]


def test_a_visitor_who_leaves_does_not_break_the_others(engine, calls, monkeypatch):
    monkeypatch.setenv("BATCH_WAIT_MS", WAIT_FOR_ALL)
    monkeypatch.setattr(engine._batcher, "rows", 2)  # the first step starts once both are in
    stay = SynthesisRequest("I stay here. Until the very end. Of my text.", "Ryan", max_new_tokens=30)
    leave = SynthesisRequest("I leave early. You will not hear this.", "Aiden", max_new_tokens=30)

    def keep(n, stream):
        if n == 0:
            return list(stream)
        first = next(stream)  # 12 frames in, while the shared step goes on for the other
        stream.close()
        return [first]

    stayed, left = together(engine, [stay, leave], keep)
    assert [c.text for c in stayed if c.text] == ["I stay here.", "Until the very end.", "Of my text."]
    assert sum(len(c.audio) for c in stayed[:3]) == 29 * SAMPLES_PER_FRAME  # its first sentence, whole
    assert [c.text for c in left] == ["I leave early."]
    assert calls[0][0] == ["I stay here.", "I leave early."]  # one shared step, in the order they came
    assert all("You will not hear this." not in texts for texts, _, _ in calls[1:])  # gone from the next steps
    until(lambda: not engine._lock.locked() and not engine._batcher._jobs)
    assert list(engine.stream(SynthesisRequest("Still fine.", "Ryan", max_new_tokens=4)))


def test_a_row_the_model_rejects_fails_only_its_own_request(engine, calls, monkeypatch):
    monkeypatch.setenv("BATCH_WAIT_MS", WAIT_FOR_ALL)
    monkeypatch.setattr(engine._batcher, "rows", 2)
    real = engine._conditioning

    def conditioning(request):  # a speaker the model does not know, past the engine's own check
        return {"speaker": "Nobody", "instruct": None} if request.voice == "Broken" else real(request)

    monkeypatch.setattr(engine, "_conditioning", conditioning)
    good = SynthesisRequest("All is well. Really well.", "Ryan", max_new_tokens=4)
    bad = SynthesisRequest("This one fails.", "Broken", max_new_tokens=4)
    served, failed = together(engine, [good, bad])
    assert [c.text for c in served] == ["All is well.", "Really well."]
    assert isinstance(failed, ValueError) and "Nobody" in str(failed)
    # the shared step failed, then each request alone: only the one at fault fails
    assert [t for t, _, _ in calls] == [
        ["All is well.", "This one fails."], ["All is well."], ["This one fails."], ["Really well."]
    ]  # fmt: skip


def test_first_sentences_stream_in_pieces_alone_and_in_a_shared_step(engine, calls, monkeypatch):
    monkeypatch.setenv("BATCH_WAIT_MS", "0")
    one = SynthesisRequest("Hello there.", "Ryan", max_new_tokens=30)
    lone = list(engine.stream(one))
    assert [c.text for c in lone] == ["Hello there.", "", ""]  # 29 frames: 12 + 12 + 5
    monkeypatch.setenv("BATCH_WAIT_MS", WAIT_FOR_ALL)
    monkeypatch.setattr(engine._batcher, "rows", 2)
    other = SynthesisRequest("Good morning.", "Sohee", max_new_tokens=30)
    pair = together(engine, [one, other])
    assert [len(t) for t, _, _ in calls] == [1, 2]
    for chunks, text in zip(pair, ["Hello there.", "Good morning."], strict=True):
        assert [c.text for c in chunks] == [text, "", ""]
        assert [len(c.audio) for c in chunks] == [12 * SAMPLES_PER_FRAME, 12 * SAMPLES_PER_FRAME, 5 * SAMPLES_PER_FRAME]
    assert max(np.max(np.abs(a.audio - b.audio)) for a, b in zip(lone, pair[0], strict=True)) < 1e-4


def test_icl_and_x_vector_clones_share_a_step(qwen_env, monkeypatch):
    clone = QwenCloneEngine()
    clone.load("cpu")
    original, rows = clone._model.generate_voice_clone, []

    def spy(**kwargs):
        rows.append(len(kwargs["text"]))
        return original(**kwargs, do_sample=False, subtalker_dosample=False)

    monkeypatch.setattr(clone._model, "generate_voice_clone", spy)
    monkeypatch.setenv("BATCH_WAIT_MS", WAIT_FOR_ALL)
    monkeypatch.setattr(clone._batcher, "rows", 2)
    reference = load_reference(tone_wav(2.0))
    icl = SynthesisRequest("Hello. Again.", "", reference=reference, reference_text="A line.", max_new_tokens=14)
    xvec = SynthesisRequest("Hi there. Once more.", "", reference=reference, x_vector_only=True, max_new_tokens=14)
    batched = together(clone, [icl, xvec])
    assert rows == [2, 2]
    monkeypatch.setenv("BATCH_WAIT_MS", "0")
    for request, mine in zip([icl, xvec], batched, strict=True):
        solo = list(clone.stream(request))
        assert [c.text for c in mine] == [c.text for c in solo] and len(mine) >= 2
        assert max(np.max(np.abs(a.audio - b.audio)) for a, b in zip(mine, solo, strict=True)) < 1e-4


def test_four_visitors_through_the_work_queue_share_one_step(qwen_env, monkeypatch):
    monkeypatch.setenv("BATCH_WAIT_MS", WAIT_FOR_ALL)
    monkeypatch.setenv("MAX_WAITING", "8")
    engine = timing.load("qwen-custom")  # the registry's engine, as every way in uses it
    original, rows = engine._model.generate_custom_voice, []

    def spy(**kwargs):
        rows.append(len(kwargs["text"]))
        return original(**kwargs)

    monkeypatch.setattr(engine._model, "generate_custom_voice", spy)
    texts = ["One is here.", "Two is here.", "Three is here.", "Four is here."]
    results: dict = {}

    def visitor(text: str) -> None:
        audio, chunks, stats = timing.synthesize("qwen-custom", SynthesisRequest(text, "Ryan", max_new_tokens=4))
        results[text] = [c.text for c in chunks]

    threads = [threading.Thread(target=visitor, args=(text,)) for text in texts]
    for thread in threads:
        thread.start()
    try:  # four tickets have their turn at once: the batcher's first step sees all four
        until(lambda: len(engine._batcher._jobs) == 4)
    finally:
        monkeypatch.setenv("BATCH_WAIT_MS", "0")  # never leave the threads waiting if it failed
        with engine._batcher._cond:
            engine._batcher._cond.notify_all()
        for thread in threads:
            thread.join(300)
    assert rows == [4] and results == {text: [text] for text in texts}
    assert work_queue.line("qwen-custom").running() == 0
    registry.unload("qwen-custom")


def test_batch_wait_ms_is_read_from_the_environment(monkeypatch):
    monkeypatch.delenv("BATCH_WAIT_MS", raising=False)
    assert batch_wait_s() == 0.02
    for raw, seconds in (("0", 0.0), ("5", 0.005), (" 60000 ", 60.0)):
        monkeypatch.setenv("BATCH_WAIT_MS", raw)
        assert batch_wait_s() == seconds
    for raw in ("junk", "-3", "60001"):  # once the default or the nearest bound: now one sentence
        monkeypatch.setenv("BATCH_WAIT_MS", raw)
        with pytest.raises(SettingsError, match="BATCH_WAIT_MS must be a number from 0 to 60000"):
            batch_wait_s()


def test_qwen_lines_serve_batch_size_requests_at_once_kokoro_one(monkeypatch):
    assert work_queue.line("qwen-custom").slots == work_queue.line("qwen-clone").slots == BATCH_SIZE
    assert work_queue.line("kokoro").slots == 1
    monkeypatch.setenv("MAX_WAITING", "10")
    line = work_queue.EngineQueue("test-slots", slots=2)
    line.observe(100, 10.0)  # 0.1 s per character
    tickets = [line.enter(10.0) for _ in range(5)]
    assert [t.position() for t in tickets] == [0, 0, 1, 2, 3]  # two run, the rest wait in order
    # the work ahead is shared over the two slots: 10 s left of the running, then 10 + 10 over two
    assert [round(t.estimate_s()) for t in tickets[2:]] == [10, 15, 20]
    tickets[1].leave()
    assert [t.position() for t in tickets] == [0, 0, 0, 1, 2]  # first come, first served
    for ticket in tickets:
        ticket.leave()
