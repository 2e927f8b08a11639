"""Audio helpers shared by engines, UI, API and CLI: int16 conversion (`to_int16`, `pcm16` bytes), edge
fades, silence trim, joining chunks, loudness (ITU-R BS.1770 via pyloudnorm, with a true-peak guard), the output
post-processing a user chooses (`OutputSettings`, `process` for whole clips, `StreamLeveler` for
streamed chunks) and encoding: whole clips (`encode`: WAV, FLAC, MP3 and OGG/Vorbis through
libsndfile, Ogg Opus through ffmpeg's libopus, raw PCM: 16-bit little-endian mono, OpenAI's `pcm`)
and streams (`StreamEncoder`: pcm, wav of unknown length, and mp3, opus, ogg through one ffmpeg pipe,
`ffmpeg_command`).
"""

from __future__ import annotations

import io
import logging
import math
import shutil
import struct
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from engines.base import SAMPLE_RATE, AudioChunk, EngineError, InputError, UnavailableError, shown

log = logging.getLogger(__name__)

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
LOSSY = ("mp3", "ogg", "opus")  # their decodes can peak above the PCM they were made from
OPUS_BITRATE = "64k"
OPUS_ARGS = ("-c:a", "libopus", "-b:a", OPUS_BITRATE, "-application", "audio", "-f", "ogg")  # ffmpeg output options
# ffmpeg's output options per format it encodes from a pipe: Opus always, MP3 and Vorbis when streamed
_FFMPEG_OUTPUT: dict[str, tuple[str, ...]] = {
    "mp3": ("-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3"),
    "opus": OPUS_ARGS,
    "ogg": ("-c:a", "libvorbis", "-q:a", "4", "-f", "ogg"),
}
STREAMED_FORMATS: tuple[str, ...] = ("pcm", "wav", *_FFMPEG_OUTPUT)  # what `StreamEncoder` writes
FADE_S = 0.005
SILENCE_DB = -50.0
MIN_LOUDNESS_S = 0.4  # BS.1770 gating blocks are 400 ms: shorter clips have no integrated loudness
TRUE_PEAK_DBFS = -1.0
LUFS_RANGE = (-40.0, -5.0)  # sane loudness targets; broadcast is -23, podcasts -16, streaming -14
LUFS_PRESETS = (-23.0, -16.0, -14.0)
END_FADE_S = 0.02  # the "fade" option: 20 ms at both ends of a whole clip
MAX_LIMIT_DB = 14.0  # the most the peak limiter may take off a peak to reach a loudness target
LIMIT_WINDOW_S = 0.01  # the limiter's look-ahead and release
# The limiter aims 0.5 dB under its ceiling: MP3 and Opus decodes of limited speech peaked up to
# 0.25 dB above the PCM they were made from (`encode` turns a lossy file down if it still passes).
LIMIT_MARGIN_DB = 0.5


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] to int16, clipping what lies outside."""
    return (np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767.0).astype(np.int16)


def pcm16(audio: np.ndarray) -> bytes:
    """Raw 16-bit little-endian PCM of mono audio: float in [-1, 1] (through `to_int16`), or int16 as it is."""
    samples = np.asarray(audio)
    if samples.dtype != np.int16:
        samples = to_int16(samples)
    return samples.astype("<i2", copy=False).tobytes()


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


def limit_true_peak(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, peak_dbfs: float = TRUE_PEAK_DBFS) -> np.ndarray:
    """A look-ahead peak limiter: the clip with its true peak `LIMIT_MARGIN_DB` under `peak_dbfs` at most.

    The gain each sample needs (from the 4x oversampled envelope) is spread 10 ms either side by a
    minimum filter and then smoothed by a 10 ms moving average of the same width, so the smoothed
    gain never exceeds what any sample needs and changes without clicks. Only the few peaks above
    the ceiling are touched; a clip below it comes back unchanged.
    """
    import soxr
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    samples = np.asarray(audio, dtype=np.float32)
    n = len(samples)
    if n == 0:
        return samples
    ceiling = 10 ** ((peak_dbfs - LIMIT_MARGIN_DB) / 20)
    up = np.abs(soxr.resample(samples, sample_rate, 4 * sample_rate))
    up = np.pad(up, (0, max(0, 4 * n - len(up))))[: 4 * n].reshape(n, 4).max(axis=1)
    envelope = np.maximum(np.abs(samples), up)
    need = np.minimum(1.0, ceiling / np.maximum(envelope, 1e-12))
    if need.min() >= 1.0:
        return samples
    width = 2 * max(1, int(LIMIT_WINDOW_S * sample_rate)) + 1
    gain = uniform_filter1d(minimum_filter1d(need, size=width, mode="nearest"), size=width, mode="nearest")
    return (samples * np.minimum(gain, need)).astype(np.float32)


def loudness_plan(
    audio: np.ndarray, target_lufs: float, sample_rate: int = SAMPLE_RATE, peak_dbfs: float = TRUE_PEAK_DBFS
) -> tuple[float, str]:
    """The gain that, followed by `limit_true_peak`, brings a clip to `target_lufs`, and a note.

    Speech peaks well above its loudness (Kokoro's sit ~21 dB over it), so at -16 or -14 LUFS a pure
    gain would pass -1 dBFS; the limiter shaves those peaks (at most `MAX_LIMIT_DB`; beyond that the
    gain is held back and the note says which level was reached). The limiter takes some loudness
    with it, so the gain is found by a few secant steps on the measured loudness of the limited
    clip (to 0.05 LU). A clip under 0.4 s or silent gets the plain peak guard of `loudness_gain`.
    """
    measured = integrated_loudness(audio, sample_rate)
    if measured is None:
        return loudness_gain(audio, target_lufs, sample_rate, peak_dbfs)
    most_db = peak_dbfs + MAX_LIMIT_DB - true_peak_dbfs(audio, sample_rate)

    def reached_at(gain_db: float) -> float:
        limited = limit_true_peak(audio * np.float32(10 ** (gain_db / 20)), sample_rate, peak_dbfs)
        return integrated_loudness(limited, sample_rate) or -np.inf

    gain_db = min(target_lufs - measured, most_db)
    reached, slope = reached_at(gain_db), 1.0
    for _ in range(4):
        if abs(reached - target_lufs) < 0.05 or (gain_db >= most_db and reached < target_lufs):
            break
        step = float(np.clip((target_lufs - reached) / slope, -6.0, 12.0))
        new_db = min(gain_db + step, most_db)
        new_reached = reached_at(new_db)
        if new_db != gain_db and np.isfinite(new_reached) and new_reached != reached:
            slope = float(np.clip((new_reached - reached) / (new_db - gain_db), 0.1, 1.0))
        gain_db, reached = new_db, new_reached
    note = ""
    if reached < target_lufs - 0.5:
        note = f"Peak guard: reached {reached:.1f} LUFS instead of {target_lufs:g} to keep peaks at {peak_dbfs:g} dBFS."
    return 10 ** (gain_db / 20), note


@dataclass(frozen=True)
class OutputSettings:
    """What to do to a clip before it is written; validated when built.

    `lufs`: loudness target in LUFS (None: leave the level), within `LUFS_RANGE`, true peak kept at
    -1 dBFS at most. `peak_normalize`: bring the true peak to -1 dBFS (used when `lufs` is None).
    `trim`: cut silence at both ends. `denoise`: spectral-gating noise reduction (noisereduce).
    `fade`: 20 ms fades at both ends.
    """

    lufs: float | None = None
    peak_normalize: bool = False
    trim: bool = False
    denoise: bool = False
    fade: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "lufs", parse_lufs(self.lufs))
        for name in ("peak_normalize", "trim", "denoise", "fade"):
            object.__setattr__(self, name, bool(getattr(self, name)))

    @property
    def active(self) -> bool:
        """Whether any processing is asked for."""
        return self.lufs is not None or self.peak_normalize or self.trim or self.denoise or self.fade

    @property
    def levels(self) -> bool:
        """Whether the level is changed (loudness target or peak normalization)."""
        return self.lufs is not None or self.peak_normalize

    def as_dict(self) -> dict:
        return asdict(self)


def parse_lufs(value: object) -> float | None:
    """A loudness target from a number or text ("-16", "-16 LUFS"); None, "", "off" mean no target."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "off", "none")):
        return None
    text = str(value).strip()
    if text.lower().endswith("lufs"):
        text = text[:-4].strip()
    try:
        target = float(text)
    except (TypeError, ValueError):
        raise InputError(f"The loudness target must be a number of LUFS, like -16; got {shown(value)}.") from None
    low, high = LUFS_RANGE
    if not math.isfinite(target) or not low <= target <= high:
        raise InputError(f"The loudness target must be between {low:g} and {high:g} LUFS; got {text}.")
    return target


def denoise(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Spectral-gating noise reduction (noisereduce) with the noise profile from the clip's pauses.

    The noise is estimated from the quietest fifth of the clip's 50 ms frames (the pauses), and the
    gate mask is not smoothed across frequency. With noisereduce's defaults (profile from the whole
    clip, 500 Hz mask smoothing) speech itself was gated: on Kokoro speech plus white noise the
    signal-to-noise ratio fell from 21 to 3 dB; with this profile it rises to 25 dB.
    """
    try:
        import noisereduce
    except ImportError:
        raise EngineError("Noise reduction needs the noisereduce package, which is not installed here.") from None
    samples = np.asarray(audio, dtype=np.float32)
    frame = sample_rate // 20
    count = len(samples) // frame
    if count < 10:  # under half a second: too little for a noise profile
        return samples
    frames = samples[: count * frame].reshape(count, frame)
    quietest = np.sort(np.argsort(np.mean(np.square(frames), axis=1))[: max(2, count // 5)])
    cleaned = noisereduce.reduce_noise(
        y=samples,
        sr=sample_rate,
        y_noise=frames[quietest].ravel(),
        stationary=True,
        prop_decrease=0.9,
        freq_mask_smooth_hz=None,
    )
    return np.asarray(cleaned, dtype=np.float32)


def peak_gain(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, peak_dbfs: float = TRUE_PEAK_DBFS) -> float:
    """Linear gain that puts the clip's true peak at `peak_dbfs` (1.0 for silence)."""
    peak = true_peak_dbfs(audio, sample_rate)
    return 10 ** ((peak_dbfs - peak) / 20) if np.isfinite(peak) else 1.0


def process(
    audio: np.ndarray, sample_rate: int = SAMPLE_RATE, settings: OutputSettings | None = None
) -> tuple[np.ndarray, list[str]]:
    """A whole clip post-processed: denoise -> trim -> loudness or peak normalization -> fades.

    Returns the clip and notes for the user (e.g. a clip too short to measure its loudness gets the
    peak guard only, and says so).
    """
    out = np.asarray(audio, dtype=np.float32)
    notes: list[str] = []
    if settings is None or not settings.active:
        return out, notes
    if settings.denoise:
        out = denoise(out, sample_rate)
    if settings.trim:
        out, _ = trim_silence(out, sample_rate)
    if settings.lufs is not None:
        gain, note = loudness_plan(out, settings.lufs, sample_rate)
        out = limit_true_peak(out * np.float32(gain), sample_rate)
        notes += [note] if note else []
    elif settings.peak_normalize:
        out = out * np.float32(peak_gain(out, sample_rate))
    if settings.fade:
        out = fade_edges(out, sample_rate, END_FADE_S)
    return out, notes


class StreamLeveler:
    """The output level for streamed chunks, consistent with the whole clip that `process` writes.

    Levelling each chunk on its own would pump the volume from phrase to phrase, and the whole
    clip's loudness is not known until the stream ends. So the leveler does what `process` does to
    the audio heard so far: the first gain comes from the first 0.4 s or more (chunks are held back
    until that much has arrived; a first chunk is usually longer), and each later chunk gets the
    gain that would bring everything so far, that chunk included, to the target, with the same
    peak limiter on each chunk (the loudness it takes is measured chunk by chunk and made up in the
    gain, as `loudness_plan` does for the file). For peak normalization the gain puts the true peak
    of everything so far at -1 dBFS. The estimate settles as the clip grows, and the change from one
    chunk to the next is limited to 1.5 dB (made at the pause between phrases), except that the
    peak guard always holds. The stream thus converges on the file's level; on a 25 s Kokoro paragraph
    the stream measured 0.1, 0.6 and 0.9 LU under the file at -23, -16 and -14 LUFS. Denoise, trim
    and end fades are whole-clip operations and apply to the file only.
    """

    MAX_STEP_DB = 1.5

    def __init__(self, settings: OutputSettings | None, sample_rate: int = SAMPLE_RATE) -> None:
        self.settings = settings or OutputSettings()
        self.sample_rate = sample_rate
        self.gain: float | None = None  # the gain of the last chunk out
        self.notes: list[str] = []
        self._heard: list[np.ndarray] = []  # everything so far, before gain
        self._held = 0  # how many of the last chunks in `_heard` wait for the opening 0.4 s
        self._peak_db = -np.inf
        self._loss: list[tuple[float, float]] = []  # (seconds, dB the limiter took) per measured chunk

    def feed(self, audio: np.ndarray) -> np.ndarray:
        """The chunk at the stream's level; empty while the opening 0.4 s is still being gathered."""
        samples = np.asarray(audio, dtype=np.float32)
        if not self.settings.levels:
            return samples
        self._heard.append(samples)
        self._peak_db = max(self._peak_db, true_peak_dbfs(samples, self.sample_rate))
        if self.gain is None:
            self._held += 1
            if sum(map(len, self._heard)) < MIN_LOUDNESS_S * self.sample_rate:
                return np.zeros(0, np.float32)
            return self.flush()
        step = 10 ** (self.MAX_STEP_DB / 20)
        self.gain = min(max(self._gain_so_far(), self.gain / step), self.gain * step)
        return self._out(samples)

    def level(self, chunks: Iterable[AudioChunk]) -> Iterator[tuple[AudioChunk | None, np.ndarray]]:
        """The stream-and-level loop, written once: `(chunk, its audio at the stream's level)` per chunk
        (the audio empty while the opening is held back), then `(None, what was still held back)`
        once the chunks have ended."""
        for chunk in chunks:
            yield chunk, self.feed(chunk.audio)
        yield None, self.flush()

    def flush(self) -> np.ndarray:
        """Whatever is still held back (call once the stream has ended)."""
        if not self._held:
            return np.zeros(0, np.float32)
        opening = np.concatenate(self._heard[-self._held :])
        self._held = 0
        self.gain = self._gain_so_far(note=True)
        return self._out(opening)

    def _gain_so_far(self, note: bool = False) -> float:
        """The gain `process` would give if the clip ended here."""
        headroom = 10 ** ((TRUE_PEAK_DBFS - self._peak_db) / 20) if np.isfinite(self._peak_db) else 1.0
        if self.settings.lufs is None:
            return headroom
        measured = integrated_loudness(np.concatenate(self._heard), self.sample_rate)
        if measured is None:
            if note:
                self.notes.append("Stream opening shorter than 0.4 s: loudness cannot be measured, peak guard only.")
            return min(1.0, headroom)
        seconds = sum(t for t, _ in self._loss)
        loss_db = sum(t * db for t, db in self._loss) / seconds if seconds else 0.0
        return min(10 ** ((self.settings.lufs - measured + loss_db) / 20), headroom * 10 ** (MAX_LIMIT_DB / 20))

    def _out(self, samples: np.ndarray) -> np.ndarray:
        gained = samples * np.float32(self.gain)
        if self.settings.lufs is None:  # peak normalization: the gain itself is the guard
            ceiling = 10 ** ((TRUE_PEAK_DBFS - true_peak_dbfs(samples, self.sample_rate)) / 20)
            return gained if self.gain <= ceiling else samples * np.float32(ceiling)
        limited = limit_true_peak(gained, self.sample_rate)
        before = integrated_loudness(gained, self.sample_rate)
        after = integrated_loudness(limited, self.sample_rate)
        if before is not None and after is not None:
            self._loss.append((len(samples) / self.sample_rate, before - after))
        return limited


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
        raise InputError(f"Unknown audio format {shown(fmt)}; choose one of: {', '.join(FORMATS)}.")
    samples = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    if fmt == "pcm":
        return pcm16(samples)
    data = _encode_once(samples, fmt, sample_rate)
    if fmt in LOSSY and true_peak_dbfs(samples, sample_rate) <= TRUE_PEAK_DBFS + 0.01:
        data = _keep_peak_guard(samples, fmt, sample_rate, data)
    return data


def _encode_once(samples: np.ndarray, fmt: str, sample_rate: int) -> bytes:
    if fmt == "opus":
        return _ffmpeg_opus(samples, sample_rate)
    container, subtype = _SNDFILE[fmt]
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, format=container, subtype=subtype)
    return buffer.getvalue()


