"""Stop, then Generate: a page event that stops at once and leaves a calm "Stopped" behind.

Why: Gradio 6.17.3 cancels a running event by closing its generator, and a plain (sync) generator
cannot be closed while its thread is inside `next()`, that is while the engine renders a chunk: the
`/cancel` request then waits for the chunk (13 s was measured on this shared machine for a long
paragraph), and meanwhile the page still counts the event as running, so a Generate click in that
time is dropped (a click's default `trigger_mode="once"`) and nothing ever starts.

`stoppable(fn)` runs such a generator from an async one: each `next()` runs in a worker thread that a
cancel abandons at once; the run's `engines.stop` scope is stopped, which cuts the model call in
progress short where the engine can (Kokoro on ONNX Runtime), and the generator is closed in the
background as soon as its step returns (which ends its turn in the engine's line; a new run waits in
that line meanwhile and says so).
`bind_stop` wires a Stop button: it cancels the events and shows "Stopped." in the status lines.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable

import gradio as gr
from anyio import to_thread

from engines import stop as stopping

STOPPED = "Stopped."
_END = object()


def stopped() -> bool:
    """Whether the visitor stopped the run this code belongs to (for a long plain handler to check
    between its steps, e.g. between a batch's clips)."""
    return stopping.stopped()


def stoppable(fn: Callable) -> Callable:
    """`fn`, a generator function or a plain one, as an async function that a cancel stops at once (its
    signature and marks, e.g. `starts_work`, kept for Gradio and `api.guard`): a generator is closed once
    its step in progress is done; a plain function runs on in its thread, told by `stopped()`."""
    if not inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        async def call(*args, **kwargs):
            scope = stopping.enter()  # the worker thread runs in a copy of this context: it sees the scope
            try:
                return await to_thread.run_sync(functools.partial(fn, *args, **kwargs), abandon_on_cancel=True)
            finally:
                scope.stop()

        return call

    @functools.wraps(fn)
    async def run(*args, **kwargs):
        scope = stopping.enter()  # each step's thread gets a copy of this context: the same scope
        steps = fn(*args, **kwargs)
        busy = threading.Lock()  # held while the generator runs a step

        def step():
            with busy:
                return next(steps, _END)

        def close():
            with busy:  # after the step in progress, if any
                steps.close()

        try:
            while (item := await to_thread.run_sync(step, abandon_on_cancel=True)) is not _END:
                yield item
        finally:
            scope.stop()  # the model call in progress is cut short where the engine can (`engines.stop`)
            # Not awaited: a cancelled run must not wait for the engine's chunk in progress.
            threading.Thread(target=close, name="close-stopped-run", daemon=True).start()

    return run


def bind_stop(stop: gr.Button, events: list, statuses: list | None = None) -> None:
    """A click on `stop` cancels `events` and puts "Stopped." in each of `statuses` (components that
    show a run's state); answered at once, outside the queue."""
    statuses = list(statuses or [])
    if len(statuses) > 1:
        stopped = lambda: tuple(STOPPED for _ in statuses)  # noqa: E731
    else:
        stopped = (lambda: STOPPED) if statuses else None
    stop.click(
        stopped,
        None,
        statuses or None,
        cancels=events,
        queue=False,
        show_progress="hidden",
        api_visibility="private",
    )
