"""Audio helpers: formats decode with the right rate and duration, fades, trimming, int16."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from engines import audio
from engines.base import InputError


def tone(seconds: float, rate: int = 24_000, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def decode(data: bytes, fmt: str) -> tuple[np.ndarray, int]:
    if fmt == "pcm":  # raw: the rate is the contract, not in the bytes
        return sf.read(io.BytesIO(data), format="RAW", subtype="PCM_16", samplerate=24_000, channels=1, endian="LITTLE")
    return sf.read(io.BytesIO(data))


@pytest.mark.parametrize("fmt", audio.FORMATS)
def test_each_format_decodes_with_the_right_rate_and_duration(fmt):
    data, rate = decode(audio.encode(tone(2.0), fmt), fmt)
    assert rate == 24_000
    assert abs(len(data) / rate - 2.0) < 0.06  # mp3 frames pad a little
    assert np.max(np.abs(data)) == pytest.approx(0.3, abs=0.05)
    # no click at the end (libsndfile's own Opus encoder left a spike in the last samples)
    assert np.max(np.abs(data[-240:])) < 0.35


def test_opus_is_ogg_opus_with_the_exact_duration_and_pcm_is_raw_int16():
    info = sf.info(io.BytesIO(audio.encode(tone(1.5), "opus")))
    assert (info.format, info.subtype, info.samplerate) == ("OGG", "OPUS", 24_000)
    assert info.frames == 36_000  # pre-skip removed: the same number of samples as the input
    raw = audio.encode(tone(1.5), "pcm")
    assert len(raw) == 2 * 36_000 and not raw.startswith(b"RIFF")
    assert set(audio.MEDIA_TYPES) == set(audio.FORMATS)


def test_unknown_format_is_refused():
    with pytest.raises(InputError, match="Unknown audio format 'aiff'"):
        audio.encode(tone(0.1), "aiff")


def test_int16_conversion_clips_instead_of_wrapping():
    out = audio.to_int16(np.array([0.0, 0.5, 1.5, -2.0], np.float32))
    assert out.dtype == np.int16 and list(out) == [0, 16383, 32767, -32767]


def test_fades_bring_both_ends_to_zero_and_keep_the_middle():
    faded = audio.fade_edges(np.ones(24_000, np.float32))
    assert faded[0] == 0.0 and faded[-1] == 0.0
    assert np.all(faded[200:-200] == 1.0)


def test_trim_keeps_a_margin_and_adds_the_pause():
    clip = np.concatenate([np.zeros(12_000, np.float32), tone(1.0), np.zeros(24_000, np.float32)])
    trimmed, head = audio.trim_silence(clip, keep_s=0.04, pause_s=0.2)
    assert head == pytest.approx(12_000 - 960, abs=240)
    assert len(trimmed) / 24_000 == pytest.approx(1.0 + 0.08 + 0.2, abs=0.03)


def test_silence_only_becomes_just_the_pause():
    trimmed, head = audio.trim_silence(np.zeros(24_000, np.float32), pause_s=0.1)
    assert len(trimmed) == 2_400 and head == 0


def test_a_tone_normalized_to_minus_20_lufs_measures_minus_20():
    out, note = audio.normalize_loudness(tone(3.0, level=0.05), -20.0)
    assert note == ""
    assert audio.integrated_loudness(out) == pytest.approx(-20.0, abs=0.5)


def test_the_peak_guard_holds_true_peak_at_minus_1_dbfs():
    out, note = audio.normalize_loudness(tone(3.0, level=0.05), -3.0)
    assert "Peak guard" in note
    assert audio.true_peak_dbfs(out) == pytest.approx(-1.0, abs=0.1)


def test_a_clip_under_0_4_s_has_no_loudness_and_gets_the_peak_guard_only():
    assert audio.integrated_loudness(tone(0.3)) is None
    out, note = audio.normalize_loudness(tone(0.3, level=0.99), -16.0)
    assert "shorter than 0.4 s" in note and audio.true_peak_dbfs(out) <= -0.9
