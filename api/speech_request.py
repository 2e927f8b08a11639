"""The request of `POST /v1/audio/speech`: the JSON body read strictly, validated into `SpeechBody`, then
checked into a `Plan` (engine, `SynthesisRequest`, format, output settings, stream mode) before anything
is synthesized. Client errors come before engine state: 415 a body that is not `application/json`,
413 a body or input over its limit, 400 bad JSON (`api.strict_json`), a missing or wrong field, an
unknown format or stream format, whole-file options on a stream, `timestamps` on a raw audio stream;
then the voice (`api.voices`) and the engine's availability (503)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictStr, ValidationError

from engines.audio import FORMATS, STREAMED_FORMATS, OutputSettings, StreamEncoder
from engines.base import MAX_TEXT_CHARS, SynthesisRequest, UnavailableError
from engines.lexicon import owner_mapping
from engines.runtime import registry

from .errors import ApiError
from .strict_json import BadJson
from .strict_json import parse as parse_json
from .voices import resolve_model, resolve_voice

MAX_BODY_BYTES = 256 * 1024  # 5,000 characters, even \u-escaped, fit with room to spare
STREAM_FORMATS = ("audio", "sse")
WHOLE_FILE_OPTIONS = ("peak_normalize", "trim", "denoise", "fade")  # `OutputSettings` fields a stream can't do


class SpeechBody(BaseModel):
    """The JSON body of `POST /v1/audio/speech`; unknown fields are ignored, as OpenAI clients expect."""

    model_config = ConfigDict(extra="ignore")

    model: StrictStr
    input: StrictStr
    voice: StrictStr | None = None  # required, except by a model that designs voices (it has a default)
    response_format: StrictStr = "mp3"
    speed: StrictFloat = 1.0  # a JSON number (an integer too); "1.0" as a string is a 400
    stream_format: StrictStr | None = None  # "audio" or "sse": stream; left out: the whole file
    instructions: StrictStr | None = None  # a style instruction, for a model that follows them
    language: StrictStr | None = None  # extension: the text's language (engine's names; default Auto)
    lufs: StrictFloat | None = None  # extension: loudness target of the clip, peak-guarded
    timestamps: StrictBool = False  # extension: answer JSON with the words aligned (`evaluation.alignment`)
    # extension: a cast (speaker -> {"engine" or "model", "voice"}, or just a voice of `model`): `input` is a
    # script ("Name: line", SSML inline) rendered as one take (`service.script`); also when `input` is one
    # `<speak>` document. Whole files only.
    voices: dict[StrictStr, dict[StrictStr, StrictStr] | StrictStr] | None = None
    # extensions, whole files only: what the page's Output section does
    peak_normalize: StrictBool = False
    trim: StrictBool = False
    denoise: StrictBool = False
    fade: StrictBool = False


@dataclass(frozen=True)
class Plan:
    """A checked request: which engine, what to synthesize, and how to send it."""

    engine_id: str
    request: SynthesisRequest
    fmt: str
    settings: OutputSettings
    stream: str | None  # None (the whole file), "audio" or "sse"
    notes: tuple[str, ...] = ()  # what the answer should say about the request (an ignored field)
    timestamps: bool = False  # align the clip's words to the text and answer them (JSON or the done event)


async def read_body(request: Request) -> SpeechBody:
    """The request's body, read (`read_json`) and validated."""
    return parse_body(await read_json(request))


async def read_json(request: Request) -> object:
    """The request's JSON body: only `application/json` (UTF-8), at most `MAX_BODY_BYTES`, read strictly."""
    media_type, _, params = request.headers.get("content-type", "").partition(";")
    charset = params.strip().lower().removeprefix("charset=").strip('"') if "charset=" in params.lower() else "utf-8"
    if media_type.strip().lower() != "application/json" or charset not in ("utf-8", "utf8"):
        raise ApiError(
            415, "The request body must be JSON sent with Content-Type: application/json.", "unsupported_media_type"
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, f"The request body is over {MAX_BODY_BYTES // 1024} KiB.", "body_too_large")
    raw = bytearray()
    async for part in request.stream():
        raw += part
        if len(raw) > MAX_BODY_BYTES:
            raise ApiError(413, f"The request body is over {MAX_BODY_BYTES // 1024} KiB.", "body_too_large")
    try:
        return parse_json(bytes(raw))
    except BadJson as exc:
        raise ApiError(400, str(exc), "invalid_json") from None


