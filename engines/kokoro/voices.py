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

from engines.base import InputError, shown
from engines.language import has_kana_or_han, is_auto

CATALOGUE_PATH = Path(__file__).resolve().parents[2] / "voices" / "kokoro.json"
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


def parse_voice_spec(spec: str, examples: tuple[str, str] = ("af_heart", "af_bella")) -> list[tuple[str, float]]:
    """`name` | `a,b` | `a:0.7,b:0.3` -> [(voice id, weight)] with weights summing to one. `examples`: two
    voices the refusals name as examples (the engine passes two that speak where it runs)."""
    known = catalogue()
    weights: dict[str, float] = {}
    for name, weight_text in spec_entries(spec):
        if not name and not weight_text:
            raise InputError(
                f"The voice blend {shown(spec)} has an empty entry; write it like {examples[0]}:0.7,{examples[1]}:0.3."
            )
        if name not in known:
            raise InputError(f"Unknown Kokoro voice {shown(name)}; pick one from the voice list (e.g. {examples[0]}).")
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


# ----- voices found for a clip (`evaluation.voice_search`), kept in the owner's library ---------------------
FOUND_FOLDER = "kokoro"  # beside the owner's saved clone prompts (`engines.voice_library`), which never list it
PACK_SHAPE = (510, 1, 256)  # the official voices' layout (`voices/*.pt`)


def _found_folder(owner: str | None):
    from engines.voice_library import OPERATOR, library_dir, owner_folder, shared

    if shared():
        return library_dir() / FOUND_FOLDER
    if not owner or owner == OPERATOR:
        return library_dir() / FOUND_FOLDER if owner == OPERATOR else None
    return library_dir() / "owners" / owner_folder(owner) / FOUND_FOLDER


def list_found_voices(owner: str | None) -> list[str]:
    """Names of the Kokoro voices `owner` found and saved (the CLI's operator: the shared folder's)."""
    folder = _found_folder(owner)
    return sorted(p.stem for p in folder.glob("*.safetensors")) if folder is not None and folder.is_dir() else []


def save_found_voice(name: str, pack: np.ndarray, owner: str | None, overwrite: bool = False, meta=None) -> str:
    """Save a style table as `owner`'s Kokoro voice `name` (safetensors, tensor "voice" in the official
    (510, 1, 256) layout, `meta` as its string metadata); returns its slug."""
    from safetensors.numpy import save

    from engines.voice_library import _atomic_write, safe_name

    slug = safe_name(name)
    if slug in catalogue():
        raise InputError(f"{slug!r} is the name of a stock Kokoro voice; choose another name.")
    folder = _found_folder(owner)
    if folder is None:
        raise InputError("Saving a voice needs an owner (a page visitor, a signed-in user or an API key).")
    path = folder / f"{slug}.safetensors"
    if path.exists() and not overwrite:
        raise InputError(f"You already have a Kokoro voice called {slug!r}; choose another name, or overwrite it.")
    table = np.ascontiguousarray(np.asarray(pack, dtype=np.float32).reshape(PACK_SHAPE))
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, save({"voice": table}, metadata={k: str(v) for k, v in (meta or {}).items()}))
    return slug


def found_voice_path(name: str, owner: str | None) -> Path | None:
    """The file of `owner`'s found voice `name`, or None when they have none by that name (a stock
    voice's name is never a found voice: `save_found_voice` refuses it). Nothing is read."""
    from engines.voice_library import safe_name

    if name in catalogue():
        return None
    folder = _found_folder(owner)
    try:
        path = folder / f"{safe_name(name)}.safetensors" if folder is not None else None
    except InputError:
        return None
    return path if path is not None and path.is_file() else None


def load_found_voice(name: str, owner: str | None) -> np.ndarray | None:
    """`owner`'s found voice `name` as rows x 256, or None when they have none by that name."""
    from safetensors.numpy import load

    path = found_voice_path(name, owner)
    if path is None:
        return None
    try:
        table = load(path.read_bytes())["voice"]
        if table.shape != PACK_SHAPE or not np.isfinite(table).all():
            raise ValueError(f"shape {table.shape}")
    except Exception as exc:  # a damaged file: one sentence
        raise InputError(f"The Kokoro voice {name!r} is damaged; find it again.") from exc
    return table.reshape(-1, 256).astype(np.float32)
