"""`POST /v1/audio/speech` with a script: `input` with speakers (`Name: line`) or SSML, and an extension
field `voices` (a cast), answered as one take (`service.script`): the audio in `response_format`, or with
`"timestamps": true` JSON `{"audio": <base64>, "format", "lines": [{speaker, engine, voice, text, start,
end, ...}]}`. Plain requests (no `voices`, no `<speak>` document) never come here."""

from __future__ import annotations

import tempfile
from pathlib import Path

import soundfile as sf

from engines.audio import FORMATS, OutputSettings, encode, process
from engines.base import MAX_TEXT_CHARS, SAMPLE_RATE, InputError
from engines.runtime import registry
from engines.script import MAX_SCRIPT_CHARS, NARRATOR, Role, default_voice, parse, parse_cast, roles
from service.caller import Caller
from service.script import render_take

from .errors import ApiError
from .speech_request import WHOLE_FILE_OPTIONS, SpeechBody
from .voices import resolve_model

MAX_CAST = 50


def is_script(body: SpeechBody) -> bool:
    """Whether the request is a script: a cast in `voices`, or an `input` that is one `<speak>` document."""
    return body.voices is not None or body.input.lstrip().startswith("<speak")


def _cast(body: SpeechBody, narrator_engine: str) -> dict[str, Role]:
    """The cast from `voices`: `{"engine" | "model", "voice"}` per speaker, or a voice of the request's model."""
    if len(body.voices or {}) > MAX_CAST:
        raise ApiError(400, f"The cast in 'voices' has over {MAX_CAST} speakers.", "invalid_value", "voices")
    cast = {}
    for speaker, role in (body.voices or {}).items():
        if isinstance(role, str):
            role = {"engine": narrator_engine, "voice": role}
        elif "model" in role and "engine" not in role:
            role = {"engine": resolve_model(role["model"]), "voice": role.get("voice", "")}
        cast[speaker] = role
    return parse_cast(cast)


def speak_script(body: SpeechBody, who: Caller) -> tuple[bytes, str, dict]:
    """Blocking: the take as `response_format` bytes, its format, and the manifest."""
    if body.stream_format is not None:
        raise ApiError(400, "A script is answered as a whole file; leave out stream_format.", "unsupported_with_stream",
                       "stream_format")  # fmt: skip
    fmt = body.response_format.strip().lower()
    if fmt not in FORMATS:
        raise ApiError(400, f"Unknown response_format {body.response_format!r}; choose one of: {', '.join(FORMATS)}.",
                       "invalid_response_format", "response_format")  # fmt: skip
    # a long text (a chapter, a book) is for a keyed caller; anyone else gets one request's allowance
    limit = MAX_SCRIPT_CHARS if who.key else MAX_TEXT_CHARS
    if len(body.input) > limit:
        raise ApiError(413, f"The input is {len(body.input):,} characters long; the limit is {limit:,}.",
                       "input_too_long", "input")  # fmt: skip
    engine_id = resolve_model(body.model)
    lines = parse(body.input, limit)
    cast = _cast(body, engine_id)
    if NARRATOR not in cast:
        cast[NARRATOR] = Role(engine_id, body.voice or default_voice(engine_id))
    cast = roles(lines, cast)
    for role in cast.values():
        if not registry.info(role.engine).available:
            raise InputError(registry.info(role.engine).reason)
    settings = OutputSettings(lufs=body.lufs, **{name: getattr(body, name) for name in WHOLE_FILE_OPTIONS})
    with tempfile.TemporaryDirectory(prefix="v1-script-") as folder:
        manifest = render_take(lines, cast, Path(folder), "wav", caller=who, cancelled=None)
        if not manifest["take"]:
            raise InputError(next((e["error"] for e in manifest["lines"] if e["error"]), "No line could be rendered."))
        audio, _ = sf.read(Path(folder) / manifest["take"], dtype="float32")
    audio, _ = process(audio, SAMPLE_RATE, settings)
    keep = ("index", "speaker", "engine", "voice", "text", "chapter", "start", "end", "error", "notes")
    manifest["lines"] = [{k: line.get(k) for k in keep} for line in manifest["lines"]]
    return encode(audio, fmt, SAMPLE_RATE), fmt, manifest
