"""The runaway guard for Qwen3-TTS: how long a sentence may speak, and when its codec frames loop.

Qwen3-TTS sometimes does not end a sentence: it goes on past the text or repeats itself until the
token cap (`engines.qwen.engine.token_cap`: 0.2 s per character + 3 s, which is tighter than speech only for
CJK text, where it is raised to a quarter over this guard's bound). The batcher (`engines.qwen.batcher`)
gives every row of a step a `RowGuard`, fed each frame's codes as they are sampled; the guard stops
the row when

- its audio passes `bound_s(text, language)`: the text's expected duration at a reference pace
  measured on Kokoro (`PACE_S`, per script, `bench/kokoro_pace.py`), times `SLACK`, plus `PAD_S`,
  never under `MIN_BOUND_S` and never over the token cap; or
- its frames repeat (`LoopDetector`): the first codebook of the last `MIN_REPEAT` frames (or one
  whole period, if longer) equals the same stretch one period earlier, for a period of up to
  `MAX_PERIOD` frames.

The first codebook carries what is said (the other 15 are acoustic detail that the sub-talker samples
afresh each frame, so they rarely repeat exactly even when the speech does), so the detector compares
it alone. A stretch of 2 s (`MIN_REPEAT` = 25 frames at 12.5 Hz) that repeats the previous period
exactly is not speech: pauses between words last well under a second, and a sentence's final silence
ends with the end code. Periods up to 3.2 s (40 frames) cover a repeated word or short phrase.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

FRAMES_PER_SECOND = 12.5  # Qwen3-TTS 12Hz codec

# Seconds of speech per counted character on the packaged Kokoro (int8 ONNX, speed 1.0), edge silence
# trimmed, mean over 3-4 sentences: `bench/kokoro_pace.py` (2026-12-01, this machine). Per script, the
# slowest of its languages: en 0.0684 s/letter (jm_kumo), es 0.0813, it 0.0817 (14.6, 12.3, 12.2
# letters/s); ja 0.1657 s/char, kanji and kana (jf_alpha, 6.0 chars/s); zh 0.2405 s/hanzi (jf_alpha, 4.2/s).
# Not measured (no Kokoro voice): Hangul syllables take the Chinese figure (one syllable each, as a
# hanzi), Cyrillic and other alphabets the Latin one.
PACE_S = {"alphabet": 0.0817, "han": 0.2405, "kana": 0.1657}
DIGIT_LETTERS = 4  # a digit is read as about four letters ("7" -> "seven", "1999" -> 16+ letters)
SLACK = 1.8  # Qwen3-TTS may speak slower than Kokoro, and a speaker or an instruction may slow it further
PAD_S = 1.5  # the sentence's own edges: breath and the last syllable's tail
MIN_BOUND_S = 2.5  # a one-word sentence still gets room to be said
MIN_REPEAT = 25  # frames (2 s) that repeat the period before them: a loop
MAX_PERIOD = 40  # frames (3.2 s): the longest period looked for

TOO_LONG, REPEATING = "too_long", "repeating"


def _script(ch: str) -> str | None:
    """Which pace a character is spoken at: "alphabet", "han", "kana", "digit", or None (not spoken)."""
    if ch.isdigit():
        return "digit"
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "")
    if name.startswith(("CJK UNIFIED", "CJK COMPATIBILITY IDEOGRAPH", "HANGUL")):
        return "han"
    if name.startswith(("HIRAGANA", "KATAKANA")):
        return "kana"
    return "alphabet"


def units(text: str) -> int:
    """Spoken characters of `text` (letters and digits of every script; no spaces or punctuation)."""
    return sum(_script(ch) is not None for ch in text)


def expected_s(text: str, language: str | None = None) -> float:
    """Seconds the text takes at Kokoro's measured pace (`PACE_S`). Japanese kanji (a Japanese
    `language`, or kana in the text) take the kana pace per mora-bearing character."""
    japanese = (language or "").lower().startswith(("ja", "japanese")) or any(_script(c) == "kana" for c in text)
    total = 0.0
    for ch in text:
        script = _script(ch)
        if script == "digit":
            total += DIGIT_LETTERS * PACE_S["alphabet"]
        elif script == "han" and japanese and not unicodedata.name(ch, "").startswith("HANGUL"):
            total += PACE_S["kana"]
        elif script is not None:
            total += PACE_S[script]
    return total


def bound_s(text: str, language: str | None = None, cap_s: float | None = None) -> float:
    """The most audio a sentence may run to: `SLACK` × its expected duration + `PAD_S`, at least
    `MIN_BOUND_S`, at most `cap_s` (the token cap in seconds)."""
    bound = max(MIN_BOUND_S, SLACK * expected_s(text, language) + PAD_S)
    return min(bound, cap_s) if cap_s else bound


class LoopDetector:
    """Feed it one token per frame; `feed` returns where the repetition began (a frame count: the
    audio before it is the sane part, one copy of the period included) once the last
    max(`min_repeat`, period) tokens equal the ones a period before, else None."""

    def __init__(self, min_repeat: int = MIN_REPEAT, max_period: int = MAX_PERIOD) -> None:
        self.min_repeat, self.max_period = min_repeat, max_period
        self.tokens: list[int] = []
        self._runs = [0] * (max_period + 1)  # per period: how many latest tokens equal the one a period before

    def feed(self, token: int) -> int | None:
        self.tokens.append(int(token))
        n = len(self.tokens)
        found = None
        for period in range(1, min(self.max_period, n - 1) + 1):
            if self.tokens[-1] == self.tokens[-1 - period]:
                self._runs[period] += 1
                if found is None and self._runs[period] >= max(self.min_repeat, period):
                    found = n - self._runs[period]
            else:
                self._runs[period] = 0
        return found


def find_loop(tokens, min_repeat: int = MIN_REPEAT, max_period: int = MAX_PERIOD) -> int | None:
    """Where a sequence of first-codebook tokens starts repeating (see `LoopDetector`), or None."""
    detector = LoopDetector(min_repeat, max_period)
    for token in tokens:
        if (start := detector.feed(token)) is not None:
            return start
    return None


@dataclass
class RowGuard:
    """One sentence's guard during one attempt: frames seen, and why and where it was stopped."""

    bound_frames: int
    frames: int = 0
    reason: str | None = None  # TOO_LONG or REPEATING once stopped
    keep: int | None = None  # frames of sane audio when stopped
    ended: bool = False  # its own end code came (or it was stopped)
    capped: bool = False  # the bound is the row's own token cap (a caller's max_new_tokens): ended there quietly
    loops: LoopDetector = field(default_factory=LoopDetector)

    @classmethod
    def for_text(cls, text: str, language: str | None, cap_frames: int) -> RowGuard:
        frames = max(1, round(bound_s(text, language) * FRAMES_PER_SECOND))
        return cls(cap_frames, capped=True) if frames >= cap_frames else cls(frames)

    @property
    def stopped(self) -> bool:
        return self.reason is not None

    def feed(self, first_code: int) -> bool:
        """One generated frame; True when this frame stops the row (it is the last one generated)."""
        if self.ended:
            return False
        self.frames += 1
        start = self.loops.feed(first_code)
        if start is not None:
            self.reason, self.keep, self.ended = REPEATING, start, True
        elif self.frames >= self.bound_frames:
            self.ended = True  # at its own cap (rows of a step may have different ones): no runaway, no notice
            if not self.capped:
                self.reason, self.keep = TOO_LONG, self.frames
        return self.ended

    def figures(self, retried: bool) -> dict:
        """The stop as the run's figures report it."""
        return {
            "reason": self.reason,
            "bound_s": round(self.bound_frames / FRAMES_PER_SECOND, 2),
            "observed_s": round(self.frames / FRAMES_PER_SECOND, 2),
            "kept_s": round((self.keep or 0) / FRAMES_PER_SECOND, 2),
            "retried": retried,
        }


def notice(figures: dict) -> str:
    """One sentence for the listener about a stopped sentence."""
    if figures["reason"] == REPEATING:
        what = f"started repeating itself {figures['kept_s']:.1f} s into a sentence"
    else:
        what = f"ran past {figures['bound_s']:.1f} s on a sentence that should take less"
    if not figures["retried"]:
        tail = "it was cut there"
    elif figures.get("again"):
        tail = "a second try with a new seed went wrong too and was cut the same way"
    else:
        tail = "a second try with a new seed went right"
    return f"Qwen3-TTS {what}; {tail}."
