"""Kokoro inside a sentence: the front half once, the decoder in windows (`engines.kokoro.windows`).

The PyTorch back-end runs on the tiny random model (no weights needed); the int8 ONNX one, split into
front, source and decoder graphs, on the packaged model (slow: Whisper hears both renders).
"""

from __future__ import annotations

import numpy as np
import pytest

from engines.base import SAMPLE_RATE, SynthesisRequest
from engines.kokoro.engine import KokoroEngine
from engines.kokoro.windows import FIRST_FRAMES, breaks_at_spaces, window_edges
from engines.settings import SettingsError
from evaluation.parity import mel_distance

SENTENCE = "The birch canoe slid on the smooth planks, and we glued the sheet to the dark blue background."
LONG = "Four hours of steady work faced us, and the quick brown fox jumped over the lazy dog near the river bank"


@pytest.fixture(scope="module")
def engines(tiny_kokoro_dir):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KOKORO_MODEL", str(tiny_kokoro_dir))
        mp.delenv("KOKORO_BACKEND", raising=False)
        whole = KokoroEngine(stream_plan="whole")
        whole.load("cpu")
    windows = KokoroEngine(stream_plan="windows")
    windows._backend, windows.plan = whole._backend, whole.plan  # one loaded model, two plans
    return whole, windows


def _render(engine, text, voice="af_heart"):
    chunks = list(engine.stream(SynthesisRequest(text, voice)))
    return chunks, np.concatenate([c.audio for c in chunks])


def _timeline(chunks):
    words, at = [], 0.0
    for c in chunks:
        words += [(w.word, at + w.start_s, at + w.end_s) for w in c.words]
        at += c.duration_s
    return words


def test_window_edges_cover_the_speech_in_growing_windows_that_start_where_words_do():
    durations = np.array([10] + [3] * 60 + [8])  # boundary tokens of 10 and 8 frames
    breaks = list(range(2, 61, 4))
    edges = window_edges(durations, breaks)
    starts = np.concatenate([[0], np.cumsum(durations)])
    assert edges[0][0] == 10 - 2 and edges[-1][1] == starts[-1] - 8 + 2
    assert all(a == b for (_, a), (b, _) in zip(edges, edges[1:], strict=False))  # consecutive
    assert all(int(a) in {int(starts[k]) for k in breaks} for a, _ in edges[1:])
    sizes = [b - a for a, b in edges]
    assert sizes[0] >= FIRST_FRAMES and sizes[0] < 2 * FIRST_FRAMES
    assert sizes[1] > sizes[0]


def test_a_word_begins_after_each_space_but_not_before_punctuation():
    space, dot = 16, 4
    assert breaks_at_spaces([1, 2, space, 3, space, dot], space, {dot}) == [4]


def test_windowed_and_whole_renders_of_a_sentence_agree(engines):
    whole, windows = engines
    a_chunks, a = _render(whole, SENTENCE)
    b_chunks, b = _render(windows, SENTENCE)
    assert len(b_chunks) > len(a_chunks)  # it did stream inside the sentences
    assert abs(len(b) - len(a)) / len(a) < 0.01
    _, other = _render(whole, SENTENCE, "af_bella")
    bar = mel_distance(a, other)  # two voices: the distance a different render would be
    assert mel_distance(a, b) < bar / 5
    assert [c.index for c in b_chunks] == list(range(len(b_chunks)))


def test_a_window_boundary_leaves_no_click(engines):
    whole, windows = engines
    _, a = _render(whole, LONG)
    chunks, b = _render(windows, LONG)
    assert len(chunks) >= 3
    largest = float(np.max(np.abs(np.diff(a))))  # the sentence's own largest sample-to-sample step
    for edge in np.cumsum([len(c.audio) for c in chunks])[:-1]:
        assert abs(float(b[edge]) - float(b[edge - 1])) <= largest


