"""Kokoro's voice catalogue (voices/kokoro.json), voice specs with weighted blends, and languages.

A voice spec is one voice id (`af_heart`), an equal blend (`af_heart,af_bella`) or a weighted
blend (`af_heart:0.7,af_bella:0.3`); weights are normalised to sum to one and the blended pack is
the weighted sum of the packs, row by row.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np

from .base import InputError, shown
from .language import has_kana_or_han, is_auto

CATALOGUE_PATH = Path(__file__).resolve().parent.parent / "voices" / "kokoro.json"
LANGUAGES: dict[str, str] = {
    "a": "American English",
    "b": "British English",
    "e": "Spanish",
    "f": "French",
    "h": "Hindi",
    "i": "Italian",
    "p": "Brazilian Portuguese",
    "j": "Japanese",
    "z": "Mandarin Chinese",
}
ALIASES: dict[str, str] = {
    "en": "a", "en-us": "a", "english": "a", "en-gb": "b", "es": "e", "fr": "f", "fr-fr": "f",
    "hi": "h", "it": "i", "pt": "p", "pt-br": "p", "ja": "j", "zh": "z", "cmn": "z",
}  # fmt: skip


@functools.lru_cache(maxsize=1)
def catalogue() -> dict[str, dict]:
    """The 54 official voices by id, in catalogue order."""
    with open(CATALOGUE_PATH, encoding="utf-8") as f:
        return {v["id"]: v for v in json.load(f)["voices"]}


def spec_entries(spec: str) -> list[tuple[str, str]]:
    """A voice spec's entries as written, without outer blanks: `(name, weight text)`, the weight text
    empty where none is given ("af_heart:0.7, af_bella" -> [("af_heart", "0.7"), ("af_bella", "")]).
    The one reading of the spec's syntax: `parse_voice_spec` checks the names and weights."""
    return [(name.strip(), weight.strip()) for name, _, weight in (p.partition(":") for p in str(spec).split(","))]


def is_blend(spec: str) -> bool:
    """Whether a voice spec names weights or more than one voice."""
    return "," in str(spec) or ":" in str(spec)


def parse_voice_spec(spec: str) -> list[tuple[str, float]]:
    """`name` | `a,b` | `a:0.7,b:0.3` -> [(voice id, weight)] with weights summing to one."""
    known = catalogue()
    weights: dict[str, float] = {}
    for name, weight_text in spec_entries(spec):
        if not name and not weight_text:
            raise InputError(
                f"The voice blend {shown(spec)} has an empty entry; write it like af_heart:0.7,af_bella:0.3."
            )
        if name not in known:
            raise InputError(f"Unknown Kokoro voice {shown(name)}; pick one from the voice list (e.g. af_heart).")
        try:
            weight = float(weight_text) if weight_text else 1.0
        except ValueError:
            raise InputError(f"The weight {shown(weight_text)} of {name} is not a number.") from None
        if not math.isfinite(weight) or weight < 0:
            raise InputError(f"The weight of {name} must be a number of zero or more.")
        weights[name] = weights.get(name, 0.0) + weight
    total = sum(weights.values())
    if total <= 0:
        raise InputError("The blend weights add up to zero; give at least one voice a positive weight.")
    return [(name, w / total) for name, w in weights.items() if w > 0]


def blend(packs: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """The weighted sum of voice packs (each rows x 256)."""
    out = np.zeros_like(packs[0], dtype=np.float32)
    for pack, weight in zip(packs, weights, strict=True):
        out += np.float32(weight) * pack.astype(np.float32)
    return out


def language_code(language: str | None) -> str | None:
    """A Kokoro language code from a code, an alias or a name; None stays None (automatic)."""
    if is_auto(language):
        return None
    key = str(language).strip().lower()
    if key in LANGUAGES:
        return key
    if key in ALIASES:
        return ALIASES[key]
    by_name = {name.lower(): code for code, name in LANGUAGES.items()}
    if key in by_name:
        return by_name[key]
    raise InputError(f"Unknown language {shown(language)}; choose one of: {', '.join(LANGUAGES.values())}.")


def auto_language(voices: list[tuple[str, float]], text: str) -> str:
    """The language of the heaviest voice, except that CJK voices reading non-CJK text read English."""
    code = max(voices, key=lambda v: v[1])[0][0]
    if code in "jz" and not has_kana_or_han(text):
        return "a"
    return code
