"""One lock for every grapheme-to-phoneme call in the process.

libespeak-ng keeps global state (its voice, its buffers), and misaki's G2P objects keep per-call state
too: from 4 threads, misaki's `EspeakG2P("es")` gave 400 of 960 outputs wrong and the English G2P
(spaCy, with espeak for unknown words) 337 of 480, other calls' words inside. The page's `/kokoro/plan`
runs in Starlette's thread pool and shares the cached G2P objects with server synthesis, so every G2P is
wrapped by `locked`: no two threads are ever inside one G2P, nor inside espeak-ng at all. One lock for
all of them, not one per object, because the English G2P's fallback and the other languages' G2P share
the one espeak-ng. A G2P call costs ~3 ms per sentence, so the lock is never held for long.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import TypeVar

# misaki's English G2P merges the sub-tokens of one blank-free run in a loop quadratic in their number:
# "[a](/" × 200 (1,000 characters) took 4.3 s of CPU, × 1,000 (a 5,000-character text) ~100 s. No word,
# nor a lexicon entry's markup `[word](/phonemes/)` (at most 40 + 80 + 6 characters), is longer than this:
MAX_RUN_CHARS = 128
_LONG_RUN = re.compile(rf"\S{{{MAX_RUN_CHARS + 1},}}")
G2P_LOCK = threading.RLock()  # re-entrant: a G2P that calls another (markup around a G2P) holds it once

T = TypeVar("T")


def locked(g2p: Callable[[str], T]) -> Callable[[str], T]:
    """`g2p` that runs under `G2P_LOCK`, one call at a time in the whole process, on text whose runs
    without blanks are cut to `MAX_RUN_CHARS` (`cut_long_runs`)."""

    def run(text: str) -> T:
        text = cut_long_runs(text)
        with G2P_LOCK:
            return g2p(text)

    run.__wrapped__ = g2p  # type: ignore[attr-defined]
    return run


def cut_long_runs(text: str) -> str:
    """`text` with every run of more than `MAX_RUN_CHARS` characters without a blank cut by spaces
    into pieces of `MAX_RUN_CHARS` (garbage, not words: the G2P then reads it in linear time)."""

    def cut(run: re.Match) -> str:
        found = run.group()
        return " ".join(found[i : i + MAX_RUN_CHARS] for i in range(0, len(found), MAX_RUN_CHARS))

    return _LONG_RUN.sub(cut, text)
