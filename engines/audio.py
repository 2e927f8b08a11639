"""Audio helpers shared by engines, UI, API and CLI: int16 conversion, edge fades, silence trim,
joining chunks, loudness (ITU-R BS.1770 via pyloudnorm, with a true-peak guard) and encoding whole
clips: WAV, FLAC, MP3 and OGG/Vorbis through libsndfile, Ogg Opus through ffmpeg's libopus (pipes
only), and raw PCM (16-bit little-endian mono, OpenAI's `pcm`).
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

from .base import SAMPLE_RATE, AudioChunk, EngineError, InputError

# format -> (libsndfile container, subtype); "opus" goes through ffmpeg because libsndfile 1.2.2's
# Opus encoder leaves a spike in the last samples (its decoder is fine)
_SNDFILE: dict[str, tuple[str, str]] = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "ogg": ("OGG", "VORBIS"),
}
FORMATS: tuple[str, ...] = ("wav", "flac", "mp3", "ogg", "opus", "pcm")
MEDIA_TYPES: dict[str, str] = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "opus": "audio/ogg; codecs=opus",
    "pcm": "audio/pcm",  # raw s16le mono at the clip's rate (24 kHz), no header
}
OPUS_BITRATE = "64k"
FADE_S = 0.005
SILENCE_DB = -50.0
MIN_LOUDNESS_S = 0.4  # BS.1770 gating blocks are 400 ms: shorter clips have no integrated loudness
TRUE_PEAK_DBFS = -1.0


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] to int16, clipping what lies outside."""
    return (np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767.0).astype(np.int16)


def fade_edges(
    audio: np.ndarray, sample_rate: int = SAMPLE_RATE, fade_s: float = FADE_S, start: bool = True, end: bool = True
) -> np.ndarray:
    """Raised-cosine fade in and out, so that joined chunks meet at zero without a click."""
    out = np.array(audio, dtype=np.float32, copy=True)
    n = min(int(sample_rate * fade_s), len(out) // 2)
    if n > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n, dtype=np.float32))
        if start:
            out[:n] *= ramp
        if end:
            out[-n:] *= ramp[::-1]
    return out


