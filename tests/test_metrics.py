"""Comparison metrics on known signals: loudness, WER/CER and its normalisation, speaker similarity, predicted MOS."""

from __future__ import annotations

import numpy as np
import pytest

from engines import audio
from engines.base import SynthesisRequest
from evaluation import metrics


def sine(level_lufs: float, rate: int, seconds: float = 3.0, freq: float = 997.0) -> np.ndarray:
    """A mono sine at a known loudness: a full-scale 997 Hz sine measures -3.01 LUFS (BS.1770)."""
    amplitude = 10 ** ((level_lufs + 3.01) / 20)
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("rate", [24_000, 48_000])
def test_a_tone_at_minus_20_lufs_measures_minus_20(rate):
    assert metrics.loudness(sine(-20.0, rate), rate) == pytest.approx(-20.0, abs=0.5)
    assert metrics.loudness(sine(-30.0, rate), rate) == pytest.approx(-30.0, abs=0.5)


def test_loudness_is_undefined_under_0_4_s():
    assert metrics.loudness(sine(-20.0, 24_000, seconds=0.3), 24_000) is None


def test_word_error_rate_of_the_exact_transcript_is_zero():
    text = "On the 3rd of May, the temperature reached 31 degrees."
    assert metrics.word_error_rate(text, text) == 0.0
    assert metrics.word_error_rate("I have 4 cats.", "i have four cats") == 0.0
    assert metrics.word_error_rate("I have four cats", "I have four dogs") == pytest.approx(0.25)


@pytest.fixture(scope="module")
def speech(packaged_kokoro):
    def say(text: str, voice: str) -> np.ndarray:
        return audio.join(packaged_kokoro.stream(SynthesisRequest(text, voice)))

    return say


FIRST = "The birch canoe slid on the smooth planks, and we watched it drift away."
SECOND = "A large size in stockings is hard to sell, so the shop keeps only a few."


@pytest.mark.slow
def test_similarity_is_near_one_for_the_same_clip_and_lower_for_another_voice(speech):
    kumo = speech(FIRST, "jm_kumo")
    same = metrics.speaker_similarity(kumo, 24_000, kumo, 24_000)
    same_voice = metrics.speaker_similarity(speech(SECOND, "jm_kumo"), 24_000, kumo, 24_000)
    other_voice = metrics.speaker_similarity(speech(SECOND, "jf_alpha"), 24_000, kumo, 24_000)
    assert same == pytest.approx(1.0, abs=1e-3)
    assert other_voice < same_voice < same
    assert same_voice > 0.85 and same_voice - other_voice > 0.2  # measured 0.95 vs 0.52


@pytest.mark.slow
def test_predicted_mos_drops_when_noise_is_added(speech):
    clean = speech(FIRST, "jm_kumo")
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0, np.std(clean), clean.shape).astype(np.float32), -1, 1)
    clean_mos, noisy_mos = metrics.predicted_mos(clean, 24_000), metrics.predicted_mos(noisy, 24_000)
    assert 1.0 <= noisy_mos < clean_mos <= 5.0
    assert clean_mos - noisy_mos > 0.8  # measured 3.39 vs 1.81 at 0 dB SNR


def test_japanese_punctuation_and_spaces_do_not_count_as_errors():
    assert metrics.error_unit("ja") == "character"
    assert metrics.error_rate("こんにちは、世界。", "こんにちは世界", "ja") == 0.0
    assert metrics.error_rate("「こんにちは」 世界！", "こんにちは 世界", "ja") == 0.0


CHARACTER_TEXTS = [("ja", "今日はいい天気ですね。"), ("zh", "今天天气很好。"), ("ko", "오늘 날씨가 좋네요.")]


@pytest.mark.parametrize(("language", "reference"), CHARACTER_TEXTS)
def test_one_wrong_character_out_of_n_is_one_over_n(language, reference):
    letters = metrics.normalize(reference, language).replace(" ", "")
    wrong = letters[:2] + ("X" if letters[2] != "X" else "Y") + letters[3:]
    if language == "ja":  # Japanese is scored on its reading: one kana of it wrong
        letters = metrics.reading(reference)
        wrong = letters[:2] + ("ヌ" if letters[2] != "ヌ" else "ア") + letters[3:]
    assert metrics.error_unit(language) == "character"
    assert metrics.error_rate(reference, wrong, language) == pytest.approx(1 / len(letters))


def test_space_delimited_languages_count_words():
    assert metrics.error_unit("fr") == metrics.error_unit("en") == metrics.error_unit(None) == "word"
    assert metrics.error_rate("Le chat dort ici.", "le chien dort ici", "fr") == pytest.approx(0.25)


def test_numbers_are_spelled_out_in_the_language_of_the_text():
    assert metrics.error_rate("J'ai 21 ans.", "j'ai vingt et un ans", "fr") == 0.0
    assert metrics.error_rate("J'ai 21 ans.", "j'ai twenty one ans", "fr") > 0
    assert metrics.error_rate("Tengo 16 años.", "tengo dieciséis años", "es") == 0.0
    assert metrics.error_rate("３月２１日です。", "三月二十一日です", "ja") == 0.0  # full-width digits, kanji numerals
    assert "3" in metrics.normalize("我有3只猫。", "zh")  # num2words has no Chinese: digits stay digits
    assert metrics.normalize("I have 4 cats.") == metrics.normalize("I have 4 cats.", "en") == "i have four cats"
