"""Pair: a Compare or Arena run of two slots on one text, admitted by both slots' estimated compute,
then `evaluation.pair`'s events, each slot in the caller's turn on its engine."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from evaluation.compare import CLONE_OF_A, ClipResult, Slot, cloner
from evaluation.pair import MetricsReady, PairEvent, pair_events

from . import admission
from .caller import Caller


def cost(text: str, slots: Mapping[str, Slot | str | Exception]) -> float:
    """Estimated seconds of compute for the server-rendered slots (a browser's slot costs the server none)."""
    total = 0.0
    for slot in slots.values():
        if isinstance(slot, Slot) and slot.browser is None:
            total += admission.speech_cost(slot.engine, text)
        elif slot == CLONE_OF_A:
            try:
                total += admission.speech_cost(cloner(), text)
            except Exception:  # no cloner here: the slot fails on its own, at no cost
                pass
    return total


def events(caller: Caller, text: str, slots: Mapping[str, Slot | str | Exception]) -> Iterator[PairEvent]:
    """Admit the pair by its cost, then run it (`evaluation.pair.pair_events`) in the caller's turns."""
    admission.admit(caller, compute_s=cost(text, slots))
    yield from pair_events(text, slots, caller.bucket)


def run(caller: Caller, a: Slot, b: Slot | str, text: str) -> tuple[ClipResult, ClipResult]:
    """Both slots and their figures, without streaming: `events` drained."""
    for event in events(caller, text, {"a": a, "b": b}):
        if isinstance(event, MetricsReady):
            return event.results["a"], event.results["b"]
    raise AssertionError("pair_events ends with MetricsReady")  # pragma: no cover
