"""Which board and which systems: system ids (`engine:voice`), the arena's pool (`ARENA_SYSTEMS`), vote
choices and reason tags, and a board's name and subset of the votes.

A board is over all votes or over the subset of one prompt category and/or one language (fitted on that
subset alone), of the built-in prompts (the main board) or of typed texts (their own board), and counts
each system's reason tags (on votes it won, lost, or all).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from engines.base import InputError
from engines.settings import settings

from ..prompts import ANY, category_key, language_key

CHOICES = ("a", "b", "tie", "both_bad")
REASONS: dict[str, str] = {
    "naturalness": "naturalness",
    "pronunciation": "pronunciation",
    "pacing": "pacing",
    "voice_quality": "voice quality",
    "artefacts": "artefacts",
}  # key -> label: why the voter chose as they did (optional, any number of them)
BUILTIN, TYPED = "built-in", "typed"  # the two boards: votes on built-in prompts, votes on typed texts


def system_id(engine: str, voice: str) -> str:
    """The display id of a system: `engine:voice` (voices may contain colons; engine ids do not)."""
    return f"{engine}:{voice}"


def split_system(system: str) -> tuple[str, str]:
    """`(engine, voice)` of a system id or a slot spec `engine:voice`; the voice keeps its own colons
    (a Kokoro blend `kokoro:af_heart:0.7,af_bella:0.3`). The one reading of that syntax."""
    engine, _, voice = str(system or "").strip().partition(":")
    return engine, voice.strip()


def configured_systems() -> list[str]:
    """`ARENA_SYSTEMS`: the arena's pool as `engine:voice` specs (space-separated); [] when it is not set
    (then the pool is every voice the engines can speak here)."""
    return settings().arena_systems.split()


def reason_keys(reasons: Iterable[str] | str | None) -> list[str]:
    """Reason tags as their keys, in `REASONS` order, each once; labels and any case accepted; one
    sentence for anything else."""
    if reasons is None:
        return []
    if isinstance(reasons, str):
        reasons = [reasons]
    if not isinstance(reasons, list | tuple | set | frozenset):
        raise InputError(f"Reasons are a list of tags, such as {', '.join(REASONS.values())}.")
    by_name = {k: k for k in REASONS} | {label: k for k, label in REASONS.items()}
    chosen = set()
    for reason in reasons:
        key = by_name.get(str(reason).strip().lower().replace("-", " "), by_name.get(str(reason).strip().lower()))
        if key is None:
            allowed = ", ".join(REASONS.values())
            raise InputError(f"A reason is one or more of {allowed}; got {str(reason)[:40]!r}.")
        chosen.add(key)
    return [k for k in REASONS if k in chosen]


def board_name(category: str | None = None, language: str | None = None, board: str = BUILTIN) -> str:
    """Which board: "all votes", "category names", "language es", or both ("category names, language es");
    the typed texts' board says so first ("typed texts", "typed texts, language es")."""
    parts = ([f"category {category}"] if category else []) + ([f"language {language}"] if language else [])
    if _board_kind(board) == TYPED:
        return ", ".join(["typed texts", *parts])
    return ", ".join(parts) or "all votes"


def from_screen(screen_choice: str, left: str) -> str:
    """Turn a vote on screen sides (a = the left clip, b = the right one) into a vote on systems."""
    choice = _valid_choice(screen_choice)
    if left == "b" and choice in ("a", "b"):
        return "b" if choice == "a" else "a"
    return choice


def board_keys(category: object, language: object) -> tuple[str | None, str | None]:
    """A board's category and language keys (None: any, also for "all" and "any"), checked: one sentence
    (`InputError`) for a bad one."""
    category = category_key(category, allow_any=True) if category not in (None, "") else ANY
    return (None if category == ANY else category), language_key(language)


def _board_kind(board: object) -> str:
    value = str(board or BUILTIN).strip().lower().replace("_", "-")
    if value in ("built-in", "builtin", "main"):
        return BUILTIN
    if value == TYPED:
        return TYPED
    raise InputError(f"A board is {BUILTIN!r} (the built-in prompts) or {TYPED!r} (typed texts); got {value[:40]!r}.")


def _subset(category: str | None, language: str | None, kind: str | None = None) -> tuple[str, tuple]:
    """The WHERE clause and arguments of a board's votes (`kind`: built-in prompts, typed texts, or both)."""
    builtin = {BUILTIN: 1, TYPED: 0}.get(kind)
    pairs = (("category", category), ("language", language), ("coalesce(builtin, 0)", builtin))
    clauses = [(f"{column} = ?", value) for column, value in pairs if value is not None and value != ""]
    if not clauses:
        return "", ()
    return " WHERE " + " AND ".join(c for c, _ in clauses), tuple(v for _, v in clauses)


def _reason_tally(votes: Iterable[tuple[str, str, str, str | None]]) -> dict[str, dict[str, dict[str, int]]]:
    """Per system: each reason tag's count over its votes (`reasons`), those it won and those it lost."""
    empty = dict.fromkeys(REASONS, 0)
    tally: dict[str, dict[str, dict[str, int]]] = {}
    for a, b, choice, reasons in votes:
        for system in (a, b):
            tally.setdefault(system, {k: dict(empty) for k in ("reasons", "reasons_won", "reasons_lost")})
        for tag in json.loads(reasons or "[]"):
            if tag not in empty:
                continue
            for system in (a, b):
                tally[system]["reasons"][tag] += 1
            if choice in ("a", "b"):
                winner, loser = (a, b) if choice == "a" else (b, a)
                tally[winner]["reasons_won"][tag] += 1
                tally[loser]["reasons_lost"][tag] += 1
    return tally


def _valid_choice(choice: str) -> str:
    value = str(choice).strip().lower().replace(" ", "_") if choice is not None else ""
    if value not in CHOICES:
        raise InputError(f"A vote is 'a', 'b', 'tie' or 'both_bad'; got {choice!r}.")
    return value
