"""`POST /v1/audio/voices`: save a cloned voice (Qwen3-TTS) for the calling API key.

A multipart form: `name`, `audio` (the reference clip, at most `MAX_UPLOAD_MB`, default 50 MB:
refused from its Content-Length before it is read, and counted while it is read), and optionally
`transcript` (the clip's exact words; empty: transcribed), `x_vector_only`, `overwrite` (needed to
replace a voice of the same name, in any case) and `share_in_arena` (booleans: true/false). The clip
is decoded only by `engines.reference`. The voice belongs to the key (`API_KEYS`), and only that key
lists (`GET /v1/audio/voices`) and speaks it; with `VOICE_LIBRARY_SHARED=1` it joins the one shared
library. 201 with the voice; 400 bad form or clip, 401 no valid key where keys are set, 403 no keys
on this server, 409 the name is taken, 413 too large, 503 the cloning model cannot run here.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from engines.base import MAX_REFERENCE_TEXT_CHARS, UnavailableError
from engines.reference import load_reference, upload_limit_bytes
from engines.runtime import registry
from engines.voice_library import shared, voice_exists
from service import voices
from service.caller import Caller

from .auth import keys_required
from .caller import caller
from .errors import ApiError, error_for

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible speech"])

FORM_OVERHEAD = 64 * 1024  # the form's other fields and part headers, beside the clip
FIELDS = ("name", "audio", "transcript", "x_vector_only", "overwrite", "share_in_arena")


def max_upload_mb() -> float:
    """`MAX_UPLOAD_MB` in megabytes (`engines.reference.upload_limit_bytes`, the one home of the limit)."""
    return upload_limit_bytes() / 2**20


@router.post("/audio/voices", status_code=201)
async def save(request: Request) -> JSONResponse:
    """Save a cloned voice under a name for the calling key."""
    try:
        who = caller(request)
        if who.owner is None and not shared():
            if keys_required():
                raise ApiError(
                    401, "Send your API key as 'Authorization: Bearer <key>' to save voices.", "invalid_api_key"
                )
            raise ApiError(
                403, "Saving voices through /v1 needs API keys on this server (API_KEYS); save it on the page instead.",
                "api_keys_required",
            )  # fmt: skip
        form = await _read_form(request)
        voice = await run_in_threadpool(_save, form, who)
    except Exception as exc:  # one JSON sentence, the server stays up
        return error_for(exc).response()
    return JSONResponse(voice, status_code=201)


async def _read_form(request: Request) -> dict:
    """The form's fields (the clip as bytes), refusing a body over the limit before reading it all."""
    limit = int(max_upload_mb() * 2**20) + FORM_OVERHEAD
    too_large = ApiError(413, f"The upload is over {max_upload_mb():.3g} MB.", "upload_too_large", "audio")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise ApiError(
            415, "Send the voice as multipart/form-data with the fields name, audio and optionally transcript.",
            "unsupported_media_type",
        )  # fmt: skip
    raw = bytearray()
    async for part in request.stream():
        raw += part
        if len(raw) > limit:
            raise too_large
    body = bytes(raw)

    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=len(FIELDS))
    except Exception:  # malformed multipart, too many parts
        raise ApiError(
            400, "The form could not be read; send multipart/form-data with one audio file.", "invalid_form"
        ) from None
    fields: dict = {}
    for key, value in form.multi_items():
        if key not in FIELDS:
            continue
        if key == "audio":
            if not isinstance(value, UploadFile):
                raise ApiError(400, "The field 'audio' must be a file.", "invalid_value", "audio")
            fields[key] = await value.read()
        elif isinstance(value, str):
            fields[key] = value
        else:
            raise ApiError(400, f"The field {key!r} must be text, not a file.", "invalid_value", key)
    await form.close()
    return fields


def _flag(fields: dict, name: str) -> bool:
    value = fields.get(name, "").strip().lower()
    if value in ("", "false", "0", "no", "off"):
        return False
    if value in ("true", "1", "yes", "on"):
        return True
    raise ApiError(400, f"The field {name!r} must be true or false.", "invalid_value", name)


def _save(fields: dict, who: Caller) -> dict:
    """Blocking: check the form, decode the clip, make the clone prompt, save it."""
    name = fields.get("name", "")
    if not name.strip():
        raise ApiError(400, "The field 'name' is required.", "missing_field", "name")
    if "audio" not in fields:
        raise ApiError(400, "The field 'audio' is required: the reference clip as a file.", "missing_field", "audio")
    transcript = fields.get("transcript", "").strip() or None
    if transcript and len(transcript) > MAX_REFERENCE_TEXT_CHARS:
        raise ApiError(
            400, f"The transcript is over {MAX_REFERENCE_TEXT_CHARS:,} characters.", "invalid_value", "transcript"
        )
    x_vector_only, overwrite, share = (_flag(fields, f) for f in ("x_vector_only", "overwrite", "share_in_arena"))
    if not overwrite and voice_exists(name, who.owner):  # before the model runs; save_voice checks again
        raise ApiError(
            409, f"You already have a voice called {name.strip()!r}; send overwrite=true to replace it.",
            "voice_exists", "name",
        )  # fmt: skip
    engine_id = next(iter(registry.engines_that("saved_voices")), None)  # the engine that makes saved voices
    if engine_id is None:
        raise UnavailableError("No engine on this server saves cloned voices.")
    info = registry.info(engine_id)
    if not info.available:
        raise UnavailableError(info.reason)
    reference = load_reference(fields["audio"])
    saved = voices.save(who, engine_id, name, reference, transcript, x_vector_only, overwrite, share)
    return {
        "object": "voice", "id": saved.slug, "name": name.strip(), "model": engine_id, "saved": True,
        "x_vector_only": saved.x_vector_only, "transcript": saved.transcript, "share_in_arena": share,
        "notes": saved.notice,
    }  # fmt: skip
