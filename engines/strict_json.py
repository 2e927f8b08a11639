"""The strict JSON parser of everything a caller sends as JSON (HTTP bodies and query values, the page's
player reports and browser clips, lexicon files): every way a document can be malformed is one sentence.
It lives at the bottom of the imports so that every layer reads callers' JSON with it; `api.strict_json`
is the HTTP API's name for it.

`parse(raw)` returns the decoded document or raises `BadJson(sentence)`. It refuses, before Python's
own parser can misbehave on them: bytes that are not UTF-8, nesting deeper than `MAX_DEPTH` (the
standard parser recurses and raises RecursionError near 1,000 levels), numbers with more than
`MAX_NUMBER_CHARS` characters (`int()` refuses over 4,300 digits with a ValueError), `NaN` and
`Infinity` (not JSON), and duplicate keys in an object (which one wins is undefined elsewhere).
"""

from __future__ import annotations

import json
import math

MAX_DEPTH = 32
MAX_NUMBER_CHARS = 40  # a double needs 17 significant digits; room for sign, point and exponent

_OPEN, _CLOSE = frozenset(b"[{"), frozenset(b"]}")
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


class BadJson(ValueError):
    """A body that is not the JSON this API reads; `str()` is the sentence for the client."""


def parse(raw: bytes) -> object:
    """The JSON document in `raw`, or `BadJson` with one sentence saying what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadJson("The request body is not UTF-8 text.") from None
    if _depth(raw) > MAX_DEPTH:
        raise BadJson(f"The request body is nested more than {MAX_DEPTH} levels deep.")
    try:
        return json.loads(text, object_pairs_hook=_object, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except BadJson:
        raise
    except (ValueError, RecursionError):
        raise BadJson("The request body is not valid JSON.") from None


def _depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects, brackets inside strings not counted."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPEN:
            depth += 1
            deepest = max(deepest, depth)
        elif byte in _CLOSE:
            depth -= 1
    return deepest


def _object(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise BadJson(f"The request body repeats the key {_quoted(key)}.")
        out[key] = value
    return out


def _number(text: str) -> None:
    if len(text) > MAX_NUMBER_CHARS:
        raise BadJson(f"The request body has a number over {MAX_NUMBER_CHARS} characters long.")


def _int(text: str) -> int:
    _number(text)
    return int(text)


def _float(text: str) -> float:
    _number(text)
    value = float(text)
    if not math.isfinite(value):
        raise BadJson("The request body has a number too large for a double.")
    return value


def _constant(text: str) -> float:
    raise BadJson(f"The request body holds {text}, which is not a JSON number.")


def _quoted(key: str) -> str:
    """A key as the sentence shows it: printable, at most 40 characters."""
    shown = "".join(ch if ch.isprintable() else "?" for ch in key)
    return repr(shown if len(shown) <= 40 else shown[:39] + "…")
