"""Comparison metrics on known signals: loudness, WER, speaker similarity, predicted MOS."""

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
