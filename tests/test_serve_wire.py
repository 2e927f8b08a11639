"""The wire format between the app and the engine tier (`engines/runtime/wire.py`), without Ray."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engines.base import AudioChunk, BusyError, EngineError, InputError, SynthesisRequest, UnavailableError, WordTiming
from engines.reference import Reference
from engines.runtime import wire


def _chunk(index: int) -> AudioChunk:
    audio = np.linspace(-0.5, 0.5, 2400 + index, dtype=np.float32)
    words = (WordTiming("Hello", "həlˈO", 0.0, 0.25),)
    return AudioChunk(audio=audio, text=f"Hello {index}.", phonemes="həlˈO", index=index, words=words)


def test_chunks_come_back_as_they_were_sent_even_split_at_any_byte():
    sent = [_chunk(0), _chunk(1)]
    stream = b"".join(wire.chunk_frame(c, "replica-a") for c in sent) + wire.END_FRAME
    pieces = [stream[i : i + 7] for i in range(0, len(stream), 7)]  # frames cut across reads
    got = list(wire.read_frames(pieces))
    assert len(got) == 2
    for a, b in zip(sent, got, strict=True):
        assert (a.index, a.text, a.phonemes, a.words, a.sample_rate) == (b.index, b.text, b.phonemes, b.words, 24_000)
        assert np.array_equal(a.audio, b.audio)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (InputError("Please enter some text to speak."), InputError),
        (UnavailableError("The model is missing."), UnavailableError),
        (BusyError("Busy; try again in about 3 seconds.", 3), BusyError),
        (EngineError("Something sensible."), EngineError),
    ],
)
def test_an_error_frame_raises_the_engine_error_with_its_sentence(error, kind):
    stream = [wire.chunk_frame(_chunk(0)), wire.error_frame(error)]
    chunks = wire.read_frames(stream)
    assert next(chunks).index == 0
    with pytest.raises(kind) as caught:
        next(chunks)
    assert type(caught.value) is kind and str(caught.value) == str(error)


def test_an_unexpected_failure_is_one_sentence_without_its_details():
    with pytest.raises(EngineError) as caught:
        list(wire.read_frames([wire.error_frame(RuntimeError("/secret/path.py line 3: boom"))]))
    assert str(caught.value) == wire.REPLICA_FAILED


def test_a_stream_cut_before_its_end_is_a_failed_request():
    frames = wire.chunk_frame(_chunk(0)) + wire.chunk_frame(_chunk(1))
    with pytest.raises(EngineError, match="lost the replica"):
        list(wire.read_frames([frames[:-10]]))


def test_a_request_survives_the_round_trip_with_its_reference_clip():
    clip = (0.3 * np.sin(np.arange(48_000) * 2 * np.pi * 220 / 24_000)).astype(np.float32)
    reference = Reference(audio=clip, sample_rate=24_000, original_rate=24_000, channels=1, digest="x")
    request = SynthesisRequest(
        text="Hi there.", voice="", speed=1.25, language="English", reference=reference,
        reference_text="What I said.", x_vector_only=False, max_new_tokens=40,
    )  # fmt: skip
    back = wire.request_from_json(wire.request_to_json(request))
    assert (back.text, back.speed, back.language, back.reference_text, back.max_new_tokens) == (
        "Hi there.", 1.25, "English", "What I said.", 40,
    )  # fmt: skip
    assert back.reference.sample_rate == 24_000 and np.allclose(back.reference.audio, clip, atol=1e-6)
    assert back.owner is None  # no visitor state crosses the wire


def test_an_int16_reference_is_accepted_and_resampled():
    clip = (8000 * np.sin(np.arange(32_000) * 2 * np.pi * 220 / 16_000)).astype("<i2")
    body = {
        "text": "Hi.", "reference": {"pcm": base64.b64encode(clip.tobytes()).decode(), "dtype": "int16",
                                      "sample_rate": 16_000, "transcript": None},
    }  # fmt: skip
    request = wire.request_from_json(body)
    assert request.reference.sample_rate == 24_000 and len(request.reference.audio) == 48_000


def _table_data(table: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(table, dtype="<f4").tobytes()).decode("ascii")


def test_a_found_voices_style_table_survives_the_round_trip_exactly():
    table = np.random.default_rng(1).standard_normal((510, 256)).astype(np.float32)
    request = SynthesisRequest(text="Hello.", voice="twin", owner="alice", style_table=table)
    back = wire.request_from_json(wire.request_to_json(request))
    assert np.array_equal(back.style_table, table) and back.voice == "twin"
    assert back.owner is None  # the owner check is the web app's: the tier never sees who it is


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.none(), st.integers(), st.text(max_size=50), st.dictionaries(st.text(max_size=8), st.integers())))
def test_any_style_table_field_that_is_not_a_voice_is_one_sentence(table):
    body = {"text": "Hi.", "voice": "v", "style_table": table}
    if table is None:
        assert wire.request_from_json(body).style_table is None
        return
    with pytest.raises(InputError):
        wire.request_from_json(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, 2], "must be a JSON object"),
        ({"text": "", "voice": "a"}, "Please enter some text"),
        ({"text": 5, "voice": "a"}, "Please enter some text"),
        ({"text": "Hi.", "voice": "a", "speed": 9}, "Speed must be between"),
        ({"text": "Hi.", "voice": "a", "max_new_tokens": "many"}, "whole number"),
        ({"text": "Hi.", "reference": {"pcm": "%%%", "dtype": "float32", "sample_rate": 24_000}}, "not valid base64"),
        ({"text": "Hi.", "reference": {"pcm": "AAAA", "dtype": "float64", "sample_rate": 24_000}}, "dtype float32"),
        ({"text": "Hi.", "reference": {"pcm": "AAAA", "dtype": "int16", "sample_rate": 24_000}}, "mid-sample"),
        ({"text": "Hi.", "voice": "v", "saved_voice": {"meta": 3}}, "meta and tensors"),
        ({"text": "Hi.", "voice": "v", "style_table": {"rows": 9, "data": ""}}, "rows \\(510\\)"),
        ({"text": "Hi.", "voice": "v", "style_table": {"rows": 510, "data": "AAAA" * 10**6}}, "not the size"),
        ({"text": "Hi.", "voice": "v", "style_table": {"rows": 510, "data": "%" * 696_320}}, "not valid base64"),
        (
            {
                "text": "Hi.",
                "voice": "v",
                "style_table": {"rows": 510, "data": _table_data(np.full((510, 256), np.nan))},
            },
            "not a number",
        ),
    ],
)
def test_a_bad_request_is_refused_in_one_sentence(body, message):
    with pytest.raises(InputError, match=message):
        wire.request_from_json(body)


def test_engine_server_makes_the_registry_build_remote_engines_that_say_when_it_is_down(monkeypatch):
    from engines.runtime import registry
    from engines.runtime.remote import RemoteEngine

    monkeypatch.setenv("ENGINE_SERVER", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setattr(registry, "_instances", {})
    monkeypatch.setattr(registry, "_loaded", set())
    info = registry.info("kokoro")
    assert isinstance(registry._instances["kokoro"], RemoteEngine)
    assert not info.available and info.reason == wire.SERVER_UNREACHABLE
    with pytest.raises(UnavailableError, match="does not answer"):
        registry.get("kokoro")