def silent_edges(
    audio: np.ndarray, sample_rate: int = SAMPLE_RATE, threshold_db: float = SILENCE_DB
) -> tuple[int, int]:
    """Index of the first and one past the last sample louder than the threshold (in 10 ms frames)."""
    frame = max(1, sample_rate // 100)
    usable = len(audio) // frame * frame
    if usable == 0:
        return 0, len(audio)
    rms = np.sqrt(np.mean(np.square(audio[:usable].reshape(-1, frame), dtype=np.float64), axis=1))
    loud = np.flatnonzero(rms > 10 ** (threshold_db / 20))
    if loud.size == 0:
        return 0, 0
    return int(loud[0] * frame), int(min(len(audio), (loud[-1] + 1) * frame))


def trim_silence(
    audio: np.ndarray, sample_rate: int = SAMPLE_RATE, keep_s: float = 0.04, pause_s: float = 0.0
) -> tuple[np.ndarray, int]:
    """Cut silence at both ends down to `keep_s`, then add `pause_s` of silence at the end.

    Returns the new audio and how many samples were cut from the start.
    """
    start, stop = silent_edges(audio, sample_rate)
    if stop <= start:
        return np.zeros(int(pause_s * sample_rate), dtype=np.float32), 0
    keep = int(keep_s * sample_rate)
    head = max(0, start - keep)
    body = np.asarray(audio[head : min(len(audio), stop + keep)], dtype=np.float32)
    return np.concatenate([body, np.zeros(int(pause_s * sample_rate), np.float32)]), head


def integrated_loudness(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float | None:
    """Integrated loudness in LUFS; None for clips under 0.4 s or silence (no gated block)."""
    import pyloudnorm

    samples = np.asarray(audio, dtype=np.float64)
    if len(samples) < MIN_LOUDNESS_S * sample_rate:
        return None
    value = pyloudnorm.Meter(sample_rate).integrated_loudness(samples)
    return float(value) if np.isfinite(value) else None


def true_peak_dbfs(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Peak of the 4x oversampled signal in dBFS (BS.1770 true peak, approximated with soxr)."""
    import soxr

    samples = np.asarray(audio, dtype=np.float32)
    if samples.size == 0:
        return -np.inf
    upsampled = soxr.resample(samples, sample_rate, 4 * sample_rate)
    peak = float(max(np.max(np.abs(upsampled)), np.max(np.abs(samples))))
    return 20 * np.log10(peak) if peak > 0 else -np.inf


def loudness_gain(
    audio: np.ndarray, target_lufs: float, sample_rate: int = SAMPLE_RATE, peak_dbfs: float = TRUE_PEAK_DBFS
) -> tuple[float, str]:
    """Linear gain that brings a clip to `target_lufs` without its true peak passing `peak_dbfs`.

    Returns the gain and a note for the user when the target could not be met (clip too short or
    silent: peak guard only; or the peak guard held the level below the target).
    """
    peak = true_peak_dbfs(audio, sample_rate)
    if not np.isfinite(peak):
        return 1.0, "The clip is silent; loudness left as it is."
    headroom_db = peak_dbfs - peak
    measured = integrated_loudness(audio, sample_rate)
    if measured is None:
        gain_db = min(0.0, headroom_db)
        return 10 ** (gain_db / 20), "Clip shorter than 0.4 s: loudness cannot be measured, peak guard only."
    gain_db = target_lufs - measured
    if gain_db > headroom_db:
        reached = measured + headroom_db
        return 10 ** (headroom_db / 20), (
            f"Peak guard: reached {reached:.1f} LUFS instead of {target_lufs:g} to keep peaks at {peak_dbfs:g} dBFS."
        )
    return 10 ** (gain_db / 20), ""


def normalize_loudness(
    audio: np.ndarray, target_lufs: float, sample_rate: int = SAMPLE_RATE, peak_dbfs: float = TRUE_PEAK_DBFS
) -> tuple[np.ndarray, str]:
    """The clip at `target_lufs` (peak-guarded), and the note from `loudness_gain`."""
    gain, note = loudness_gain(audio, target_lufs, sample_rate, peak_dbfs)
    return (np.asarray(audio, dtype=np.float32) * np.float32(gain)), note


def join(chunks: Iterable[AudioChunk]) -> np.ndarray:
    """The whole clip: the chunks' audio end to end."""
    parts = [c.audio for c in chunks]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def encode(audio: np.ndarray, fmt: str = "wav", sample_rate: int = SAMPLE_RATE) -> bytes:
    """Encode mono float audio as bytes of the given format (one of `FORMATS`).

    `pcm` is raw 16-bit little-endian mono at `sample_rate`, no header (OpenAI's `pcm`). `opus` is
    Ogg Opus at ~64 kb/s from ffmpeg's libopus; the stream records the input rate, so libsndfile
    decodes it at `sample_rate` (24 kHz, an Opus native rate) with the original duration (pre-skip
    removed).
    """
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise InputError(f"Unknown audio format {fmt!r}; choose one of: {', '.join(FORMATS)}.")
    samples = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    if fmt == "pcm":
        return to_int16(samples).astype("<i2").tobytes()
    if fmt == "opus":
        return _ffmpeg_opus(samples, sample_rate)
    container, subtype = _SNDFILE[fmt]
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, format=container, subtype=subtype)
    return buffer.getvalue()


def _ffmpeg_opus(samples: np.ndarray, sample_rate: int) -> bytes:
    """Ogg Opus bytes from ffmpeg (libopus), PCM in through stdin and the file out through stdout."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise EngineError("Opus output needs ffmpeg, which is not installed here; choose another format.")
    command = [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin",
        "-f", "s16le", "-ar", str(sample_rate), "-ac", "1", "-i", "pipe:0",
        "-c:a", "libopus", "-b:a", OPUS_BITRATE, "-application", "audio", "-f", "ogg", "pipe:1",
    ]  # fmt: skip
    pcm = to_int16(samples).astype("<i2").tobytes()
    try:
        done = subprocess.run(command, input=pcm, capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineError(f"The Opus encoder (ffmpeg) failed: {exc}.") from None
    if done.returncode != 0 or not done.stdout:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise EngineError(f"The Opus encoder (ffmpeg) failed: {detail[-1] if detail else 'no output'}.")
    return done.stdout


def write(path: Path, audio: np.ndarray, fmt: str | None = None, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write a clip to `path`, the format taken from `fmt` or the file suffix."""
    path = Path(path)
    path.write_bytes(encode(audio, fmt or path.suffix.lstrip(".") or "wav", sample_rate))
    return path
