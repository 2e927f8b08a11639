"""The packaged real Kokoro weights offline: ONNX back-end, real G2P, ASR round trip."""

from __future__ import annotations

import numpy as np
import pytest

from engines import audio
from engines.base import SynthesisRequest, UnavailableError
from engines.text import ChunkPlan
from evaluation.metrics import transcribe, word_error_rate


@pytest.fixture(scope="module")
def engine(packaged_kokoro):
    return packaged_kokoro


def _speak(engine, text: str, voice: str = "jm_kumo", **kw) -> np.ndarray:
    return audio.join(engine.stream(SynthesisRequest(text, voice, **kw)))


def test_offline_default_is_the_packaged_onnx_model(engine):
    info = engine.info()
    assert info.backend == "onnx" and info.device == "cpu"
    assert info.weights_source.startswith("packaged")
    assert sorted(v.id for v in info.voices if v.available) == [
        "jf_alpha",
        "jf_gongitsune",
        "jf_nezumi",
        "jf_tebukuro",
        "jm_kumo",
    ]


@pytest.mark.slow
def test_asr_round_trip_of_the_dev_sentences(engine, dev_sentences, artifacts):
    clips = [_speak(engine, s) for s in dev_sentences]
    audio.write(artifacts / "dev_sentences.wav", np.concatenate(clips))
    hypotheses = [transcribe(c, 24_000) for c in clips]
    wer = word_error_rate(" ".join(dev_sentences), " ".join(hypotheses))
    (artifacts / "dev_sentences_asr.txt").write_text("\n".join(hypotheses) + f"\nWER {wer:.3f}\n")
    assert wer <= 0.10, hypotheses


def test_audio_length_follows_the_text(engine):
    one = len(_speak(engine, "The juice of lemons makes fine punch."))
    three = len(_speak(engine, "The juice of lemons makes fine punch. " * 3))
    assert 2.3 * one < three < 3.7 * one


def test_speed_changes_duration(engine):
    text = "Rice is often served in round bowls."
    assert len(_speak(engine, text, speed=0.6)) > 1.4 * len(_speak(engine, text, speed=1.2))


def test_hub_only_voice_offline_names_the_available_voices(engine):
    with pytest.raises(UnavailableError, match="af_heart needs the model hub.*jm_kumo"):
        list(engine.stream(SynthesisRequest("Hello.", "af_heart")))
    assert len(_speak(engine, "The next request still works.")) > 24_000


def test_other_languages_use_their_g2p(engine):
    chunks = list(engine.stream(SynthesisRequest("今日はいい天気ですね。", "jf_alpha")))
    assert "teŋkʲi" in chunks[0].phonemes
    french = list(engine.stream(SynthesisRequest("Bonjour tout le monde.", "jf_alpha", language="French")))
    assert "bɔ̃ʒˈuʁ" in french[0].phonemes


def test_chunks_join_without_clicks(engine):
    chunks = list(engine.stream(SynthesisRequest("One, two, three. Four, five, six. " * 4, "jm_kumo")))
    assert len(chunks) >= 3
    for c in chunks:  # every chunk starts and ends at (near) zero thanks to the fades
        assert abs(c.audio[0]) < 1e-3 and abs(c.audio[-1]) < 1e-3


def test_a_first_chunk_sized_for_its_time_is_its_first_words_and_nothing_is_lost(engine, monkeypatch):
    # KOKORO_FIRST_AUDIO_S=0.6 on a machine this slow (0.9 s per call + 0.05 s per phoneme): the floor
    monkeypatch.setattr(engine, "plan", ChunkPlan(first_audio_s=0.6, first_floor=12).calibrated(0.9, 0.05, 0.05))
    text = "The birch canoe slid on the smooth planks, and we glued the sheet to it. Rice is served in bowls."
    chunks = list(engine.stream(SynthesisRequest(text, "jm_kumo")))
    assert chunks[0].text == "The birch"
    first = chunks[0]
    assert len(first.phonemes) <= engine.plan.first_max
    assert text.startswith(first.text) and first.text.split()[-1] in text.split()  # whole words
    assert " ".join(c.text for c in chunks).split() == text.split()
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_a_first_chunk_cut_at_a_phrase_ends_before_the_verb_or_preposition_and_loses_nothing(engine, monkeypatch):
    plan = ChunkPlan(first_audio_s=0.6, first_floor=15, first_cut="phrase").calibrated(0.3, 0.02, 0.05)
    monkeypatch.setattr(engine, "plan", plan)
    whole = "Unfortunately everything happened."
    for text, head in [
        ("The birch canoe slid on the smooth planks, and we glued the sheet to it.", "The birch canoe"),
        ("Glue the sheet to the dark blue background.", "Glue the sheet"),
        ("The box was thrown beside the parked truck.", "The box"),  # never "The box was" | "thrown"
        (whole, whole),  # no phrase head fits: the whole clause
    ]:
        chunks = list(engine.stream(SynthesisRequest(text, "jm_kumo")))
        assert chunks[0].text == head
        assert " ".join(c.text for c in chunks).split() == text.split()
