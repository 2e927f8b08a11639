"""Reference clips for voice cloning: decoded, checked and normalised at the boundary.

Takes raw bytes (an upload or a recording; never a URL or a path typed by a user), decodes them
with libsndfile (WAV, FLAC, OGG, MP3) or, for anything else, ffmpeg reading standard input, mixes
down to mono, resamples to the model's rate and refuses, with one sentence each, what cannot make
a usable reference: not audio, empty, too short, silent, too long, over 8 channels, or too low a
sample rate.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from .base import InputError
from .settings import env_number

MIN_SECONDS = 1.0
MAX_SECONDS = 60.0
MIN_RATE = 16_000
SILENCE_PEAK = 1e-3  # -60 dBFS
MAX_CHANNELS = 8  # a voice needs one; 64 channels of a 50 MB upload would decode to 100s of MB of floats
MAX_UPLOAD_MB = 50  # default of `MAX_UPLOAD_MB`: the largest upload (reference clip or batch file) read


def upload_limit_bytes() -> int:
    """`MAX_UPLOAD_MB` (default 50) in bytes: the largest upload the app reads."""
    megabytes = env_number("MAX_UPLOAD_MB", MAX_UPLOAD_MB, minimum=0.0)
    return int((megabytes or MAX_UPLOAD_MB) * 2**20)


def read_upload(path: str | os.PathLike, what: str = "uploaded file") -> bytes:
    """The bytes of an uploaded file that Gradio stored (never a path a user typed), refused by its size
    before it is read when over `MAX_UPLOAD_MB`."""
    limit = upload_limit_bytes()
    too_big = InputError(f"The {what} is over the {limit / 2**20:.3g} MB limit; please upload a smaller file.")
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size > limit:
            raise too_big
        data = handle.read(limit + 1)  # a file that grew since: still never more than the limit
    if len(data) > limit:
        raise too_big
    return data


@dataclass(frozen=True)
class Reference:
    """A decoded reference clip: mono float32 at `sample_rate`, with a content hash for caching."""

    audio: np.ndarray
    sample_rate: int
    original_rate: int
    channels: int
    digest: str

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate


def load_reference(data: bytes, target_rate: int = 24_000) -> Reference:
    """Decode and check a reference clip given as bytes."""
    if not data:
        raise InputError("The reference audio is empty; upload or record a few seconds of speech.")
    if len(data) > upload_limit_bytes():
        raise InputError(
            f"The reference file is over {upload_limit_bytes() / 2**20:.3g} MB; use a clip of 3 to 30 seconds."
        )
    audio, rate, channels = _decode(data)
    if rate < MIN_RATE:
        raise InputError(
            f"The reference is sampled at {rate / 1000:g} kHz; please use audio recorded at 16 kHz or more."
        )
    seconds = len(audio) / rate
    if seconds > MAX_SECONDS:
        raise InputError(f"The reference is {seconds:.0f} s long; please use a clip of 3 to {MAX_SECONDS:.0f} seconds.")
    if seconds < MIN_SECONDS:
        raise InputError(
            f"The reference is only {seconds:.1f} s long; please use at least {MIN_SECONDS:g} second of speech."
        )
    if not np.isfinite(audio).all() or np.max(np.abs(audio)) < SILENCE_PEAK:
        raise InputError("The reference audio is silent; please upload a clip in which someone speaks.")
    if rate != target_rate:
        import soxr

        audio = soxr.resample(audio, rate, target_rate).astype(np.float32)
    digest = hashlib.sha256(audio.tobytes()).hexdigest()[:16]
    return Reference(audio=audio, sample_rate=target_rate, original_rate=rate, channels=channels, digest=digest)


def _decode(data: bytes) -> tuple[np.ndarray, int, int]:
    try:
        info = sf.info(io.BytesIO(data))
        if info.channels > MAX_CHANNELS:
            raise InputError(f"The reference has {info.channels} channels; please use a mono or stereo clip.")
        if info.duration > MAX_SECONDS * 2:  # refuse before decoding an hour of audio
            raise InputError(
                f"The reference is {info.duration:.0f} s long; please use a clip of 3 to {MAX_SECONDS:.0f} seconds."
            )
        audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except InputError:
        raise
    except Exception:
        audio, rate = _decode_with_ffmpeg(data)
    channels = audio.shape[1]
    if channels > MAX_CHANNELS:
        raise InputError(f"The reference has {channels} channels; please use a mono or stereo clip.")
    return audio.mean(axis=1).astype(np.float32), int(rate), channels


def _decode_with_ffmpeg(data: bytes) -> tuple[np.ndarray, int]:
    """Formats libsndfile does not read (m4a, webm, ...): ffmpeg from stdin to WAV."""
    ffmpeg = shutil.which("ffmpeg")
    not_audio = InputError("The reference file is not audio that can be read (try WAV, FLAC, MP3 or OGG).")
    if ffmpeg is None:
        raise not_audio
    command = [ffmpeg, "-nostdin", "-v", "error", "-i", "pipe:0", "-t", str(MAX_SECONDS * 2)]
    command += ["-f", "wav", "pipe:1"]
    try:
        result = subprocess.run(command, input=data, capture_output=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        raise not_audio from None
    if result.returncode != 0 or not result.stdout:
        raise not_audio
    try:
        audio, rate = sf.read(io.BytesIO(result.stdout), dtype="float32", always_2d=True)
    except Exception:
        raise not_audio from None
    return audio, rate


def settle_transcript(
    reference: Reference, transcript: str | None, x_vector_only: bool
) -> tuple[str | None, bool, str]:
    """Decide how to clone: (transcript, x_vector_only, notice for the user).

    With no transcript and ICL wanted, the ASR (faster-whisper; tiny.en offline) writes one; when it
    hears nothing usable, cloning falls back to x-vector-only mode, and the notice says so.
    """
    if x_vector_only:
        return None, True, ""
    if transcript and transcript.strip():
        return transcript.strip(), False, ""
    from .asr import transcribe

    heard = transcribe(reference.audio, reference.sample_rate)
    if len(heard.split()) >= 2:
        return (
            heard,
            False,
            f"Transcribed the reference as: {heard!r}. Correct it if needed; ICL cloning needs the exact words.",
        )
    return None, True, "No transcript was given and none could be heard, so only the voice timbre (x-vector) is cloned."
