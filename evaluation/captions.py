"""Captions: SubRip (`.srt`) and WebVTT (`.vtt`) text from timed words.

Timed words come from the ASR alignment (`evaluation.alignment`: the input words, dropped ones left
out since nobody said them) or from the model's own durations where the engine gives them
(`AudioChunk.words`: Kokoro on its PyTorch back-end). Which of the two made the times is the
`source` ("asr" or "model"): it goes into the file name (`clip.asr.srt`) and a WebVTT NOTE.
Cues are short lines: a new cue after `MAX_CUE_WORDS` words, `MAX_CUE_CHARS` characters, a pause
of `CUE_GAP_S` or a word ending a sentence.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from engines.base import AudioChunk

SOURCES = {
    "asr": "word times from the speech recogniser's alignment",
    "model": "word times from the model's own durations",
}
MAX_CUE_WORDS = 7
MAX_CUE_CHARS = 42
CUE_GAP_S = 0.6
SENTENCE_END = (".", "!", "?", "…", "。", "！", "？")


def timed_words(words: Iterable[dict]) -> list[dict]:
    """The words that have times (dropped words have none), as {"word", "start", "end"}."""
    return [{"word": w["word"], "start": w["start"], "end": w["end"]} for w in words if w.get("start") is not None]


def model_words(chunks: Iterable[AudioChunk], offset_s: float = 0.0) -> list[dict]:
    """The model's own word times across a clip's chunks (each chunk's times are from its own start),
    from `offset_s` on (a stream's later chunks: the audio before them); empty when the engine gives none."""
    words, offset = [], offset_s
    for chunk in chunks:
        for w in chunk.words:
            start = offset + max(0.0, w.start_s)
            words.append({"word": w.word, "start": round(start, 3), "end": round(max(offset + w.end_s, start), 3)})
        offset += chunk.duration_s
    return words


def cues(words: list[dict], joiner: str = " ") -> list[tuple[float, float, str]]:
    """(start, end, text) lines from timed words; `joiner`: "" for text written without spaces."""
    out: list[tuple[float, float, str]] = []
    line: list[dict] = []
    for word in timed_words(words):
        if line and _breaks(line, word, joiner):
            out.append(_cue(line, joiner))
            line = []
        line.append(word)
    if line:
        out.append(_cue(line, joiner))
    return out


def srt(words: list[dict], joiner: str = " ") -> str:
    """SubRip text: numbered cues, `HH:MM:SS,mmm --> HH:MM:SS,mmm`."""
    blocks = [
        f"{n}\n{_stamp(a, ',')} --> {_stamp(b, ',')}\n{text}\n" for n, (a, b, text) in enumerate(cues(words, joiner), 1)
    ]
    return "\n".join(blocks)


def vtt(words: list[dict], source: str = "asr", joiner: str = " ") -> str:
    """WebVTT text (a NOTE says where the times come from)."""
    head = f"WEBVTT\n\nNOTE {SOURCES.get(source, source)}\n"
    return "\n".join(
        [head, *(f"{_stamp(a, '.')} --> {_stamp(b, '.')}\n{text}\n" for a, b, text in cues(words, joiner))]
    )


def file_names(stem: str, source: str) -> tuple[str, str]:
    """The .srt and .vtt names for a clip's stem, saying the source: `clip.asr.srt`, `clip.model.vtt`."""
    return f"{stem}.{source}.srt", f"{stem}.{source}.vtt"


def write_captions(
    folder: Path, stem: str, aligned: list[dict] | None, chunks: Iterable[AudioChunk] = (), error_unit: str = "word"
) -> list[str]:
    """Write `<stem>.asr.srt/.vtt` from the alignment's words (when given) and `<stem>.model.srt/.vtt`
    from the model's own word times (when its chunks carry them) into `folder`; the names written."""
    joiner = "" if error_unit == "character" else " "
    written = []
    for source, words in (("asr", aligned or []), ("model", model_words(chunks))):
        if not timed_words(words):
            continue
        srt_name, vtt_name = file_names(stem, source)
        (folder / srt_name).write_text(srt(words, joiner), encoding="utf-8")
        (folder / vtt_name).write_text(vtt(words, source, joiner), encoding="utf-8")
        written += [srt_name, vtt_name]
    return written


def _breaks(line: list[dict], word: dict, joiner: str) -> bool:
    text = joiner.join(w["word"] for w in [*line, word])
    return (
        len(line) >= MAX_CUE_WORDS
        or len(text) > MAX_CUE_CHARS
        or word["start"] - line[-1]["end"] >= CUE_GAP_S
        or line[-1]["word"].endswith(SENTENCE_END)
    )


def _cue(line: list[dict], joiner: str) -> tuple[float, float, str]:
    start = line[0]["start"]
    return start, max(line[-1]["end"], start), joiner.join(w["word"] for w in line)


def _stamp(seconds: float, separator: str) -> str:
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"
