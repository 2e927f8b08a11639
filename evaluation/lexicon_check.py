"""Heard as written: whether a lexicon entry made the word come out as meant, by the ASR round trip.

A word is spoken in a short carrier sentence (`carrier`, the same with and without the entry), the
clip is aligned to that sentence (`evaluation.alignment.align_clip`: the recogniser's words paired
with the input words), and the word's place says what was heard there. It was heard as written when
that, normalised as the error rate normalises it (`evaluation.metrics.normalize`), is one of the
expected forms: the word itself, or for a respelling also the respelling (what Qwen3-TTS was given).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from . import metrics
from .alignment import DROPPED, align_clip

# A plain sentence around the word: measured with Whisper tiny.en on jm_kumo, "Please say cat again." was
# heard as "Khad" and "boat" as "vote", while in this one cat, dog, boat, house, train and apple were all
# heard as written (a noun's place in a sentence helps the recogniser as it helps a listener).
CARRIER = "I saw a {word} today."
WORD_INDEX = 3  # the word's place among the carrier's words


@dataclass(frozen=True)
class Heard:
    """What the recogniser heard at the word's place (None: nothing), and whether that is as written."""

    word: str
    heard: str | None
    as_written: bool
    transcript: str

    def as_dict(self) -> dict:
        return asdict(self)


def carrier(word: str) -> str:
    """The sentence a word is tried in (a single word is too short for a voice and for the ASR)."""
    return CARRIER.format(word=word)


def heard_as(
    audio: np.ndarray, sample_rate: int, word: str, expected: Sequence[str], language: str | None = None
) -> Heard:
    """Align a clip of `carrier(word)` and say whether the word was heard as one of `expected`."""
    found = align_clip(audio, sample_rate, carrier(word), language)
    unit = found.words[WORD_INDEX] if len(found.words) > WORD_INDEX else None
    heard = None if unit is None or unit["status"] == DROPPED else unit["heard"] or unit["word"]
    code = found.language or "en"
    wanted = {metrics.normalize(form, code).replace(" ", "") for form in expected if form}
    as_written = heard is not None and metrics.normalize(heard, code).replace(" ", "") in wanted
    return Heard(word, heard, as_written, found.transcript)
