"""Word alignment of a clip to its text: which input word was said when, and which were dropped,
substituted, inserted or repeated.

The ASR (`engines.asr.transcribe_words`, faster-whisper's word timestamps) gives the recognised words
and their times; jiwer's alignment (`jiwer.process_words(...).alignments`) pairs them with the input
words, both sides normalised by `evaluation.metrics.normalize` (the error rate's own normalisation:
lower case, numbers spelled out, punctuation dropped), so "4" and "four" pair as the same word.

The result (`Alignment.as_dict`) is per input word `{"word", "start", "end", "status", "heard"}`,
status `ok`, `substituted` (`heard` says as what) or `dropped` (start and end null), with times in
seconds that never go back and lie inside the clip; then `inserted` (recognised words the text does
not have), `repeated` (inserted runs that repeat the words next to them: a stutter or a loop),
`error_rate` and `error_unit` (the same figures as `evaluation.metrics.error_rate`). Where the error
unit is the character (Chinese, Korean: `metrics.CHARACTER_LANGUAGES`), each entry of `words` is one
character of the normalised text, aligned character by character; Japanese entries are its written
words, aligned by the kana of their readings.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engines import language as languages
from engines.asr import HeardWord, asr_is_multilingual, transcribe_words
from engines.base import SAMPLE_RATE, UnavailableError
from engines.batch_files import MANIFEST

from . import metrics
from .captions import write_captions

OK, SUBSTITUTED, DROPPED = "ok", "substituted", "dropped"


def bare(word: str) -> str:
    """A shown word without its outer punctuation (what is not a letter, digit or "_"), in one pass
    (the pattern `^[^\\w]+|[^\\w]+$` rescans every inner run of marks: quadratic)."""
    start, end = 0, len(word)
    while start < end and not _is_word_char(word[start]):
        start += 1
    while end > start and not _is_word_char(word[end - 1]):
        end -= 1
    return word[start:end]


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


@dataclass
class Alignment:
    """The aligned words of one clip (see the module docstring for each key)."""

    words: list[dict] = field(default_factory=list)
    inserted: list[dict] = field(default_factory=list)
    repeated: list[dict] = field(default_factory=list)
    error_rate: float | None = None
    error_unit: str = "word"
    transcript: str = ""
    language: str | None = None

    def as_dict(self) -> dict:
        return {
            "words": self.words, "inserted": self.inserted, "repeated": self.repeated,
            "error_rate": self.error_rate, "error_unit": self.error_unit,
            "transcript": self.transcript, "language": self.language,
        }  # fmt: skip


def align_clip(audio: np.ndarray, sample_rate: int, text: str, language: str | None = None) -> Alignment:
    """Transcribe the clip with word times and align it to `text` (`language`: a name or code the
    engines know; None: from the text's script, else English for an English-only ASR, else detected)."""
    code = spoken_code(text, language)
    if code != "en" and not asr_is_multilingual():
        raise UnavailableError(
            "The speech recogniser here hears English only; set ASR_MODEL to a multilingual Whisper to check other "
            "languages."
        )
    transcript, heard_language, heard = transcribe_words(audio, sample_rate, code)
    return align_words(text, heard, code or heard_language, len(audio) / sample_rate, transcript)


def spoken_code(text: str, language: str | None) -> str | None:
    """The Whisper code to transcribe in: the given language's, else the text's script's, else "en"
    when the ASR hears English only; None lets a multilingual ASR detect it."""
    if not languages.is_auto(language):
        return languages.iso_code(language) or "en"
    code = languages.script_language(text)
    if code is None and not asr_is_multilingual():
        return "en"
    return code


def align_words(
    text: str, heard: list[HeardWord], language: str | None, duration_s: float, transcript: str | None = None
) -> Alignment:
    """Align recognised words (with times) to the input `text` in `language` (a Whisper code) for a clip
    of `duration_s` seconds. `transcript`: what the error rate is scored on (default: the heard words)."""
    import jiwer

    language = language or "en"
    unit = metrics.error_unit(language)
    transcript = " ".join(w.word for w in heard) if transcript is None else transcript
    inputs = _input_units(text, language, unit)  # (shown word, its normalised tokens)
    ref_tokens = [(i, token) for i, (_, tokens) in enumerate(inputs) for token in tokens]
    hyp_tokens = [(j, token) for j, w in enumerate(heard) for token in _tokens(w.word, language, unit)]
    result = Alignment(
        error_unit=unit, transcript=transcript, language=language,
        error_rate=round(metrics.error_rate(text, transcript, language), 4),
    )  # fmt: skip
    # per input word: the heard words paired with its tokens, and whether any pairing differed
    paired: list[list[int]] = [[] for _ in inputs]
    differs = [False] * len(inputs)
    dropped_tokens = [0] * len(inputs)
    inserted: list[tuple[int, int]] = []  # hypothesis token ranges jiwer inserted
    if ref_tokens and hyp_tokens:
        chunks = jiwer.process_words(" ".join(t for _, t in ref_tokens), " ".join(t for _, t in hyp_tokens)).alignments[
            0
        ]
    else:
        chunks = []
    for chunk in chunks:
        if chunk.type == "insert":
            inserted.append((chunk.hyp_start_idx, chunk.hyp_end_idx))
            continue
        for k in range(chunk.ref_end_idx - chunk.ref_start_idx):
            word = ref_tokens[chunk.ref_start_idx + k][0]
            if chunk.type == "delete":
                dropped_tokens[word] += 1
                differs[word] = True
                continue
            j = hyp_tokens[chunk.hyp_start_idx + k][0]
            if j not in paired[word]:
                paired[word].append(j)
            differs[word] = differs[word] or chunk.type == "substitute"
    if not hyp_tokens:  # nothing heard: every word dropped
        dropped_tokens = [len(tokens) for _, tokens in inputs]
    end_of_clip = max(0.0, float(duration_s))
    last = 0.0
    for i, (shown, _) in enumerate(inputs):
        if not paired[i]:
            result.words.append({"word": shown, "start": None, "end": None, "status": DROPPED, "heard": None})
            continue
        start = min(max(min(heard[j].start for j in paired[i]), last), end_of_clip)
        end = min(max(max(heard[j].end for j in paired[i]), start), end_of_clip)
        last = start
        said = " ".join(heard[j].word for j in paired[i])
        status = SUBSTITUTED if differs[i] else OK
        result.words.append({"word": shown, "start": round(start, 3), "end": round(end, 3), "status": status,
                             "heard": bare(said) or said})  # fmt: skip
    hyp_words = [t for _, t in hyp_tokens]
    for first, stop in inserted:
        words = sorted({hyp_tokens[k][0] for k in range(first, stop)})
        entry = _timed(" ".join(heard[j].word for j in words), heard[words[0]].start, heard[words[-1]].end, end_of_clip)
        result.inserted.append(entry)
        times = _repeats(hyp_words, first, stop)
        if times:
            result.repeated.append({**entry, "times": times})
    return result


def _input_units(text: str, language: str, unit: str) -> list[tuple[str, list[str]]]:
    """The input as (shown word, its normalised tokens); words that normalise to nothing (punctuation)
    are left out; per character where the unit is the character; Japanese per written word, its
    tokens the kana of its reading (`metrics.reading_units`: kanji and kana for the same word align)."""
    if language == "ja":
        return [(word, list(pron)) for word, pron in metrics.reading_units(text)]
    if unit == "character":
        return [(ch, [ch]) for ch in metrics.normalize(text, language).replace(" ", "")]
    units = []
    for raw in text.split():
        tokens = metrics.normalize(raw, language).split()
        if tokens:
            units.append((bare(raw) or raw, tokens))
    return units


def _tokens(word: str, language: str, unit: str) -> list[str]:
    if language == "ja":
        return list(metrics.reading(word))
    normalised = metrics.normalize(word, language)
    return list(normalised.replace(" ", "")) if unit == "character" else normalised.split()


def _repeats(tokens: list[str], first: int, stop: int) -> int:
    """How many times an inserted run `tokens[first:stop]` says the words just before or after it
    (counting those words: 2 = said twice); 0 when it repeats neither."""
    run = tokens[first:stop]
    for size in range(1, len(run) + 1):
        if len(run) % size:
            continue
        copies = len(run) // size
        if run == tokens[max(0, first - size) : first] * copies or run == tokens[stop : stop + size] * copies:
            return copies + 1
    return 0


def _timed(word: str, start: float, end: float, end_of_clip: float) -> dict:
    start = min(max(0.0, start), end_of_clip)
    return {"word": word, "start": round(start, 3), "end": round(min(max(end, start), end_of_clip), 3)}


def align_manifest(folder: Path, manifest: dict, language: str | None = None) -> dict:
    """Align every rendered clip of a batch (`service.batch.render_items`'s manifest, its clips in `folder`)
    to its text: each item gains `words`, `inserted`, `repeated`, `error_rate`, `error_unit` and
    `captions` (`<clip>.asr.srt`/`.vtt` written next to it); `manifest.json` is written again."""
    for item in manifest["items"]:
        if not item.get("file") or item.get("error"):
            continue
        try:
            audio, rate = read_clip(folder / item["file"], manifest["format"])
            # the engine's language spoken first: a recogniser's guess only where it could not say
            spoken = item.get("spoken_language") or item.get("language") or language
            found = align_clip(audio, rate, item["text"], spoken)
        except Exception as exc:  # one clip the ASR cannot hear does not end the batch
            logging.getLogger(__name__).warning("alignment of %s failed: %s", item["file"], exc)
            item["notes"] = [*item.get("notes", []), "The words could not be aligned for this clip."]
            continue
        figures = found.as_dict()
        item.update({k: figures[k] for k in ("words", "inserted", "repeated", "error_rate", "error_unit")})
        stem = Path(item["file"]).stem
        item["captions"] = write_captions(folder, stem, found.words, error_unit=found.error_unit)
    (folder / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    return manifest


def read_clip(path: Path, fmt: str) -> tuple[np.ndarray, int]:
    """A rendered clip's mono float samples and rate (raw `pcm` is s16le mono at 24 kHz)."""
    if fmt == "pcm":
        return np.frombuffer(path.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0, SAMPLE_RATE
    import soundfile as sf

    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return audio.mean(axis=1), int(rate)
