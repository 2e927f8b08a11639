"""Sentence and clause splitting, grouping texts of similar length, and Kokoro's streaming chunk plan.

Text is cut into clauses at sentence ends (`.!?…` and full-width `。！？`), at `;:` (`；：`), at
`,—` (`，、`) and at line breaks; pronunciation markup such as `[Kokoro](/kˈOkəɹO/)` is never cut.
The chunk plan then groups phonemized clauses into chunks: a short first chunk so that audio
starts soon, then chunks that grow as fast as the engine's measured speed allows while each one
is still ready before the audio before it has finished playing, and never more than the model's 510-phoneme window.
`length_groups` puts texts of similar length together for engines that render several in one model
call (Qwen3-TTS), by their positions, so that a stream keeps its sentence order and a batch may sort.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

# Break strength after a clause: how good a place it is to end a chunk.
WORD, COMMA, COLON, SENTENCE, PARAGRAPH = range(5)

_CLOSERS = "\"'”’»)]）」』】"
# Markup `[word](/phonemes/)` is read with bounded spans (`MARKUP_WORD_CHARS`, `MARKUP_PHONEMES_CHARS`):
# an unbounded `\[[^\]]+\]` rescans the rest of the text from every "[" (quadratic; 20,000 "[" took 4 s).
MARKUP_WORD_CHARS = 200
MARKUP_PHONEMES_CHARS = 400
MARKUP = rf"\[[^\]\n]{{1,{MARKUP_WORD_CHARS}}}\]\([^)\n]{{0,{MARKUP_PHONEMES_CHARS}}}\)"
# One pattern, tried left to right: markup (atomic), a line break, or a punctuation mark that ends
# a clause. ASCII marks need whitespace or the end after them ("3.14" and "e.g.x" stay whole).
# Linear on any input: a line break's match starts at the "\n" (blanks before it are stripped with
# the clause), and a run of marks is tried once, from its first mark, without backtracking.
_BREAK = re.compile(
    rf"(?P<markup>{MARKUP})"
    r"|(?P<para>\n\s*)"
    rf"|(?P<sent>(?:(?<![.!?])[.!?]++|…)[{re.escape(_CLOSERS)}]*+(?=\s|$)|[。！？]+[{re.escape(_CLOSERS)}]*)"
    rf"|(?P<colon>[;:][{re.escape(_CLOSERS)}]*(?=\s|$)|[；：])"
    rf"|(?P<comma>[,—][{re.escape(_CLOSERS)}]*(?=\s|$)|—|[，、])"
)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af]")


@dataclass(frozen=True)
class Clause:
    """A piece of text that ends at a break, with the strength of that break."""

    text: str
    strength: int
    space_after: bool


def split_clauses(text: str) -> list[Clause]:
    """Cut text into clauses at punctuation and line breaks, keeping the punctuation."""
    clauses: list[Clause] = []
    start = 0
    for m in _BREAK.finditer(text):
        kind = m.lastgroup
        if kind == "markup":
            continue
        end = m.start() if kind == "para" else m.end()
        strength = {"para": PARAGRAPH, "sent": SENTENCE, "colon": COLON, "comma": COMMA}[kind]
        piece = text[start:end].strip()
        if piece:
            space = kind == "para" or (m.end() < len(text) and text[m.end()].isspace())
            clauses.append(Clause(piece, strength, space))
        elif clauses and strength > clauses[-1].strength:
            last = clauses[-1]
            clauses[-1] = Clause(last.text, strength, last.space_after or kind == "para")
        start = m.end()
    tail = text[start:].strip()
    if tail:
        clauses.append(Clause(tail, SENTENCE, False))
    return clauses


def split_words(text: str, parts: int) -> list[str]:
    """Cut one clause into about `parts` pieces of similar length at word boundaries.

    CJK text without spaces is cut between characters. Markup spans stay whole.
    """
    if parts <= 1:
        return [text]
    words = re.findall(rf"{MARKUP}\S*|\S+", text)
    if len(words) < parts and _CJK.search(text):
        words = list(text.replace(" ", ""))
        joiner = ""
    else:
        joiner = " "
    size = max(1, -(-len(words) // parts))
    return [joiner.join(words[i : i + size]) for i in range(0, len(words), size)]


def length_groups(texts: Sequence[str], size: int = 4, ratio: float = 2.0, sort: bool = False) -> list[list[int]]:
    """Positions of `texts` in groups of up to `size` whose longest text is at most `ratio` times the
    shortest (a batched model call pads every text to the longest one). Groups take consecutive texts,
    in the order given (a stream keeps its sentence order); `sort=True` orders them by length first,
    shortest first (fewer, fuller groups for a batch job). Every position appears exactly once."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i])) if sort else range(len(texts))
    groups: list[list[int]] = []
    shortest = longest = 0
    for i in order:
        n = len(texts[i])
        if groups and len(groups[-1]) < size and max(longest, n) <= ratio * min(shortest, n):
            groups[-1].append(i)
            shortest, longest = min(shortest, n), max(longest, n)
        else:
            groups.append([i])
            shortest = longest = n
    return groups