def parse_body(body: object) -> SpeechBody:
    """`SpeechBody` from parsed JSON; the first problem as a 400 naming its field."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", "invalid_json")
    try:
        return SpeechBody.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        if first["type"] == "missing":
            raise ApiError(400, f"The field {field!r} is required.", "missing_field", field) from None
        message = first["msg"].rstrip(".")
        raise ApiError(400, f"The field {field!r} is invalid: {message}.", "invalid_value", field) from None


def prepare(body: SpeechBody, owner: str | None = None) -> Plan:
    """Blocking: check the request, client errors before engine state (nothing is synthesized);
    `owner`: whose saved voices the request may name."""
    engine_id = resolve_model(body.model)
    if len(body.input) > MAX_TEXT_CHARS:
        raise ApiError(
            413, f"The input is {len(body.input):,} characters long; the limit is {MAX_TEXT_CHARS:,}.",
            "input_too_long", "input",
        )  # fmt: skip
    fmt = body.response_format.strip().lower()
    if fmt not in FORMATS:
        raise ApiError(
            400, f"Unknown response_format {body.response_format!r}; choose one of: {', '.join(FORMATS)}.",
            "invalid_response_format", "response_format",
        )  # fmt: skip
    stream = _stream_format(body, fmt)
    if stream == "sse" and "response_format" not in body.model_fields_set:
        fmt = "pcm"  # OpenAI's SSE deltas are PCM unless a format is asked for
    whole_file_only = [name for name in WHOLE_FILE_OPTIONS if getattr(body, name)]
    if stream and whole_file_only:
        raise ApiError(
            400, f"{', '.join(whole_file_only)} need the whole clip; leave out stream_format, or those options.",
            "unsupported_with_stream", whole_file_only[0],
        )  # fmt: skip
    if stream == "audio" and body.timestamps:
        raise ApiError(
            400, "Timestamps need an answer that can carry them: leave out stream_format (JSON) or use 'sse'.",
            "unsupported_with_stream", "timestamps",
        )  # fmt: skip
    settings = OutputSettings(lufs=body.lufs, **{name: getattr(body, name) for name in WHOLE_FILE_OPTIONS})
    info = registry.info(engine_id)
    voice = resolve_voice(engine_id, _voice_asked(body, engine_id), info, owner)  # known without loading the model
    instruct, notes = (body.instructions or "").strip() or None, ()
    if instruct and not info.follows_instructions:
        instruct, notes = None, (f"instructions ignored: {info.name} does not follow style instructions.",)
    request = SynthesisRequest(
        text=body.input, voice=voice, speed=body.speed, language=body.language, instruct=instruct, owner=owner,
        lexicon=owner_mapping(owner, registry.capabilities(engine_id).lexicon),  # the key's (`/v1/audio/lexicon`)
    )  # fmt: skip
    if not info.available:
        raise UnavailableError(info.reason)
    if stream:
        StreamEncoder.check(fmt)  # mp3, opus and ogg stream through ffmpeg
    return Plan(engine_id, request, fmt, settings, stream, notes, body.timestamps)


def _voice_asked(body: SpeechBody, engine_id: str) -> str:
    """The requested voice; left out, the default of a model that designs voices (the description in
    `instructions` replaces it), else a 400 as for any missing field."""
    if body.voice is not None:
        return body.voice
    capabilities = registry.capabilities(engine_id)
    if capabilities.designs_voices and capabilities.default_voice:
        return capabilities.default_voice
    raise ApiError(400, "The field 'voice' is required.", "missing_field", "voice")


def _stream_format(body: SpeechBody, fmt: str) -> str | None:
    """The checked `stream_format` (None: the whole file), refusing formats that cannot stream."""
    if body.stream_format is None:
        return None
    stream = body.stream_format.strip().lower()
    if stream not in STREAM_FORMATS:
        raise ApiError(
            400, f"Unknown stream_format {body.stream_format!r}; choose 'audio' or 'sse', or leave it out "
            "for the whole file.", "invalid_stream_format", "stream_format",
        )  # fmt: skip
    if fmt not in STREAMED_FORMATS:
        raise ApiError(
            400, f"The response_format {fmt!r} cannot be streamed; the formats that stream are "
            f"{', '.join(STREAMED_FORMATS)} (leave out stream_format for the whole {fmt} file).",
            "unsupported_stream_format", "response_format",
        )  # fmt: skip
    return stream
