"""OpenAI-compatible speech API: `POST /v1/audio/speech`, `GET /v1/models`, `GET /v1/audio/voices`.

The speech endpoint takes OpenAI's JSON body (`model`, `input`, `voice`, `response_format`, `speed`)
plus two extensions (`language`, `lufs`), synthesizes through the engine registry
(`engines.timing.synthesize`, in a worker thread, one request at a time per engine), and answers
with the encoded clip (`engines.audio.encode`). Every error is OpenAI's JSON shape
`{"error": {"message", "type", "param", "code"}}` with one sentence: 400 bad input, 404 unknown
model or voice, 413 input over the limit, 503 engine unavailable, 500 anything unexpected (logged).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from engines import registry
from engines.audio import FORMATS, MEDIA_TYPES, OutputSettings, encode, process
from engines.base import MAX_TEXT_CHARS, SAMPLE_RATE, EngineError, InputError, SynthesisRequest, UnavailableError
from engines.timing import RunStats, synthesize

from .voices import UnknownName, openai_voices, resolve_model, resolve_voice, voices

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible speech"])

MAX_BODY_BYTES = 256 * 1024  # 5,000 characters, even \u-escaped, fit with room to spare
CREATED = int(time.time())  # OpenAI's `created` for the models: when this server started
_engine_locks: dict[str, threading.Lock] = {engine_id: threading.Lock() for engine_id in registry.ENGINES}


class SpeechBody(BaseModel):
    """The JSON body of `POST /v1/audio/speech`; unknown fields are ignored, as OpenAI clients expect."""

    model_config = ConfigDict(extra="ignore")

    model: StrictStr
    input: StrictStr
    voice: StrictStr
    response_format: StrictStr = "mp3"
    speed: float = 1.0
    language: StrictStr | None = None  # extension: the text's language (engine's names; default Auto)
    lufs: float | None = None  # extension: loudness target of the clip, peak-guarded


class ApiError(Exception):
    """An error answered as OpenAI's JSON error object."""

    TYPES = {400: "invalid_request_error", 404: "invalid_request_error", 413: "invalid_request_error"}

    def __init__(self, status: int, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param

    def response(self) -> JSONResponse:
        kind = self.TYPES.get(self.status, "server_error")
        error = {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        return JSONResponse({"error": error}, status_code=self.status)


@router.post("/audio/speech", response_class=Response)
async def speech(request: Request) -> Response:
    """Speak `input` with `model` and `voice`; the body of the answer is the clip in `response_format`."""
    try:
        body = _parse(await _read_json(request))
        clip = await run_in_threadpool(_speak, body)  # engine look-ups and synthesis block: off the event loop
    except Exception as exc:  # every failure becomes one JSON sentence; the server stays up
        return _error(exc).response()
    headers = {
        "X-Voice": _header(clip.voice),
        "X-Audio-Seconds": f"{clip.stats.audio_s:.3f}",
        "X-Time-To-First-Audio": f"{clip.stats.ttfa_s or 0.0:.3f}",
        "X-Real-Time-Factor": f"{clip.stats.rtf or 0.0:.3f}",
    }
    if clip.notes:
        headers["X-Output-Notes"] = _header(" ".join(clip.notes))
    return Response(content=clip.data, media_type=MEDIA_TYPES[clip.fmt], headers=headers)


@router.get("/models")
def list_models() -> JSONResponse:
    """The engines as OpenAI model objects (with whether each can be used here, and why not)."""
    return JSONResponse({"object": "list", "data": [_model(engine_id) for engine_id in registry.ENGINES]})


@router.get("/models/{model}")
def get_model(model: str) -> JSONResponse:
    """One engine as an OpenAI model object (aliases such as `tts-1` give their engine)."""
    try:
        return JSONResponse(_model(resolve_model(model)))
    except Exception as exc:
        return _error(exc).response()


@router.get("/audio/voices")
def list_voices(model: str | None = None) -> JSONResponse:
    """Every engine's voices (or one model's with `?model=`), and what OpenAI's voice names map to."""
    try:
        engine_ids = [resolve_model(model)] if model else list(registry.ENGINES)
        data, aliases = [], {}
        for engine_id in engine_ids:
            info = registry.info(engine_id)
            data += voices(engine_id, info)
            aliases[engine_id] = openai_voices(engine_id, info)
        return JSONResponse({"object": "list", "data": data, "openai_voices": aliases})
    except Exception as exc:
        return _error(exc).response()


def _model(engine_id: str) -> dict:
    info = registry.info(engine_id)
    return {
        "id": engine_id, "object": "model", "created": CREATED, "owned_by": "tts-compare",
        "name": info.name, "available": info.available, "reason": info.reason,
    }  # fmt: skip


def _header(text: str) -> str:
    """A header value made of printable ASCII only (caller text may hold anything)."""
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text)[:200]


@dataclass(frozen=True)
class Clip:
    """An encoded answer and what the headers say about it."""

    data: bytes
    fmt: str
    voice: str
    stats: RunStats
    notes: list[str]


def _speak(body: SpeechBody) -> Clip:
    """Blocking: check the request (client errors before engine state), synthesize one request at a
    time per engine, post-process, encode."""
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
    settings = OutputSettings(lufs=body.lufs)
    info = registry.info(engine_id)
    voice = resolve_voice(engine_id, body.voice, info)  # voices are known without loading the model
    request = SynthesisRequest(text=body.input, voice=voice, speed=body.speed, language=body.language)
    if not info.available:
        raise UnavailableError(info.reason)
    with _engine_locks[engine_id]:
        audio, _, stats = synthesize(engine_id, request)
    audio, notes = process(audio, SAMPLE_RATE, settings)
    return Clip(encode(audio, fmt, SAMPLE_RATE), fmt, voice, stats, notes)


async def _read_json(request: Request) -> object:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, f"The request body is over {MAX_BODY_BYTES // 1024} KiB.", "body_too_large")
    raw = bytearray()
    async for part in request.stream():
        raw += part
        if len(raw) > MAX_BODY_BYTES:
            raise ApiError(413, f"The request body is over {MAX_BODY_BYTES // 1024} KiB.", "body_too_large")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(400, "The request body is not valid JSON.", "invalid_json") from None


def _parse(body: object) -> SpeechBody:
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


def _error(exc: Exception) -> ApiError:
    """The API error for any exception; unexpected ones are logged with their traceback."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, UnknownName):
        return ApiError(404, exc.message, f"{exc.param}_not_found", exc.param)
    if isinstance(exc, InputError):
        return ApiError(400, str(exc), "invalid_value")
    if isinstance(exc, UnavailableError):
        return ApiError(503, str(exc), "engine_unavailable")
    if isinstance(exc, EngineError):
        log.warning("Speech request failed: %s", exc)
        return ApiError(500, str(exc), "engine_error")
    log.exception("Speech request failed unexpectedly")
    return ApiError(500, f"Synthesis failed unexpectedly ({type(exc).__name__}); please try again.", "internal_error")