@dataclass(frozen=True)
class ChunkPlan:
    """How big each streamed chunk may be, in phonemes.

    Chunk k+1 is synthesized after chunk k and must be ready before the audio planned so far has
    played. With an engine that needs `overhead_s + compute_s_per_phoneme * n` seconds for a chunk
    of n phonemes that plays for `audio_s_per_phoneme * n` seconds (figures the engine measures
    when it loads), that bounds chunk k+1 by what the first k chunks buy in playing time.
    """

    first_min: int = 20
    first_max: int = 45
    hard_max: int = 510
    overhead_s: float = 0.0
    compute_s_per_phoneme: float = 0.04
    audio_s_per_phoneme: float = 0.065
    # For the engine's calibration at load (`KokoroEngine._warm_up`): the time to first audio aimed
    # for (None: keep `first_max`; otherwise the first chunk is cut, at a word, to what the measured
    # speed renders in that time, never under `first_floor` phonemes), and the safety factor put on
    # the measured costs.
    first_audio_s: float | None = None
    first_floor: int = 20  # measured: 12 ("The birch") cost 6.5 points of ASR WER on the bench paragraph, 20 none
    margin: float = 1.25
    # where a sized first chunk is cut: "word" (the longest run of whole words that fits), or "phrase"
    # (the longest head that fits and ends where a phrase does: before a verb, a preposition or a
    # conjunction, English only; no cut when none fits)
    first_cut: str = "word"
    # which measured costs `KokoroEngine` calibrates with: "fit" (a fixed cost per call and a cost per
    # phoneme, fitted on two sentences), or "rate" (compute per second of audio rendered, times the
    # boundary silence each call renders and the speech per phoneme: see `costs_from_rate`)
    costs: str = "fit"
    # The longest one chunk may hold the engine, in seconds of compute by the measured costs (None: no
    # bound but `hard_max`). An engine that serves one request at a time hands over only between two
    # chunks (`engines.runtime.work_queue`), so this bounds how long another caller's first audio waits for a
    # long request; never under `turn_floor` phonemes (about a sentence).
    turn_s: float | None = None
    turn_floor: int = 120

    def calibrated(self, overhead_s: float, compute_s_per_phoneme: float, audio_s_per_phoneme: float) -> ChunkPlan:
        """This plan with an engine's measured costs (taken `margin` times), and, with
        `first_audio_s` set, a first chunk that those costs render in that time."""
        first_max = self.first_max
        if self.first_audio_s is not None:
            fits = int((self.first_audio_s - overhead_s) / max(compute_s_per_phoneme, 1e-6))
            first_max = max(self.first_floor, min(self.first_max, fits))
        hard_max = self.hard_max
        if self.turn_s is not None:
            fits_turn = int((self.turn_s - overhead_s) / max(compute_s_per_phoneme, 1e-6))
            hard_max = max(min(self.turn_floor, self.hard_max), min(self.hard_max, fits_turn))
        return replace(
            self,
            first_min=min(self.first_min, first_max),
            first_max=first_max,
            hard_max=hard_max,
            overhead_s=self.margin * overhead_s,
            compute_s_per_phoneme=self.margin * compute_s_per_phoneme,
            audio_s_per_phoneme=audio_s_per_phoneme,
        )

    @staticmethod
    def costs_from_rate(
        s_per_rendered_s: float, silence_s: float, speech_s_per_phoneme: float
    ) -> tuple[float, float, float]:
        """The (overhead, compute per phoneme, audio per phoneme) that `calibrated` takes, from an
        engine's compute per second of audio rendered, the boundary silence each call renders and
        trims, and the seconds of speech per phoneme: a call costs its silence and its speech."""
        return s_per_rendered_s * silence_s, s_per_rendered_s * speech_s_per_phoneme, speech_s_per_phoneme

    def budget(self, index: int, planned: int, first: int) -> int:
        if index == 0:
            return self.first_max
        played = self.audio_s_per_phoneme * planned  # audio of chunks 1..k
        spent = index * self.overhead_s + self.compute_s_per_phoneme * (planned - first)  # compute of 2..k
        room = (played - spent - self.overhead_s) / max(self.compute_s_per_phoneme, 1e-6)
        return max(self.first_min, min(self.hard_max, int(room)))


def plan_chunks(clauses: Iterable[tuple[int, int]], plan: ChunkPlan) -> Iterator[list[int]]:
    """Group clauses, given lazily as (phoneme count, break strength), into chunks of indices.

    Each chunk takes clauses while they fit its budget; a chunk that would end mid-sentence is cut
    back to its last sentence end when that keeps at least half of it. The first chunk ends at the
    first break once it holds `first_min` phonemes. A single clause longer than a budget makes a
    chunk of its own (callers split clauses over `hard_max` first). Clauses are pulled one past
    the chunk being decided, so a caller can phonemize them on demand.
    """
    source = iter(enumerate(clauses))
    pending: list[tuple[int, int, int]] = []  # (index, length, strength)
    count, planned, first = 0, 0, 0
    while True:
        budget = plan.budget(count, planned, first)
        taken, total = 0, 0
        while True:
            if taken == len(pending):
                nxt = next(source, None)
                if nxt is None:
                    break
                pending.append((nxt[0], *nxt[1]))
            _, length, strength = pending[taken]
            if taken and total + length + 1 > budget:
                break
            total += length + (1 if taken else 0)
            taken += 1
            if count == 0 and total >= plan.first_min and strength >= COMMA:
                break
        if not taken:
            return
        more = taken < len(pending) or _peek(source, pending)
        if count and more and pending[taken - 1][2] < SENTENCE:
            cut = next((k for k in range(taken - 1, 0, -1) if pending[k - 1][2] >= SENTENCE), None)
            if cut is not None and sum(p[1] + 1 for p in pending[:cut]) * 2 >= total:
                taken = cut
        yield [p[0] for p in pending[:taken]]
        size = sum(p[1] for p in pending[:taken]) + taken - 1
        planned, first = planned + size, first or size
        del pending[:taken]
        count += 1


def _peek(source: Iterator[tuple[int, tuple[int, int]]], pending: list[tuple[int, int, int]]) -> bool:
    nxt = next(source, None)
    if nxt is None:
        return False
    pending.append((nxt[0], *nxt[1]))
    return True
