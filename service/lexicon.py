"""Lexicon: read and write a caller's pronunciation lexicon (`engines.lexicon`); a write counts as a request."""

from __future__ import annotations

from engines import lexicon

from . import admission
from .caller import Caller


def read(caller: Caller) -> list:
    """The caller's entries."""
    return lexicon.load(caller.owner)


def replace(caller: Caller, entries: list) -> list:
    """Replace the caller's whole lexicon with `entries` (each already checked)."""
    admission.admit(caller)
    return lexicon.save(caller.owner, entries)


def put(caller: Caller, entry) -> list:
    """Add or replace one entry of the caller's lexicon."""
    admission.admit(caller)
    return lexicon.put(caller.owner, entry)


def remove(caller: Caller, word: str) -> list:
    """Delete one word of the caller's lexicon."""
    admission.admit(caller)
    return lexicon.remove(caller.owner, word)