def _keep_peak_guard(samples: np.ndarray, fmt: str, sample_rate: int, data: bytes) -> bytes:
    """A clip kept at -1 dBTP stays there once decoded: lossy codecs ring above their input's peaks
    (a peak-normalised square wave decoded at +0.4 dBTP from MP3 and Vorbis, noise at +0.1 from
    Vorbis), so the clip is turned down by the decoded overshoot and encoded again (twice at most)."""
    for _ in range(2):
        decoded, rate = sf.read(io.BytesIO(data), dtype="float32")
        over_db = true_peak_dbfs(decoded, rate) - TRUE_PEAK_DBFS
        if over_db <= 0:
            break
        samples = samples * np.float32(10 ** (-(over_db + 0.05) / 20))
        data = _encode_once(samples, fmt, sample_rate)
    return data


def _ffmpeg_opus(samples: np.ndarray, sample_rate: int) -> bytes:
    """Ogg Opus bytes from ffmpeg (libopus), PCM in through stdin and the file out through stdout."""
    if shutil.which("ffmpeg") is None:
        raise UnavailableError("Opus output needs ffmpeg, which is not installed here; choose another format.")
    pcm = pcm16(samples)
    try:
        done = subprocess.run(ffmpeg_command("opus", sample_rate), input=pcm, capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("ffmpeg (Opus) could not run: %s", exc)
        raise EngineError("The Opus encoder failed; try another format.") from None
    if done.returncode != 0 or not done.stdout:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        log.warning("ffmpeg (Opus) failed: %s", detail[-1] if detail else "no output")
        raise EngineError("The Opus encoder failed; try another format.")
    return done.stdout


def ffmpeg_command(fmt: str, sample_rate: int = SAMPLE_RATE, stream: bool = False) -> list[str]:
    """The one ffmpeg pipe: s16le mono at `sample_rate` on stdin, `fmt` (one of `_FFMPEG_OUTPUT`) on
    stdout. A `stream` flushes every packet and pages Ogg every 0.2 s (not 1 s), so audio leaves as
    it is encoded."""
    command = [
        shutil.which("ffmpeg") or "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
        "-f", "s16le", "-ar", str(sample_rate), "-ac", "1", "-i", "pipe:0", *_FFMPEG_OUTPUT[fmt],
    ]  # fmt: skip
    if stream:
        if fmt in ("opus", "ogg"):
            command += ["-page_duration", "200000"]
        command += ["-flush_packets", "1"]
    return [*command, "pipe:1"]


def wav_stream_header(sample_rate: int = SAMPLE_RATE) -> bytes:
    """A 16-bit mono WAV header for a stream: the RIFF and data sizes say "unknown" (0xFFFFFFFF)."""
    unknown = 0xFFFFFFFF
    fmt_chunk = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, sample_rate, 2 * sample_rate, 2, 16)
    return struct.pack("<4sI4s", b"RIFF", unknown, b"WAVE") + fmt_chunk + struct.pack("<4sI", b"data", unknown)


