"""Every decoded input is bounded before it is decoded: the container's rate, channels and length are read
first, and what is accepted is decoded in blocks straight to mono 24 kHz (`engines.decoding`).

Memory is measured as the growth of this process's peak RSS (VmHWM in /proc/self/status, reset through
/proc/self/clear_refs before each decode)."""

from __future__ import annotations

import io
import subprocess

import numpy as np
import pytest
import soundfile as sf

from engines.base import SAMPLE_RATE, InputError
from engines.decoding import MAX_RATE, decode_audio
from engines.reference import load_reference

MB = 2**20


def peak_rss_growth(work) -> tuple[object, float]:
    """(what `work()` returned or the InputError it raised, growth of the peak RSS in MB while it ran)."""

    def status(key: str) -> int:
        with open("/proc/self/status") as handle:
            line = next(line for line in handle if line.startswith(key + ":"))
        return int(line.split()[1]) * 1024

    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # peak RSS := current RSS
    before = status("VmRSS")
    try:
        result = work()
    except InputError as refused:
        result = refused
    return result, (status("VmHWM") - before) / MB


def flac(seconds: float, rate: int, channels: int, level: float = 0.0) -> bytes:
    """A FLAC written block by block (a quiet tone, or silence: a few KB for minutes of audio)."""
    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", rate, channels, format="FLAC", subtype="PCM_16") as out:
        block = np.arange(rate // 4) / rate
        tone = (level * np.sin(2 * np.pi * 220 * block)).astype(np.float32)
        for _ in range(int(seconds * 4)):
            out.write(np.repeat(tone[:, None], channels, axis=1))
    return buffer.getvalue()


def remux(data: bytes, fmt: str = "matroska") -> bytes:
    """The same audio stream inside another container (ffmpeg, no re-encode)."""
    command = ["ffmpeg", "-v", "error", "-i", "pipe:0", "-c", "copy", "-f", fmt, "pipe:1"]
    return subprocess.run(command, input=data, capture_output=True, check=True).stdout


def wav(seconds: float, rate: int, channels: int) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, np.repeat(tone[:, None], channels, axis=1), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def one_sentence(message: str) -> bool:
    return message.count(". ") == 0 and "Traceback" not in message and "/" not in message and len(message) < 200


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """The issue's file: 5 s of FLAC at 655,350 Hz × 8 channels, tens of KB on disk, ~105 MB as float32."""
    return flac(5.0, 655_350, 8)


def test_the_27_kb_flac_at_655_khz_and_8_channels_is_refused_before_decoding(bomb):
    assert len(bomb) < 64 * 1024
    refused, growth = peak_rss_growth(lambda: load_reference(bomb))
    assert isinstance(refused, InputError)
    assert "655,350 Hz" in str(refused) and one_sentence(str(refused))
    assert growth < 50


def test_the_same_flac_inside_matroska_is_refused_by_the_ffmpeg_path(bomb):
    mka = remux(bomb)
    with pytest.raises(sf.LibsndfileError):
        sf.info(io.BytesIO(mka))  # libsndfile cannot read it: this is the ffmpeg path
    refused, growth = peak_rss_growth(lambda: load_reference(mka))
    assert isinstance(refused, InputError) and "655,350 Hz" in str(refused)
    assert growth < 50


@pytest.mark.slow
def test_the_largest_accepted_format_decodes_in_bounded_memory():
    """60 s at 192 kHz × 8 channels is 352 MB as float32; decoded in blocks to 24 kHz mono it is 5.5 MB."""
    data = flac(60.0, MAX_RATE, 8, level=0.3)
    for name, payload in (("flac", data), ("mka", remux(data))):
        decoded, growth = peak_rss_growth(lambda payload=payload: decode_audio(payload, "clip", 60.0))
        assert not isinstance(decoded, InputError), decoded
        assert decoded.original_rate == MAX_RATE and decoded.channels == 8, name
        assert abs(decoded.duration_s - 60.0) < 0.05, name
        assert growth < 50, (name, growth)


def test_a_96_khz_stereo_wav_becomes_24_khz_mono_of_the_same_length():
    decoded = decode_audio(wav(3.0, 96_000, 2), "clip", 60.0)
    assert decoded.sample_rate == SAMPLE_RATE and decoded.original_rate == 96_000 and decoded.channels == 2
    assert decoded.audio.ndim == 1 and decoded.audio.dtype == np.float32
    assert len(decoded.audio) == pytest.approx(3 * SAMPLE_RATE, abs=2)
    # the tone survives the block-wise resampling: its level is the original's
    assert np.sqrt(np.mean(decoded.audio[SAMPLE_RATE:-SAMPLE_RATE] ** 2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.02)


def test_a_clip_longer_than_the_bound_is_refused_by_its_header():
    with pytest.raises(InputError, match="is 90 s long; please use a clip under 60 seconds"):
        decode_audio(flac(90.0, 48_000, 1), "clip", 60.0)


def test_a_stream_without_a_length_is_cut_at_the_bound_by_ffmpeg():
    """Matroska from a pipe carries no duration: ffmpeg is stopped a second past the bound."""
    mka = remux(flac(8.0, 48_000, 2, level=0.3))
    with pytest.raises(InputError, match="over 5 s long"):
        decode_audio(mka, "clip", 5.0)
    assert abs(decode_audio(mka, "clip", 10.0).duration_s - 8.0) < 0.05


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda data: data[:44], id="wav header only"),
        pytest.param(lambda data: data[:12], id="wav cut inside its header"),
        pytest.param(lambda data: data[: len(data) // 2], id="wav cut in half"),
    ],
)
def test_truncated_wavs_give_one_sentence_or_what_is_there(cut):
    data = cut(wav(2.0, 48_000, 1))
    try:
        decoded = decode_audio(data, "clip", 60.0)
    except InputError as refused:
        assert one_sentence(str(refused)), refused
    else:
        assert decoded.duration_s <= 1.01


@pytest.mark.parametrize("fmt", ["flac", "ogg", "mka"])
def test_truncated_compressed_files_give_one_sentence_or_what_is_there(fmt):
    whole = flac(3.0, 48_000, 2, level=0.3)
    if fmt == "ogg":
        buffer = io.BytesIO()
        sf.write(buffer, sf.read(io.BytesIO(whole))[0], 48_000, format="OGG", subtype="VORBIS")
        whole = buffer.getvalue()
    elif fmt == "mka":
        whole = remux(whole)
    for fraction in (0.02, 0.3, 0.7):
        data = whole[: int(len(whole) * fraction)]
        try:
            decoded = decode_audio(data, "clip", 60.0)
        except InputError as refused:
            assert one_sentence(str(refused)), refused
        else:
            assert decoded.duration_s <= 3.0


def test_a_caller_check_sees_the_container_before_decoding():
    def only_wav(probe):
        if probe.container != "WAV":
            raise InputError("Only WAV here.")

    with pytest.raises(InputError, match="Only WAV here"):
        decode_audio(flac(1.0, 48_000, 1), "clip", 60.0, check=only_wav)
    assert decode_audio(wav(1.0, 48_000, 1), "clip", 60.0, check=only_wav).duration_s == pytest.approx(1.0)


def test_random_bytes_are_not_audio():
    with pytest.raises(InputError, match="not audio that can be read"):
        decode_audio(np.random.default_rng(1).bytes(4096), "clip", 60.0)
