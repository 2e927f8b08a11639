"""A visitor's Stop, carried down to the model call: a face that can be stopped runs its work inside a
`Scope` (`enter`, in the context its worker threads copy), stops it with `Scope.stop()`, and a model
call that can be cut short mid-way registers how (`abortable`), e.g. ONNX Runtime's
`RunOptions.terminate`. Without a scope (the CLI, `/v1`, tests) nothing changes.

Why: the engine's turn is held until its chunk in progress returns; Kokoro's longest chunks take
seconds (13 s was seen on this shared 2-core machine under load), and a visitor who pressed Stop and
then Generate waited that long in line for audio nobody will hear.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class Scope:
    """One stoppable run: whether it was stopped, and the aborts of its model calls in progress."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stopped = False
        self._aborts: list[Callable[[], None]] = []

    @property
    def stopped(self) -> bool:
        return self._stopped

    def stop(self) -> None:
        """Stopped: every model call in progress is cut short, and any later one at once."""
        with self._lock:
            self._stopped = True
            aborts = list(self._aborts)
        for abort in aborts:
            abort()

    @contextmanager
    def running(self, abort: Callable[[], None]) -> Iterator[None]:
        with self._lock:
            self._aborts.append(abort)
            stopped = self._stopped
        if stopped:
            abort()
        try:
            yield
        finally:
            with self._lock:
                self._aborts.remove(abort)


_scope: ContextVar[Scope | None] = ContextVar("stop_scope", default=None)


def enter() -> Scope:
    """A new scope for the work that runs in this context from now on (and in threads given a copy)."""
    scope = Scope()
    _scope.set(scope)
    return scope


def current() -> Scope | None:
    return _scope.get()


def stopped() -> bool:
    """Whether the run this code belongs to was stopped."""
    scope = _scope.get()
    return scope is not None and scope.stopped


@contextmanager
def abortable(abort: Callable[[], None]) -> Iterator[None]:
    """Around a model call that `abort()` (called from another thread) cuts short."""
    scope = _scope.get()
    if scope is None:
        yield
        return
    with scope.running(abort):
        yield
