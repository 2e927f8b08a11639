"""Stop, then Generate: a page event that stops at once and leaves a calm "Stopped." behind.

Why not Gradio's `cancels=`: Gradio 6.17.3 cancels a running event by closing its generator, and a sync
generator cannot be closed while its thread is inside `next()`, that is while the engine renders a
chunk: `/cancel` answered only after the chunk (13 s measured on this shared machine), and meanwhile
the page counted the event as running and dropped a Generate click (a click's default
`trigger_mode="once"`): nothing started. And a cancelled event ends with an empty "completed" message
that races the page's own bookkeeping: on Compare it left red "Error" badges on all ten outputs.

Here the run stops itself, and ends as a finished event would: `stoppable(fn)` runs the handler's steps
in worker threads from an async wrapper that looks every `POLL_S` whether this page session pressed
Stop (`bind_stop`); then it abandons the step in progress, stops the run's `engines.runtime.stop` scope (which
cuts the model call short where the engine can: Kokoro on ONNX Runtime) and returns. The generator is
closed in the background once its step returns (which ends its turn in the engine's line; a new run
that comes first waits in that line and says so).

A page run refused or failed (a `gr.Error` from `ui.common.user_errors`) ends the same calm way: its
sentence in the run's status line and a warning toast, with no red "Error" badge over the outputs.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import threading
from collections.abc import Callable

import gradio as gr
from anyio import to_thread
from gradio.context import LocalContext

from engines.runtime import stop as stopping

STOPPED = "Stopped."
POLL_S = 0.1  # how often a running event looks whether its visitor pressed Stop
_END = object()
_keys = itertools.count()
_runs: dict[tuple[str, int], set[stopping.Scope]] = {}  # (page session, handler) -> its runs now
_runs_lock = threading.Lock()


def stopped() -> bool:
    """Whether the visitor stopped the run this code belongs to (for a long plain handler to check
    between its steps, e.g. between a batch's clips)."""
    return stopping.stopped()


def _session() -> str:
    request = LocalContext.request.get(None)
    return getattr(request, "session_hash", None) or ""


class _Run:
    """One running event of a stoppable handler, findable by its page session until it ends."""

    def __init__(self, key: int) -> None:
        self.scope = stopping.enter()  # worker threads get a copy of this context: the same scope
        self.slot = (_session(), key)
        with _runs_lock:
            _runs.setdefault(self.slot, set()).add(self.scope)

    async def step(self, call: Callable):
        """`call()` in a worker thread; `_END` when the visitor stops the run first (the thread is
        abandoned: it finishes its step on its own)."""
        task = asyncio.ensure_future(to_thread.run_sync(call, abandon_on_cancel=True))
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=POLL_S)
                if self.scope.stopped and not task.done():
                    return _END
            if self.scope.stopped:
                if not task.cancelled():
                    task.exception()  # whatever the stopped step raised is not news to anyone
                return _END
            return task.result()
        finally:
            if not task.done():
                task.cancel()

    def end(self) -> None:
        self.scope.stop()  # the model call in progress, if any, is cut short (`engines.runtime.stop`)
        with _runs_lock:
            runs = _runs.get(self.slot, set())
            runs.discard(self.scope)
            if not runs:
                _runs.pop(self.slot, None)


def stoppable(fn: Callable, outputs: int = 1) -> Callable:
    """`fn`, a generator function or a plain one, as an async function that this page session's Stop
    (`bind_stop`) ends at once; its signature and marks (e.g. `starts_work`) are kept for Gradio and
    `api.guard`. A plain function stopped early returns nothing new for its `outputs` outputs."""
    key = next(_keys)

    if not inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        async def call(*args, **kwargs):
            run = _Run(key)
            try:
                result = await run.step(functools.partial(fn, *args, **kwargs))
            except gr.Error as refusal:
                return _refused(call, refusal)
            finally:
                run.end()
            if result is _END:
                return _status_update(call, STOPPED) or (
                    gr.skip() if outputs == 1 else tuple(gr.skip() for _ in range(outputs))
                )
            return result

        call.stop_key, call.stopped_at = key, None
        return call

    @functools.wraps(fn)
    async def generate(*args, **kwargs):
        run = _Run(key)
        steps = fn(*args, **kwargs)
        busy = threading.Lock()  # held while the generator runs a step

        def step():
            with busy:
                return next(steps, _END)

        def close():
            with busy:  # after the step in progress, if any
                steps.close()

        try:
            while (item := await run.step(step)) is not _END:
                yield item
            if run.scope.stopped and (last := _status_update(generate, STOPPED)) is not None:
                yield last  # the run's own last word, after any update of its that crossed the Stop
        except gr.Error as refusal:
            yield _refused(generate, refusal)
        finally:
            run.end()
            # Not awaited: a stopped run must not wait for the engine's chunk in progress.
            threading.Thread(target=close, name="close-stopped-run", daemon=True).start()

    generate.stop_key, generate.stopped_at = key, None
    return generate


def _status_update(handler: Callable, line: str):
    """`line` in `handler`'s status outputs, nothing new in the others: what a stopped or refused run
    yields last (None until `bind_stop` named the statuses, or when it named none of the outputs)."""
    where = handler.stopped_at
    if where is None or not where[1]:
        return None
    count, statuses = where
    values = tuple(line if i in statuses else gr.skip() for i in range(count))
    return values[0] if count == 1 else values


def _refused(handler: Callable, refusal: gr.Error):
    """A page run that ends with a refusal or a failure (a `gr.Error`'s one sentence): the sentence in
    the run's status line and a warning toast, and the event ends as a finished one would, so Gradio
    paints no red "Error" badge over the outputs. Raised again where no status line is known (an API
    event: its callers get the error)."""
    update = _status_update(handler, refusal.message)
    if update is None:
        raise refusal
    gr.Warning(refusal.message)
    return update


def stop_runs(keys: list[int], session: str) -> int:
    """Stop the runs of the handlers `keys` that page session `session` has going; how many."""
    with _runs_lock:
        scopes = [scope for key in keys for scope in _runs.get((session, key), ())]
    for scope in scopes:
        scope.stop()
    return len(scopes)


def bind_stop(stop: gr.Button, events: list, statuses: list | None = None) -> None:
    """A click on `stop` ends this page session's runs of `events` (their handlers made `stoppable`)
    and puts "Stopped." in each of `statuses`; answered at once, outside the queue. Events of other
    handlers are cancelled the Gradio way."""
    keys = [e.fn.stop_key for e in events if hasattr(getattr(e, "fn", None), "stop_key")]
    others = [e for e in events if not hasattr(getattr(e, "fn", None), "stop_key")]
    statuses = list(statuses or [])
    status_ids = {component._id for component in statuses}
    for event in events:
        if hasattr(getattr(event, "fn", None), "stop_key"):
            outputs = list(event.get("outputs") or [])
            event.fn.stopped_at = (len(outputs), {i for i, out in enumerate(outputs) if out in status_ids})

    def stopped_now(request: gr.Request):
        stop_runs(keys, getattr(request, "session_hash", None) or "")
        if len(statuses) > 1:
            return tuple(STOPPED for _ in statuses)
        return STOPPED if statuses else None

    stop.click(
        stopped_now,
        None,
        statuses or None,
        cancels=others or None,
        queue=False,
        show_progress="hidden",
        api_visibility="private",
    )
