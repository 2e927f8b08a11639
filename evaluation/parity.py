"""Parity of two renderings of one text in one voice (the server's Kokoro and the browser's, say).

Sample-wise comparison means nothing here: the same tokens can get a predicted duration rounded one
frame differently (a browser gave 72,600 samples where the server gave 72,000), so two renderings are
compared the way a listener would hear them:

- **duration**: `|b - a| / a`, in percent;
- **log-mel distance after time alignment**: each clip's log-mel spectrogram (librosa, `N_MELS` bands,
  floored `TOP_DB` below its own peak), each frame normalised by removing its mean level (so a gain
  or a loudness contour does not count, the spectral shape does), aligned by dynamic time warping
  (`librosa.sequence.dtw`) on the RMS difference between frames, in dB; the distance is the mean cost
  per step of the warping path (0 for identical clips);
- **words**: the ASR round trip of each (`evaluation.alignment.align_clip`: faster-whisper, normalised
  as the error rate is), and whether both heard the same words.

`measure` also gives, in the same call, the bar to beat: the same distance between clip `a` and the
same text rendered on the server in another packaged voice (`other_voice`: the first available voice
of the same gender, the closest bar). Two renderings of one voice should sit far below it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.asr import resample
from engines.base import SAMPLE_RATE, InputError, SynthesisRequest, UnavailableError
from engines.kokoro.voices import spec_entries
from engines.runtime import registry

from . import metrics
from .alignment import align_clip

N_MELS = 80
N_FFT = 1024  # 43 ms at 24 kHz
HOP = 256  # 10.7 ms at 24 kHz
TOP_DB = 80.0  # each clip's floor below its own peak, so digital silence and a faint hiss compare alike
ENGINE = registry.browser_engine()  # the engine rendered on both sides (Capabilities.renders_in_browser)


@dataclass(frozen=True)
class Heard:
    """What the ASR heard in one clip: the transcript, its normalised words, its error rate against the text."""

    transcript: str
    words: list[str]
    error_rate: float | None


def log_mel(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Frames × `N_MELS` log-mel spectrogram in dB, each frame's mean level removed."""
    import librosa

    samples = np.asarray(audio, dtype=np.float32)
    mel = librosa.feature.melspectrogram(
        y=samples, sr=sample_rate, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, fmax=min(8000, sample_rate // 2)
    )
    db = librosa.power_to_db(mel, ref=np.max, top_db=TOP_DB).T  # (frames, bands)
    return db - db.mean(axis=1, keepdims=True)


def mel_distance(a: np.ndarray, b: np.ndarray, sample_rate: int = SAMPLE_RATE, rate_b: int | None = None) -> float:
    """Log-mel distance of two clips after dynamic time warping: the mean RMS difference, in dB,
    between the frames the warping path pairs (0 for identical clips); `b` is resampled to `sample_rate`."""
    import librosa
    from scipy.spatial.distance import cdist

    if rate_b and rate_b != sample_rate:  # the same frames in time for both
        b = resample(b, rate_b, sample_rate)
    x, y = log_mel(a, sample_rate), log_mel(b, sample_rate)
    if not len(x) or not len(y):
        raise ValueError("empty clip")
    cost = cdist(x.astype(np.float64), y.astype(np.float64)) / np.sqrt(N_MELS)  # RMS difference, dB
    total, path = librosa.sequence.dtw(C=cost, backtrack=True)
    return float(total[-1, -1] / len(path))


def duration_difference_pct(
    a: np.ndarray, b: np.ndarray, sample_rate: int = SAMPLE_RATE, rate_b: int | None = None
) -> float:
    """How much longer (or shorter) `b` lasts than `a`, in percent of `a`, as a positive number."""
    seconds_a, seconds_b = len(a) / sample_rate, len(b) / (rate_b or sample_rate)
    if seconds_a <= 0:
        raise ValueError("empty clip")
    return abs(seconds_b - seconds_a) / seconds_a * 100.0


def heard(audio: np.ndarray, sample_rate: int, text: str, language: str | None = None) -> Heard:
    """The ASR round trip of one clip (`evaluation.alignment.align_clip`), its words normalised as the
    error rate normalises them (lower case, numbers spelled out, punctuation dropped)."""
    found = align_clip(audio, sample_rate, text, language)
    code = found.language or "en"
    words = metrics.normalize(found.transcript, code).split()
    if metrics.error_unit(code) == "character":
        words = list("".join(words))
    return Heard(found.transcript, words, found.error_rate)


def spoken(engine: str, text: str, voice: str, language: str | None = None) -> str | None:
    """The ISO code of the language `engine` speaks `text` in with `voice` (None where it cannot say)."""
    try:
        return registry.spoken_language(engine, SynthesisRequest(text=text, voice=voice, language=language))
    except InputError:
        return None


def other_voice(voice: str, engine: str = ENGINE) -> str:
    """A different voice that speaks here (available), of the same gender when there is one: the bar."""
    voices = [v for v in registry.info(engine).voices if v.available]
    first = spec_entries(voice)[0][0] if voice else ""
    mine = next((v for v in registry.info(engine).voices if v.id == first), None)
    others = [v for v in voices if v.id != first]
    if not others:
        raise UnavailableError("No second voice is available here to measure the distance between two voices.")
    same = [v for v in others if mine is not None and v.gender == mine.gender]
    return (same or others)[0].id


def render(text: str, voice: str, engine: str = ENGINE, language: str | None = None) -> np.ndarray:
    """The whole clip of `text` in `voice`, rendered on the server by the registry's engine."""
    from engines.runtime.timing import synthesize

    audio, _, _ = synthesize(engine, SynthesisRequest(text=text, voice=voice, language=language))
    return audio


def measure(
    text: str,
    voice: str,
    a: np.ndarray,
    b: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    *,
    rate_b: int | None = None,
    reference: np.ndarray | None = None,
    reference_voice: str | None = None,
    engine: str = ENGINE,
    language: str | None = None,
    words: bool = True,
) -> dict:
    """Parity of two renderings `a` and `b` of `text` in `voice` (`b` at `rate_b`, default `sample_rate`).

    The bar: the distance between `a` and `reference`, the same text in another voice (at `sample_rate`);
    without it, `reference_voice` (default `other_voice(voice)`) renders it on the server now. `words`:
    run the ASR round trip of both. Keys: `duration_a_s`, `duration_b_s`, `duration_diff_pct`,
    `mel_distance`, `reference_voice`, `reference_distance`, `below_reference`, and with `words`:
    `words_a`, `words_b`, `same_words`, `transcript_a`, `transcript_b`, `error_rate_a`, `error_rate_b`."""
    rate_b = rate_b or sample_rate
    # both clips came from the engine: score them in the language it spoke (`registry.spoken_language`),
    # never in one a multilingual recogniser guesses (jf_alpha's English was once heard as Japanese)
    language = spoken(engine, text, voice, language) or language
    if reference is None:
        reference_voice = reference_voice or other_voice(voice, engine)
        reference = render(text, reference_voice, engine, language)
    distance = mel_distance(a, b, sample_rate, rate_b)
    bar = mel_distance(a, reference, sample_rate)
    figures = {
        "text": text,
        "voice": voice,
        "duration_a_s": round(len(a) / sample_rate, 3),
        "duration_b_s": round(len(b) / rate_b, 3),
        "duration_diff_pct": round(duration_difference_pct(a, b, sample_rate, rate_b), 3),
        "mel_distance": round(distance, 3),
        "reference_voice": reference_voice,
        "reference_distance": round(bar, 3),
        "below_reference": distance < bar,
    }
    if words:
        heard_a, heard_b = heard(a, sample_rate, text, language), heard(b, rate_b, text, language)
        figures.update(
            words_a=heard_a.words,
            words_b=heard_b.words,
            same_words=heard_a.words == heard_b.words,
            transcript_a=heard_a.transcript,
            transcript_b=heard_b.transcript,
            error_rate_a=heard_a.error_rate,
            error_rate_b=heard_b.error_rate,
        )
    return figures
