"""Measured runs: wraps an engine's stream and records time to first audio, total time and RTF.

Every figure the UI, the CLI `bench` command and the API report comes from here, measured on the
run itself: nothing is estimated.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from . import registry
from .audio import join
from .base import AudioChunk, Engine, SynthesisRequest


@dataclass
class RunStats:
    """Figures of one synthesis run; `ready_s` is when each chunk was ready, from the start."""

    engine: str
    ttfa_s: float | None = None
    total_s: float = 0.0
    audio_s: float = 0.0
    chunks: int = 0
    ready_s: list[float] = field(default_factory=list)
    durations_s: list[float] = field(default_factory=list)

    @property
    def rtf(self) -> float | None:
        """Real-time factor: seconds of compute per second of audio (below 1 is faster than real time)."""
        return self.total_s / self.audio_s if self.audio_s else None

    @property
    def underruns(self) -> int:
        """Chunks that were not ready when the audio before them finished playing."""
        if not self.ready_s:
            return 0
        play_at = self.ready_s[0]
        late = 0
        for ready, before in zip(self.ready_s[1:], self.durations_s[:-1], strict=True):
            play_at += before
            if ready > play_at:
                late += 1
                play_at = ready
        return late

    def summary(self) -> dict:
        return {
            "audio_s": round(self.audio_s, 3),
            "total_s": round(self.total_s, 3),
            "ttfa_s": None if self.ttfa_s is None else round(self.ttfa_s, 3),
            "rtf": None if self.rtf is None else round(self.rtf, 3),
            "chunks": self.chunks,
        }


def timed_stream(engine_id: str, request: SynthesisRequest, stats: RunStats) -> Iterator[AudioChunk]:
    """The registry engine's chunks, filling `stats` (the engine is loaded before timing starts)."""
    return measured(registry.get(engine_id), request, stats)


def measured(engine: Engine, request: SynthesisRequest, stats: RunStats) -> Iterator[AudioChunk]:
    """An engine's chunks, filling `stats` as they come."""
    start = time.perf_counter()
    for chunk in engine.stream(request):
        now = time.perf_counter() - start
        if stats.ttfa_s is None:
            stats.ttfa_s = now
        stats.ready_s.append(now)
        stats.durations_s.append(chunk.duration_s)
        stats.audio_s += chunk.duration_s
        stats.chunks += 1
        stats.total_s = now
        yield chunk
    stats.total_s = time.perf_counter() - start


def synthesize(engine_id: str, request: SynthesisRequest) -> tuple[np.ndarray, list[AudioChunk], RunStats]:
    """The whole clip: all chunks joined, with the run's figures."""
    stats = RunStats(engine=engine_id)
    chunks = list(timed_stream(engine_id, request, stats))
    return join(chunks), chunks, stats
