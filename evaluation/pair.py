"""One pair run as domain events: two slots on one text, together or in turn, levelled as they stream,
each measured in the background the moment it ends.

`pair_events` yields small frozen events (`PairStarted`, `SlotStarted`, `SlotChunk`, `SlotFinished`,
`SlotFailed`, `Measuring`, `MetricsReady`), never Gradio components: each face decides what a person
may see of them. The CLI drains them (`run_pair`), the Compare tab maps them to players and status
lines with every figure, the blind Arena to neutral words only. A slot that fails keeps its sentence in
its event and the other still runs; a slot given as an exception (its inputs did not make a slot) fails
at once; `CLONE_OF_A` as slot B clones slot A's finished clip.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from engines.audio import OutputSettings, StreamLeveler
from engines.base import EngineError
from engines.runtime import registry
from engines.runtime.timing import RunStats

from .compare import CLONE_OF_A, MATCH_LUFS, ClipResult, Slot, clone_of, interleave, measure, runs_together, stream_slot

# ASR, DNSMOS and similarity run here, one clip at a time, so they never hold up the other slot's stream
_metrics_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics")


@dataclass(frozen=True)
class PairStarted:
    """The pair begins; `together` when both slots run at the same time (their times include sharing)."""

    together: bool


@dataclass(frozen=True)
class SlotStarted:
    """A slot's model is loading or speaking."""

    slot: str
    result: ClipResult


@dataclass(frozen=True)
class SlotChunk:
    """A piece of a slot's clip, float32 at 24 kHz, levelled toward `MATCH_LUFS` (both sides play alike)."""

    slot: str
    audio: np.ndarray
    result: ClipResult


@dataclass(frozen=True)
class SlotFinished:
    """A slot's stream ended without an error; `result` holds its audio and run figures."""

    slot: str
    result: ClipResult


@dataclass(frozen=True)
class SlotFailed:
    """A slot could not speak (or stopped part way); `sentence` says why, for faces that may say it."""

    slot: str
    sentence: str
    result: ClipResult


@dataclass(frozen=True)
class Measuring:
    """Every slot has ended; the metrics are being computed."""


@dataclass(frozen=True)
class MetricsReady:
    """Every clip's metrics are in its result (`results` by slot name, in the order given)."""

    results: dict[str, ClipResult]


PairEvent = PairStarted | SlotStarted | SlotChunk | SlotFinished | SlotFailed | Measuring | MetricsReady


def pair_events(
    text: str, slots: Mapping[str, Slot | str | Exception], caller: str | None = None
) -> Iterator[PairEvent]:
    """Run the slots (named, e.g. "A" and "B") on one text and yield what happens, in order; `caller`
    is whose turns they take in the engines' lines (`engines.runtime.work_queue`'s fair share).

    Two `Slot`s run together when `runs_together` says so, else in turn, in the order given. Each
    clip's metrics start as soon as it ends; `MetricsReady` comes last. Closing the generator (a
    cancelled request) stops the streams.
    """
    results: dict[str, ClipResult] = {}
    pending: dict[str, Future] = {}
    good = [s for s in slots.values() if isinstance(s, Slot)]
    together = len(good) == 2 and len(slots) == 2 and runs_together(*good)
    yield PairStarted(together)
    streams: dict[str, Iterator[PairEvent]] = {}
    for name, slot in slots.items():
        if isinstance(slot, Exception):
            results[name] = _failed(slot)
            yield SlotFailed(name, results[name].error, results[name])
            continue
        if isinstance(slot, Slot):
            results[name] = ClipResult(slot, RunStats(engine=slot.engine), together=together)
        streams[name] = _slot_events(name, slot, text, results, pending, caller)
    if together:
        for _, event in interleave(streams):
            yield event
    else:
        for stream in streams.values():
            yield from stream
    yield Measuring()
    for name, future in pending.items():
        results[name].metrics = future.result()
    yield MetricsReady({name: results[name] for name in slots})


def run_pair(a: Slot, b: Slot | str, text: str, caller: str | None = None) -> tuple[ClipResult, ClipResult]:
    """Both slots and their figures, without streaming (the CLI and the API): `pair_events` drained."""
    for event in pair_events(text, {"a": a, "b": b}, caller):
        if isinstance(event, MetricsReady):
            return event.results["a"], event.results["b"]
    raise AssertionError("pair_events ends with MetricsReady")  # pragma: no cover


def _slot_events(
    name: str,
    slot: Slot | str,
    text: str,
    results: dict[str, ClipResult],
    pending: dict[str, Future],
    caller: str | None = None,
) -> Iterator[PairEvent]:
    """One slot's events; a `CLONE_OF_A` slot is made from slot A's clip when its turn comes."""
    if slot == CLONE_OF_A:
        first = next(iter(results.values()))
        try:
            slot = clone_of(first, text)
        except EngineError as exc:
            engine = next(iter(registry.engines_that("clones")), "?")
            results[name] = ClipResult(Slot(engine, CLONE_OF_A), RunStats(engine=engine), error=str(exc))
            pending[name] = _metrics_pool.submit(measure, results[name], text)
            yield SlotFailed(name, results[name].error, results[name])
            return
        results[name] = ClipResult(slot, RunStats(engine=slot.engine))
    result = results[name]
    yield SlotStarted(name, result)
    leveler = StreamLeveler(OutputSettings(lufs=MATCH_LUFS))
    for _, piece in leveler.level(stream_slot(result.slot, text, result, caller)):
        if piece.size:
            yield SlotChunk(name, piece, result)
    pending[name] = _metrics_pool.submit(measure, result, text)
    if result.error:
        yield SlotFailed(name, result.error, result)
    else:
        yield SlotFinished(name, result)


def _failed(exc: Exception) -> ClipResult:
    result = ClipResult(Slot("?", ""), RunStats(engine="?"))
    result.error = str(exc) if isinstance(exc, EngineError) else "The slot could not start."
    return result
