"""Kokoro inside a sentence: plan the whole sentence once, render its decoder in windows.

Kokoro is not autoregressive. Its front half (PL-BERT, the duration and F0/energy predictors, the
alignment) sees the whole sentence and is cheap; its decoder (iSTFTNet) does most of the work and only
needs a local stretch of the aligned features. So a sentence is planned once (`SentencePlan`: aligned
text features, F0 and energy curves, the predicted durations, and the harmonic source computed for the
whole sentence, so its phase runs on across windows), then the decoder renders consecutive windows of
frames (`window_edges`), each with `CONTEXT_FRAMES` of features on either side for its receptive field;
each window keeps its middle and meets the next in a short crossfade (`render_windows`).

What a window cannot see: the decoder's instance norms take their statistics over the frames they are
given, so a window is normalised over itself and its context rather than the whole sentence. The
context and the window sizes below keep that difference far under the distance between two voices
(measured: bench/results-kokoro-windows.json; tests/test_kokoro_windows.py).

Windows end where a word does (a space token of the sentence), so each window's words are whole and
their times are the whole sentence's, relative to the window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

# One frame of the aligned features is 600 samples (25 ms) at 24 kHz for Kokoro-82M's iSTFTNet
# (the F0 and energy curves run at twice that rate; the harmonic source's STFT at hop 5). Each
# back-end reads its own value from its model (`frame_samples`).
CONTEXT_FRAMES = 10  # 0.25 s of features each side of a window
FIRST_FRAMES = 14  # the first window: ~0.35 s of audio, then it grows
GROWTH = 2.0  # each later window this many times the one before, up to LARGEST_FRAMES
LARGEST_FRAMES = 160  # 4 s
CROSSFADE_S = 0.01  # windows overlap by this much and are crossfaded (inside the context)
LEAD_KEEP_FRAMES = 2  # frames of the boundary token's silence kept before speech (the trim decides)


@dataclass(frozen=True)
class SentencePlan:
    """The front half's output for one sentence: what every window of its decoder reads.

    `asr` (1, C, T) aligned text features; `f0`, `energy` (1, 2T) curves; `har` the harmonic
    source's spectrum and phase (1, bins, T * har_per_frame + 1); `durations` frames per token
    (with the two boundary tokens); `style` the (1, 256) style row.
    """

    asr: np.ndarray
    f0: np.ndarray
    energy: np.ndarray
    har: np.ndarray
    durations: np.ndarray
    style: np.ndarray

    @property
    def frames(self) -> int:
        return int(self.asr.shape[-1])


Decode = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def window_edges(
    durations: np.ndarray,
    breaks: list[int],
    first: int = FIRST_FRAMES,
    growth: float = GROWTH,
    largest: int = LARGEST_FRAMES,
) -> list[tuple[int, int]]:
    """Consecutive (start, end) frame ranges covering the sentence's speech.

    `durations`: frames per token, boundary tokens included; `breaks`: indices of tokens a window may
    start at (a word's first token: the one after a space). The first window starts a little before
    the end of the leading boundary token and ends at the first break at least `first` frames later;
    each later window aims at `growth` times the one before, up to `largest`. The last one ends a
    little after the trailing boundary token starts; a stub under half the first size joins the window
    before it.
    """
    durations = np.asarray(durations, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(durations)])
    total = int(starts[-1])
    lo = max(0, int(durations[0]) - LEAD_KEEP_FRAMES)
    hi = min(total, total - int(durations[-1]) + LEAD_KEEP_FRAMES) if len(durations) > 1 else total
    if hi <= lo:
        return [(0, total)]
    cuts = sorted({int(starts[k]) for k in breaks if 0 < k < len(durations)})
    edges, at, size = [], lo, first
    while at < hi:
        aim = at + max(1, int(size))
        end = next((c for c in cuts if c >= aim), hi)
        end = min(end, hi)
        if hi - end < first / 2:
            end = hi
        edges.append((at, end))
        size = min(largest, max(size, end - at) * growth)
        at = end
    return edges


def render_windows(
    decode: Decode,
    plan: SentencePlan,
    edges: list[tuple[int, int]],
    frame_samples: int,
    context: int = CONTEXT_FRAMES,
    sample_rate: int = 24_000,
) -> Iterator[np.ndarray]:
    """The audio of each window in turn: decoded with `context` frames either side, its middle kept,
    the first `CROSSFADE_S` of each window blended with the tail of the one before (which it holds back).
    Samples line up with the whole-sentence render from frame `edges[0][0]` on."""
    frames = plan.frames
    per_har = (plan.har.shape[-1] - 1) // frames
    fade = min(int(CROSSFADE_S * sample_rate), context * frame_samples)
    tail: np.ndarray | None = None
    for k, (a, b) in enumerate(edges):
        last = k == len(edges) - 1
        lo, hi = max(0, a - context), min(frames, b + context)
        audio = decode(
            plan.asr[..., lo:hi],
            plan.f0[..., 2 * lo : 2 * hi],
            plan.energy[..., 2 * lo : 2 * hi],
            plan.har[..., lo * per_har : hi * per_har + 1],
            plan.style,
        )
        audio = np.asarray(audio, dtype=np.float32).ravel()
        start, stop = (a - lo) * frame_samples, (b - lo) * frame_samples
        held = 0 if last else min(fade, len(audio) - stop)
        piece = audio[start : stop + held].copy()
        if tail is not None:
            n = min(len(tail), len(piece))
            ramp = np.linspace(0.0, 1.0, n + 2, dtype=np.float32)[1:-1]
            piece[:n] = tail[:n] * (1.0 - ramp) + piece[:n] * ramp
        if held:
            tail, piece = piece[-held:], piece[:-held]
        else:
            tail = None
        yield piece


def breaks_at_spaces(ids, space_id: int | None, silent: set[int] | frozenset[int] = frozenset()) -> list[int]:
    """Token indices (in the model's input, after its leading boundary token) where a word begins: the
    token after a space, unless it is punctuation (`silent`), which would leave a window without a word."""
    return [j + 2 for j, t in enumerate(ids) if t == space_id and j + 1 < len(ids) and ids[j + 1] not in silent]
