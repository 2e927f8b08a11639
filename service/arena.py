"""Arena: classify a typed text (admitted by its characters) and cast a vote (a request of the caller's).

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


def vote(caller: Caller, cast: Callable[..., T], *args, **kwargs) -> T:
    """Cast a vote with `cast(*args, **kwargs)` (the Arena's own vote function), counted as a request."""
    admission.admit(caller)
    return cast(*args, **kwargs)
