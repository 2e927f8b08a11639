"""Model and voice names as API callers write them, resolved to engine ids and engine voices.

Models are the registry's engine ids, plus the OpenAI model names an engine claims in its
capabilities (`tts-1` / `tts-1-hd` -> Kokoro, so that the OpenAI SDK's defaults work). Voices are an
engine's own voice ids (its catalogue, weighted blends such as `af_heart:0.7,af_bella:0.3` where the
engine blends, voices saved in the clone library where it keeps them), or OpenAI's voice names, each
mapped to a similar voice by the engine's capabilities, falling back to the engine's default voices
when that voice cannot be used here (offline, Kokoro has five packaged voices).
Saved voices are the caller's own (`owner`, from its API key): a caller without one has none.
"""

from __future__ import annotations

from dataclasses import asdict

from engines.base import EngineError, EngineInfo, InputError
from engines.kokoro.voices import is_blend, list_found_voices, spec_entries
from engines.runtime import registry
from engines.voice_library import list_voices, safe_name


def model_aliases() -> dict[str, str]:
    """OpenAI model name -> engine id, from the engines' capabilities (the first engine to claim a name)."""
    aliases: dict[str, str] = {}
    for engine_id in registry.ENGINES:
        for name in registry.capabilities(engine_id).openai_models:
            aliases.setdefault(name.lower(), engine_id)
    return aliases


def openai_voice_names() -> frozenset[str]:
    """Every OpenAI voice name some engine maps."""
    return frozenset(name for e in registry.ENGINES for name in registry.capabilities(e).openai_voices)


class UnknownName(LookupError):
    """A model or voice that does not exist; the message is one sentence for the caller."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message, self.param = message, param


def resolve_model(name: str) -> str:
    """The engine id for a model name (engine id or alias)."""
    wanted = str(name).strip().lower()
    aliases = model_aliases()
    engine_id = aliases.get(wanted, wanted)
    if engine_id not in registry.ENGINES:
        known = ", ".join([*registry.ENGINES, *aliases])
        raise UnknownName(f"There is no model called {name!r}; choose one of: {known}.", "model")
    return engine_id


def voices(engine_id: str, info: EngineInfo | None = None, owner: str | None = None) -> list[dict]:
    """The engine's voices as the voice list shows them: its own voices, then `owner`'s saved ones."""
    info = info or registry.info(engine_id)
    listed = [{**asdict(v), "model": engine_id, "saved": False} for v in info.voices]
    if registry.capabilities(engine_id).found_voices:  # style tables found for the owner's clips
        listed += [
            {"id": name, "name": name, "language": "", "gender": "", "grade": None, "available": info.available}
            | {"model": engine_id, "saved": True}
            for name in list_found_voices(owner)
        ]
    if registry.capabilities(engine_id).saved_voices:
        listed += [
            {"id": name, "name": name, "language": "", "gender": "", "grade": None, "available": info.available}
            | {"model": engine_id, "saved": True}
            for name in list_voices(owner)
        ]
    return listed


def openai_voices(engine_id: str, info: EngineInfo | None = None) -> dict[str, str]:
    """OpenAI voice name -> the voice it speaks with on this engine here (empty if it has none)."""
    listed = voices(engine_id, info)
    out = {}
    for name in sorted(openai_voice_names()):
        try:
            out[name] = _alias(engine_id, name, listed)
        except UnknownName:
            continue
    return out


def resolve_voice(engine_id: str, voice: str, info: EngineInfo | None = None, owner: str | None = None) -> str:
    """The engine voice for a requested voice (saved voices: `owner`'s), or `UnknownName` when the
    engine has no such voice."""
    spec = str(voice).strip()
    if not spec:
        raise InputError("Please choose a voice.")
    listed = voices(engine_id, info, owner)
    ids = {v["id"].lower(): v["id"] for v in listed}
    if spec.lower() in ids:
        return ids[spec.lower()]  # the engine's own spelling
    capabilities = registry.capabilities(engine_id)
    if spec.lower() in openai_voice_names():
        return _alias(engine_id, spec.lower(), listed)
    if capabilities.blends and is_blend(spec):
        parts = spec_entries(spec)
        unknown = [name for name, _ in parts if name and name.lower() not in ids]
        if not unknown:  # the engine checks the weights and says what is wrong with them
            return ",".join(ids.get(name.lower(), name) + (f":{weight}" if weight else "") for name, weight in parts)
        spec = unknown[0]
    elif capabilities.saved_voices:
        try:
            if safe_name(spec) in ids:
                return safe_name(spec)
        except EngineError:
            pass
    usable = sorted(listed, key=lambda v: not v["available"])
    examples = ", ".join(v["id"] for v in usable[:6])
    hint = f"; for example: {examples}" if examples else "; it has none yet (save a cloned voice on the page first)"
    raise UnknownName(f"The model {engine_id!r} has no voice called {spec!r}{hint}.", "voice")


def _alias(engine_id: str, name: str, listed: list[dict]) -> str:
    """The voice an OpenAI voice name speaks with on this engine: its own match, else the engine's
    first usable default voice."""
    available = {v["id"] for v in listed if v["available"]}
    capabilities = registry.capabilities(engine_id)
    for candidate in (capabilities.openai_voices.get(name), *capabilities.default_voices):
        if candidate in available:
            return candidate
    raise UnknownName(
        f"The model {engine_id!r} has no voice for the OpenAI name {name!r}; pick one of its own voices.", "voice"
    )
