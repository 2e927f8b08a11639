"""One home for the language spoken: the engine says it (`registry.spoken_language`, `AudioChunk.language`)
and the scorers use it instead of a recogniser's guess."""

from __future__ import annotations

import numpy as np
import pytest

from engines.base import AudioChunk, SynthesisRequest
from engines.runtime import registry, wire
from evaluation import parity


def spoken(engine: str, text: str, voice: str, language: str | None = None) -> str | None:
    return registry.spoken_language(engine, SynthesisRequest(text=text, voice=voice, language=language))


def test_kokoro_says_a_japanese_voice_reading_latin_text_speaks_english():
    assert spoken("kokoro", "The birch canoe slid on the smooth planks.", "jf_alpha") == "en"
    assert spoken("kokoro", "吾輩は猫である。", "jf_alpha") == "ja"
    assert spoken("kokoro", "Hola, ¿qué tal?", "jf_alpha", "Spanish") == "es"
    assert spoken("kokoro", "Hello there.", "ef_dora") == "es"  # a Spanish voice reads in Spanish


def test_qwen_says_the_language_asked_for_and_nothing_on_auto():
    assert spoken("qwen-custom", "Hello there.", "Ryan") is None  # the model chooses: detect it
    assert spoken("qwen-custom", "こんにちは", "Ono_Anna", "Japanese") == "ja"


def test_a_bad_voice_spec_or_unknown_engine_says_nothing_rather_than_raise():
    assert spoken("kokoro", "Hello.", "no_such_voice") is None
    assert spoken("nope", "Hello.", "af_heart") is None


@pytest.mark.slow
def test_kokoro_chunks_carry_the_language_spoken(packaged_kokoro):
    chunks = list(packaged_kokoro.stream(SynthesisRequest("Good morning.", "jf_alpha")))
    assert chunks and {c.language for c in chunks} == {"en"}


def test_the_engine_tier_wire_keeps_the_language_spoken():
    chunk = AudioChunk(np.zeros(240, np.float32), "hola", "ola", 0, language="es")
    (back,) = list(wire.read_frames([wire.chunk_frame(chunk), wire.END_FRAME]))
    assert back.language == "es"
    (plain,) = list(
        wire.read_frames([wire.chunk_frame(AudioChunk(np.zeros(4, np.float32), "x", "", 0)), wire.END_FRAME])
    )
    assert plain.language is None


def test_parity_scores_an_engine_clip_in_the_language_the_engine_spoke(monkeypatch, offline_env):
    heard_in: list[str | None] = []

    def fake_align(audio, rate, text, language=None):
        heard_in.append(language)
        raise RuntimeError("stop here")

    monkeypatch.setattr(parity, "align_clip", fake_align)
    clip = np.sin(np.arange(24_000) / 7.0).astype(np.float32) * 0.1
    try:
        parity.measure("The birch canoe.", "jf_alpha", clip, clip, reference=clip[::-1].copy(), engine="kokoro")
    except RuntimeError:
        pass
    assert heard_in == ["en"]  # not None: a multilingual recogniser would have guessed (once: Japanese)
