"""Reference clips for cloning: every bad upload gets one clear sentence."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from test_qwen import wav_bytes

from engines.base import InputError
from engines.reference import load_reference


def test_stereo_96k_clip_becomes_mono_24k():
    ref = load_reference(wav_bytes(2.0, rate=96_000, channels=2))
    assert ref.sample_rate == 24_000 and ref.original_rate == 96_000 and ref.channels == 2
    assert ref.audio.ndim == 1 and abs(ref.duration_s - 2.0) < 0.01


def test_formats_ffmpeg_reads_are_accepted():
    import subprocess

    mp4 = subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "wav", "-i", "pipe:0", "-c:a", "aac", "-f", "adts", "pipe:1"],
        input=wav_bytes(2.0), capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert abs(load_reference(mp4).duration_s - 2.0) < 0.1


def _hour_of_silence_flac() -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(16_000 * 3600, np.int16), 16_000, format="FLAC")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: b"", "empty"),
        (lambda: b"this is not audio at all" * 100, "not audio that can be read"),
        (lambda: wav_bytes(0.3), "only 0.3 s long"),
        (lambda: wav_bytes(3.0, level=0.0), "silent"),
        (lambda: wav_bytes(3.0, rate=8_000), "sampled at 8 kHz"),
        (_hour_of_silence_flac, "3600 s long"),
    ],
)
def test_bad_references(make, message):
    with pytest.raises(InputError, match=message):
        load_reference(make())
