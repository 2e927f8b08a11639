"""The clip a visitor's browser rendered (Compare's "Kokoro in this browser" slot), sent back to be measured.

The page renders the slot with the in-browser Kokoro (`window.kokoroBrowser`), encodes the audio as a
16-bit mono WAV and sends it, base64 in a small JSON object, with the figures the browser measured:
`{"wav", "backend", "ttfa_s", "rtf", "total_s", "model_download_s", "chunks"}`, or `{"error": sentence}`
when it could not render (with `"fallback": true` when this browser cannot run it at all: no WebAssembly
SIMD, too little memory; the server then renders the slot instead, `fallback_reason`). Nothing in it is
trusted as sent: the payload's size is bounded before it is decoded, the WAV header's sample rate,
channels and length are checked against the limits below and against the samples actually there, the
audio is resampled to the app's rate, and each figure is kept only when it is a finite number in a
plausible range. The WAV is decoded by `engines.decoding`, bounded before decoding like every decoded input.
Every refusal is one sentence (`InputError`).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
from dataclasses import dataclass, field

import numpy as np

from engines.base import SAMPLE_RATE, InputError
from engines.decoding import Probe, decode_audio
from engines.strict_json import BadJson
from engines.strict_json import parse as parse_json

MAX_SECONDS = 120.0  # the longest clip a browser may send back (about 1,500 characters of speech)
MIN_SECONDS = 0.2
MIN_RATE, MAX_RATE = 16_000, 48_000
# the WAV itself: MAX_SECONDS of 16-bit mono at 24 kHz, and room for its header; base64 adds a third
MAX_WAV_BYTES = int(MAX_SECONDS * SAMPLE_RATE * 2) + 4096
MAX_PAYLOAD_CHARS = (MAX_WAV_BYTES + 2) // 3 * 4 + 4096
BACKENDS = ("wasm", "webgpu")
FIGURES = {  # key: the largest value believed (seconds, or seconds per second for rtf)
    "ttfa_s": 3600.0, "rtf": 1000.0, "total_s": 36_000.0, "model_download_s": 3600.0, "chunks": 100_000.0,
}  # fmt: skip


@dataclass(frozen=True)
class BrowserClip:
    """Audio a browser rendered, decoded and checked: mono float32 at `SAMPLE_RATE`, with the figures it
    measured itself (None where it sent none or nonsense)."""

    audio: np.ndarray
    backend: str | None = None
    figures: dict = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def decode(payload: str | None) -> BrowserClip:
    """The checked clip of a payload the page sent (see the module docstring); `InputError` with one
    sentence for anything that is not a usable clip, including the browser's own error sentence."""
    if not payload or not str(payload).strip():
        raise InputError("This browser sent no audio back; render it again.")
    if len(payload) > MAX_PAYLOAD_CHARS:
        raise InputError(
            f"The browser's clip is too large to measure; compare a text under {MAX_SECONDS:.0f} s of speech."
        )
    try:
        message = parse_json(str(payload).encode("utf-8", "replace"))
    except BadJson:
        raise InputError("The browser's clip could not be read; render it again.") from None
    if not isinstance(message, dict):
        raise InputError("The browser's clip could not be read; render it again.")
    if message.get("error"):
        raise InputError(_sentence(message["error"]))
    audio = _audio(message.get("wav"))
    backend = message.get("backend") if message.get("backend") in BACKENDS else None
    figures = {key: _figure(message.get(key), top) for key, top in FIGURES.items()}
    return BrowserClip(audio=audio, backend=backend, figures=figures)


def fallback_reason(payload: str | None) -> str | None:
    """The browser's sentence when it says it cannot run Kokoro at all and the server should render
    the slot instead; None otherwise (a clip, or an error that `decode` refuses)."""
    try:
        message = parse_json(str(payload).encode("utf-8", "replace")) if payload and len(payload) < 10_000 else None
    except BadJson:
        return None
    if isinstance(message, dict) and message.get("fallback") is True and message.get("error"):
        return _sentence(message["error"])
    return None


def encode(audio: np.ndarray, backend: str = "wasm", sample_rate: int = SAMPLE_RATE, **figures) -> str:
    """A payload as the page sends it (tests, scripts): the audio as a base64 16-bit WAV, and `figures`."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(audio, dtype=np.float32), sample_rate, format="WAV", subtype="PCM_16")
    wav = base64.b64encode(buffer.getvalue()).decode("ascii")
    return json.dumps({"wav": wav, "backend": backend, **figures})


def _audio(wav: object) -> np.ndarray:
    unreadable = InputError("The browser's clip is not a WAV file that can be read; render it again.")
    if not isinstance(wav, str) or not wav:
        raise InputError("This browser sent no audio back; render it again.")
    try:
        data = base64.b64decode(wav, validate=True)
    except (binascii.Error, ValueError):
        raise unreadable from None
    if len(data) > MAX_WAV_BYTES:
        raise InputError(
            f"The browser's clip is too large to measure; compare a text under {MAX_SECONDS:.0f} s of speech."
        )

    def wav_as_the_page_sends_it(probe: Probe) -> None:
        if probe.container != "WAV" or probe.channels != 1:
            raise unreadable
        if not MIN_RATE <= probe.sample_rate <= MAX_RATE:
            raise InputError(f"The browser's clip says it is sampled at {probe.sample_rate} Hz; expected 16 to 48 kHz.")

    try:  # bounded before decoding, the header's length not believed (engines.decoding)
        audio = decode_audio(
            data, "browser's clip", MAX_SECONDS, check=wav_as_the_page_sends_it, use_ffmpeg=False
        ).audio
    except InputError as refused:
        raise (unreadable if "not audio" in str(refused) else refused) from None
    seconds = len(audio) / SAMPLE_RATE
    if seconds < MIN_SECONDS:
        raise InputError("The browser's clip is too short to measure; compare a longer text.")
    if not np.isfinite(audio).all() or not np.any(audio):
        raise InputError("The browser's clip is silent; render it again.")
    return np.ascontiguousarray(audio, dtype=np.float32)


def _figure(value: object, top: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and 0.0 <= value <= top else None


def _sentence(error: object) -> str:
    """The browser's own sentence (the page's script writes one), kept to one short line of text; it is
    shown as text, never run."""
    text = " ".join(str(error).split())[:200]
    return text if text else "This browser could not render it."
