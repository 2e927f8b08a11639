"""Reference clips for voice cloning: decoded, checked and normalised at the boundary.

Takes raw bytes (an upload or a recording; never a URL or a path typed by a user), decodes them
through `engines.decoding` (bounded before decoding, straight to mono at the model's rate) and
refuses, with one sentence each, what cannot make a usable reference: not audio, empty, too short,
silent, too long, over 8 channels, an implausible rate or too low a one.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from engines.base import InputError
from engines.decoding import Probe, decode_audio
from engines.settings import settings

MIN_SECONDS = 1.0
MAX_SECONDS = 60.0
MIN_RATE = 16_000
SILENCE_PEAK = 1e-3  # -60 dBFS


def upload_limit_bytes() -> int:
    """`MAX_UPLOAD_MB` (default 50) in bytes: the largest upload the app reads."""
    return int(settings().max_upload_mb * 2**20)


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
    """Decode and check a reference clip given as bytes (bounded before decoding: `engines.decoding`)."""
    if not data:
        raise InputError("The reference audio is empty; upload or record a few seconds of speech.")
    if len(data) > upload_limit_bytes():
        raise InputError(
            f"The reference file is over {upload_limit_bytes() / 2**20:.3g} MB; use a clip of 3 to 30 seconds."
        )
    decoded = decode_audio(data, "reference", MAX_SECONDS, target_rate=target_rate, check=_usable_rate)
    audio = decoded.audio
    seconds = decoded.duration_s
    if seconds < MIN_SECONDS:
        raise InputError(
            f"The reference is only {seconds:.1f} s long; please use at least {MIN_SECONDS:g} second of speech."
        )
    if not np.isfinite(audio).all() or np.max(np.abs(audio)) < SILENCE_PEAK:
        raise InputError("The reference audio is silent; please upload a clip in which someone speaks.")
    digest = hashlib.sha256(audio.tobytes()).hexdigest()[:16]
    return Reference(
        audio=audio,
        sample_rate=target_rate,
        original_rate=decoded.original_rate,
        channels=decoded.channels,
        digest=digest,
    )


def _usable_rate(probe: Probe) -> None:
    if probe.sample_rate < MIN_RATE:
        raise InputError(
            f"The reference is sampled at {probe.sample_rate / 1000:g} kHz; "
            "please use audio recorded at 16 kHz or more."
        )


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
    from engines.asr import transcribe

    heard = transcribe(reference.audio, reference.sample_rate)
    if len(heard.split()) >= 2:
        return (
            heard,
            False,
            f"Transcribed the reference as: {heard!r}. Correct it if needed; ICL cloning needs the exact words.",
        )
    return None, True, "No transcript was given and none could be heard, so only the voice timbre (x-vector) is cloned."
