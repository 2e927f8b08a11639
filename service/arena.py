"""Arena: classify a typed text (admitted by its characters), cast a vote and export the votes (each a
request of the caller's).

Vote counting is `evaluation.arena`'s and `evaluation.ballot`'s; this is a thin pass-through that meters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from evaluation import prompts

from . import admission
from .caller import Caller

T = TypeVar("T")


def classify(caller: Caller, text: str) -> prompts.Kind:
    """The text's category and language (`evaluation.prompts.classify`), once its characters are admitted."""
    admission.admit(caller, chars=len(text or ""))
    return prompts.classify(text)


def export(caller: Caller, write: Callable[..., T], *args, **kwargs) -> T:
    """Export the votes and runs with `write(*args, **kwargs)` (the store's own export), counted as a
    request; its size is bounded by the vote store."""
    admission.admit(caller)
    return write(*args, **kwargs)


def vote(caller: Caller, cast: Callable[..., T], *args, **kwargs) -> T:
    """Cast a vote with `cast(*args, **kwargs)` (the Arena's own vote function), counted as a request."""
    admission.admit(caller)
    return cast(*args, **kwargs)
