"""Parity measures (evaluation/parity.py): duration, log-mel distance after time alignment, ASR words.

Synthetic "speech" (harmonic vowels under formant envelopes) tests the measures fast; the packaged
Kokoro tests them on real voices."""

from __future__ import annotations

import numpy as np
import pytest

from engines import audio
from engines.base import SAMPLE_RATE, SynthesisRequest
from evaluation import parity

# (F1, F2, F3) in Hz of a few vowels, one after another
VOWELS = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (640, 1190, 2390)]
DURATIONS = [0.18, 0.25, 0.15, 0.3, 0.22]


def voiced(f0: float, formant_scale: float = 1.0, stretch: float = 1.0, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Vowels on a pitch `f0` with formants scaled by `formant_scale` (another vocal tract: another
    voice); `stretch` makes every vowel last longer (the same voice, spoken slower)."""
    pieces = [np.zeros(int(0.1 * sr), np.float32)]
    for formants, seconds in zip(VOWELS, DURATIONS, strict=True):
        t = np.arange(int(seconds * stretch * sr)) / sr
        harmonics = np.arange(1, int(5000 / f0)) * f0
        gains = sum(np.exp(-(((harmonics - f * formant_scale) / 90.0) ** 2)) for f in formants) + 0.01
        wave = (gains[:, None] * np.sin(2 * np.pi * harmonics[:, None] * t[None, :])).sum(0)
        pieces.append((wave * np.hanning(len(t)) ** 0.2).astype(np.float32))
    pieces.append(np.zeros(int(0.1 * sr), np.float32))
    clip = np.concatenate(pieces)
    return (0.3 * clip / np.abs(clip).max()).astype(np.float32)


def test_identical_audio_is_zero_distance_and_zero_duration_difference():
    clip = voiced(120)
    assert parity.mel_distance(clip, clip.copy()) == pytest.approx(0.0, abs=1e-6)
    assert parity.duration_difference_pct(clip, clip.copy()) == 0.0


def test_a_gain_change_is_not_a_difference():
    clip = voiced(120)
    assert parity.mel_distance(clip, 0.5 * clip) < 0.01


def test_another_voice_is_farther_than_the_same_voice():
    mine, again, other = voiced(120), voiced(120), voiced(210, formant_scale=1.18)
    assert parity.mel_distance(mine, again) < 0.01
    assert parity.mel_distance(mine, other) > 3.0


def test_a_time_stretched_copy_aligns():
    clip, slower = voiced(120), voiced(120, stretch=1.08)
    assert parity.duration_difference_pct(clip, slower) == pytest.approx(8.0 * 1.1 / 1.3, abs=0.2)
    aligned = parity.mel_distance(clip, slower)
    # frame by frame without alignment, the vowels drift apart: the warping path pairs them again
    x, y = parity.log_mel(clip, SAMPLE_RATE), parity.log_mel(slower, SAMPLE_RATE)
    n = min(len(x), len(y))
    unaligned = float(np.sqrt(((x[:n] - y[:n]) ** 2).mean(1)).mean())
    assert aligned < unaligned / 2
    assert aligned < parity.mel_distance(clip, voiced(210, formant_scale=1.18)) / 2


def test_clips_at_different_sample_rates_compare_by_time():
    clip = voiced(120)
    at_16k = voiced(120, sr=16_000)
    assert parity.duration_difference_pct(clip, at_16k, SAMPLE_RATE, 16_000) < 0.1
    assert parity.mel_distance(clip, at_16k, SAMPLE_RATE, 16_000) < 1.0


def test_an_empty_clip_is_refused():
    with pytest.raises(ValueError):
        parity.duration_difference_pct(np.zeros(0, np.float32), voiced(120))


def test_other_voice_is_a_different_available_voice_of_the_same_gender(offline_env):
    assert parity.other_voice("jf_alpha") == "jf_gongitsune"
    assert parity.other_voice("jf_gongitsune:0.5,jm_kumo:0.5") == "jf_alpha"
    assert parity.other_voice("jm_kumo") != "jm_kumo"


@pytest.mark.slow
def test_real_voices_two_renderings_of_one_voice_beat_two_voices(packaged_kokoro):
    text = "The birch canoe slid on the smooth planks."

    def speak(voice: str) -> np.ndarray:
        return audio.join(packaged_kokoro.stream(SynthesisRequest(text, voice)))

    first, again, other = speak("jf_alpha"), speak("jf_alpha"), speak("jf_gongitsune")
    figures = parity.measure(text, "jf_alpha", first, again, reference=other, reference_voice="jf_gongitsune")
    assert figures["duration_diff_pct"] < 2.0
    assert figures["mel_distance"] < figures["reference_distance"] and figures["below_reference"]
    assert figures["reference_distance"] > 3.0
    assert figures["same_words"] and "planks" in figures["words_a"]
    # a different voice is farther from the first rendering than a copy with a little noise
    noisy = first + np.random.default_rng(0).normal(0, 1e-3, len(first)).astype(np.float32)
    assert parity.mel_distance(first, noisy) < figures["reference_distance"]