def test_word_timings_are_the_whole_renders(engines):
    whole, windows = engines
    a_chunks, _ = _render(whole, SENTENCE)
    b_chunks, _ = _render(windows, SENTENCE)
    a_words, b_words = _timeline(a_chunks), _timeline(b_chunks)
    assert [w for w, _, _ in b_words] == [w for w, _, _ in a_words] and len(a_words) == 18
    for (_, s1, e1), (_, s2, e2) in zip(a_words, b_words, strict=True):
        assert abs(s1 - s2) < 0.015 and abs(e1 - e2) < 0.015  # the trims' 10 ms grid
    for chunk in b_chunks:  # each window's words are whole and timed from its own start
        assert chunk.words and chunk.text == " ".join(w.word for w in chunk.words)
        assert chunk.words[-1].end_s <= chunk.duration_s + 1e-6


def test_stop_mid_sentence_stops_at_the_window(engines, monkeypatch):
    _, windows = engines
    backend = windows._loaded()
    calls = {"plan": 0, "decode": 0}
    plan, decode = backend.plan, backend.decode

    def counted(name, fn):
        def run(*args):
            calls[name] += 1
            return fn(*args)

        return run

    monkeypatch.setattr(backend, "plan", counted("plan", plan))
    monkeypatch.setattr(backend, "decode", counted("decode", decode))
    stream = windows.stream(SynthesisRequest(LONG, "af_heart"))
    first = next(stream)
    stream.close()  # the listener pressed Stop
    assert calls == {"plan": 1, "decode": 1}
    assert 0.2 < first.duration_s < 1.0
    assert len(list(windows.stream(SynthesisRequest(LONG, "af_heart")))) >= 3  # the whole thing has more windows


def test_a_sentence_renders_the_same_every_time(engines):
    whole, windows = engines
    for engine in (whole, windows):  # the harmonic source's noise is seeded per sentence
        assert np.array_equal(_render(engine, "Hello there.")[1], _render(engine, "Hello there.")[1])


def test_the_stream_plan_comes_from_kokoro_stream(monkeypatch):
    monkeypatch.setenv("KOKORO_STREAM", "windows")
    assert KokoroEngine().stream_plan == "windows"
    monkeypatch.setenv("KOKORO_STREAM", "clauses")
    clauses = KokoroEngine()
    assert clauses.plan.first_cut == "phrase" and clauses.plan.first_audio_s
    monkeypatch.setenv("KOKORO_STREAM", "sideways")  # once a warning and `whole`: now it stops the app at start
    with pytest.raises(SettingsError, match="KOKORO_STREAM must be one of whole, windows or clauses"):
        KokoroEngine()


@pytest.mark.slow
@pytest.mark.xfail(
    strict=False,
    reason="known gap (#23): on the int8 model a window is normalised and quantised over itself, so windowed "
    "and whole renders differ by ~0.3-0.35 of the two-voices bar (4.19 dB against 12.18 in the merged run); "
    "windows stays opt-in (KOKORO_STREAM), whole the default",
)
def test_onnx_windows_agree_with_the_whole_render(packaged_kokoro):
    """The packaged int8 model split into front, source and decoder graphs: same length, same words."""
    from engines.kokoro.backends import split_onnx
    from evaluation.parity import heard

    whole = packaged_kokoro
    windows = KokoroEngine(stream_plan="windows")
    windows._backend, windows.plan = whole._backend, whole.plan
    text = "Glue the sheet to the dark blue background. It is easy to tell the depth of a well."
    a_chunks, a = _render(whole, text, "jm_kumo")
    b_chunks, b = _render(windows, text, "jm_kumo")
    assert len(b_chunks) > len(a_chunks)
    assert abs(len(b) - len(a)) / len(a) < 0.01
    _, other = _render(whole, text, "jf_alpha")
    bar = mel_distance(a, other)
    assert mel_distance(a, b) < bar / 3  # measured ~0.28 of the bar (issue #23 asks for a fifth: not met yet)
    assert heard(a, SAMPLE_RATE, text).words == heard(b, SAMPLE_RATE, text).words
    paths = split_onnx(whole._loaded()._weights.model_path)  # made once: the cached graphs come back
    assert all(p.is_file() for p in paths)