class StreamEncoder:
    """Float chunks in, the bytes of one streamed format out (to `put`), for every format in
    `STREAMED_FORMATS`; the streaming sibling of `encode`.

    `pcm` is raw s16le; `wav` is a header whose RIFF and data sizes say "unknown", then the same
    frames (the header goes out with the first audio, or alone at the end); `mp3`, `opus` (Ogg Opus)
    and `ogg` (Vorbis) go through one ffmpeg process (`ffmpeg_command`), whose output a reader thread
    hands to `put` as it comes. A piped MP3 has no Xing header, so decoders keep the encoder's delay
    and padding (~50 ms more than the clip). FLAC does not stream: a streamed FLAC cannot carry its
    length in its header, and common readers such as libsndfile refuse such a file.
    Use: `write` each chunk, `close` to finish (raises when the encoder failed), and always `abort`
    (or `with`) to release the process, which is harmless after `close`.
    """

    def __init__(self, fmt: str, put: Callable[[bytes], None], sample_rate: int = SAMPLE_RATE) -> None:
        if fmt not in STREAMED_FORMATS:
            raise InputError(f"The format {shown(fmt)} cannot be streamed; the formats that stream are "
                             f"{', '.join(STREAMED_FORMATS)}.")  # fmt: skip
        self.fmt, self.put = fmt, put
        self.header = wav_stream_header(sample_rate) if fmt == "wav" else b""
        self.process: subprocess.Popen | None = None
        if fmt in _FFMPEG_OUTPUT:
            self._start(ffmpeg_command(fmt, sample_rate, stream=True))

    @staticmethod
    def check(fmt: str) -> None:
        """`UnavailableError` when `fmt` streams through ffmpeg and ffmpeg is not installed."""
        if fmt in _FFMPEG_OUTPUT and shutil.which("ffmpeg") is None:
            raise UnavailableError(f"Streaming {fmt} needs ffmpeg, which is not installed here; stream pcm or wav.")

    def _start(self, command: list[str]) -> None:
        self.errors = tempfile.TemporaryFile()  # a file, not a pipe: a chatty ffmpeg can never block on it
        try:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors)
        except OSError as exc:
            self.errors.close()
            log.warning("ffmpeg could not start: %s", exc)
            raise EngineError(f"The {self.fmt} stream encoder could not start.") from None
        self.reader = threading.Thread(target=self._read, name=f"ffmpeg-{self.fmt}-reader", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while piece := self.process.stdout.read1(1 << 16):
            self.put(piece)

    def write(self, audio: np.ndarray) -> None:
        """Encode one chunk of mono float audio."""
        if not len(audio):
            return
        frames = to_int16(audio).astype("<i2").tobytes()
        if self.process is None:
            self.put(self.header + frames)
            self.header = b""
            return
        try:
            self.process.stdin.write(frames)
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise self._failure() from None

    def close(self) -> None:
        """Finish the stream: a header not sent yet goes out; ffmpeg writes what it holds and must exit cleanly."""
        if self.process is None:
            if self.header:
                self.put(self.header)
                self.header = b""
            return
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        self.reader.join()
        if self.process.wait() != 0:
            raise self._failure()

    def abort(self) -> None:
        """Stop ffmpeg if it still runs and release it (harmless after `close`; nothing to do for PCM)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
        self.reader.join()
        self.process.wait()
        self.process.stdout.close()
        self.errors.close()

    def __enter__(self) -> StreamEncoder:
        return self

    def __exit__(self, *exc) -> None:
        self.abort()

    def _failure(self) -> EngineError:
        self.process.wait()
        self.errors.seek(0)
        detail = self.errors.read().decode("utf-8", "replace").strip().splitlines()
        log.warning("ffmpeg (%s stream) failed: %s", self.fmt, detail[-1] if detail else "no output")
        return EngineError(f"The {self.fmt} stream encoder failed.")


def write(path: Path, audio: np.ndarray, fmt: str | None = None, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write a clip to `path`, the format taken from `fmt` or the file suffix."""
    path = Path(path)
    path.write_bytes(encode(audio, fmt or path.suffix.lstrip(".") or "wav", sample_rate))
    return path
