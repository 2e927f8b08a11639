"""OpenAI-compatible speech API: `POST /v1/audio/speech`, `GET /v1/models`, `GET /v1/audio/voices`.

The speech endpoint takes OpenAI's JSON body (`model`, `input`, `voice`, `response_format`, `speed`,
`stream_format`, `instructions`) plus extensions (`language`, `lufs`, and for whole files
`peak_normalize`, `trim`, `denoise`, `fade`: the page's Output section) and synthesizes through the
engine registry in a worker thread, first come, first served per engine (`engines.runtime.work_queue`).
`instructions` reach a model that follows them (`EngineInfo.follows_instructions`: Qwen3-TTS
CustomVoice 1.7B); any other model speaks without them and the answer says so (`X-Output-Notes`, or
the SSE done event's `notes`), as it says when Qwen3-TTS's runaway guard stopped a sentence
(`engines.qwen.runaway`; its figures are the SSE `figures`' `runaway` list).
The routes and the whole-file answer live here; the request model and its checks in
`api.speech_request`, the voice names in `api.voices`, streamed answers in `api.speech_stream`, the
mapping of errors to HTTP codes in `api.errors`.

Every error is OpenAI's JSON shape `{"error": {"message", "type", "param", "code"}}` with one
sentence (never a path, command line or exception class): 400 bad input (the body is read by
`api.strict_json`: not UTF-8, too deep, numbers too long, duplicate keys, wrong types), 404 unknown
model or voice, 413 input over the limit, 415 a body that is not `application/json`, 503 engine
unavailable (`engine_unavailable`) or busy (`server_busy`, with `Retry-After`: more requests already
wait for the engine than `MAX_WAITING`, or `MAX_WAITING_PER_CALLER` of the caller's), 500 anything
unexpected (logged). Keys (401) are `api.guard`'s, the caller's limits (429 with `Retry-After`)
`service.admission`'s. Every answer with audio carries `X-Queue-Wait`, the seconds it waited in the
engine's line before synthesis began.

Without `stream_format` the answer is the whole clip, post-processed (`engines.audio.process`) and
encoded, with the run's measured figures in headers (`X-Audio-Seconds`, `X-Time-To-First-Audio`,
`X-Real-Time-Factor`). With the extension `"timestamps": true` it is JSON instead: `{"audio": <base64
of the file>, "format", "words", "inserted", "repeated", "error_rate", "error_unit"}`, the clip's words
aligned to the text by the speech recogniser (`evaluation.alignment`; the words are null, and
`X-Output-Notes` says why, when it cannot run); on an SSE stream the done event carries the same keys.

With `stream_format` the audio is sent while it is generated (chunked transfer):

- `"audio"`: the bytes of `response_format` as they come (`engines.audio.StreamEncoder`). `pcm` (raw
  s16le mono 24 kHz) and `wav` (a header whose RIFF and data sizes are 0xFFFFFFFF, "unknown", then PCM
  frames); `mp3`, `opus` (Ogg Opus) and `ogg` (Vorbis) go through an ffmpeg pipe. A piped MP3 has no Xing
  header, so decoders keep the encoder's delay and padding (~50 ms more than the clip). `flac` does
  not stream (400): a streamed FLAC cannot carry its length in its header, and common readers such
  as libsndfile refuse such a file; ask for the whole file instead.
- `"sse"`: Server-Sent Events, `data: {"type": "speech.audio.delta", "audio": "<base64>"}` for each
  piece, then `data: {"type": "speech.audio.done", "usage": {...}, "figures": {...}, ...}`. The
  deltas carry base64 PCM when `response_format` is left out (what OpenAI streams in SSE); a
  `response_format` that is given means the deltas are base64 pieces of that format's stream, the
  same bytes `"audio"` would send. `usage` keeps OpenAI's shape, but no tokens are counted here (all
  zeros); the measured figures (`audio_s`, `ttfa_s`, `rtf`, ...) are under `figures`.

With the extension `voices` (a cast: speaker -> `{"engine" or "model", "voice"}`, or a voice of `model`),
or an `input` that is one `<speak>` document, `input` is a script (`Name: line`, SSML inline) rendered as
one take (`api.speech_script`, `service.script`): whole files only; with `timestamps` the JSON carries
each line's speaker and span (`lines`) instead of words.

Everything that can be checked before the first byte answers as a JSON error, the engine's failures
before its first audio included: the status and headers wait for the first piece of audio. A
failure after that cannot change the status: SSE sends `{"type": "error", "error": {...}}` and ends,
raw audio just ends (and the server logs it). A stream sends `X-Voice` but none of the measured
headers (they are not known yet), except `X-Queue-Wait`. When the client goes away, generation stops
after the chunk in progress and the engine passes to the next request in line; a whole-file request
looks for its client too (`request.is_disconnected()`) and stops the same way.

A stream is levelled chunk by chunk with `engines.audio.StreamLeveler` (`lufs`), like the page's
stream: the loudness converges on the target as the clip grows, and each chunk is peak-limited on
its own. What needs the whole clip cannot be done on a stream: the loudness measured over the
whole clip and the true-peak limiter's look-ahead across chunk boundaries; the whole file does both.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from engines.audio import MEDIA_TYPES, encode, process
from engines.base import SAMPLE_RATE
from engines.runtime import registry
from engines.runtime.timing import RunStats
from service import speech as speak
from service.caller import Caller

from .caller import caller
from .errors import error_for
from .speech_request import SpeechBody, prepare, read_body
from .speech_script import is_script, speak_script
from .speech_stream import aligned_words, header, stream_response, watch_disconnect
from .voices import openai_voices, resolve_model, voices

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible speech"])

CREATED = int(time.time())  # OpenAI's `created` for the models: when this server started


@router.post("/audio/speech", response_class=Response)
async def speech(request: Request) -> Response:
    """Speak `input` with `model` and `voice`: the clip in `response_format`, whole or streamed
    (`stream_format`: `audio` or `sse`)."""
    try:
        who = caller(request)  # owner: whose saved voices `voice` may name; limits: its key, else address
        body = await read_body(request)
        if is_script(body):  # extension: a script with a cast, answered as one take
            data, fmt, manifest = await run_in_threadpool(speak_script, body, who)
            lines = {"X-Script-Lines": str(len(manifest["lines"])), "X-Audio-Seconds": f"{manifest['duration_s']:.3f}"}
            if body.timestamps:
                answer = {"audio": base64.b64encode(data).decode("ascii"), "format": fmt, "lines": manifest["lines"]}
                return JSONResponse(answer, headers=lines)
            return Response(content=data, media_type=MEDIA_TYPES[fmt], headers=lines)
        if body.stream_format is not None:
            plan = await run_in_threadpool(prepare, body, who.owner)  # engine look-ups block: off the event loop
            return await stream_response(plan, request, who)
        gone = threading.Event()
        watcher = asyncio.create_task(watch_disconnect(request, gone))
        try:
            clip = await run_in_threadpool(_speak, body, who, gone.is_set)  # synthesis blocks: off the event loop
        finally:
            watcher.cancel()
    except Exception as exc:  # every failure becomes one JSON sentence; the server stays up
        return error_for(exc).response()
    if clip is None:  # the client has gone: nobody reads this answer
        return Response(status_code=499)
    headers = {
        "X-Voice": header(clip.voice),
        "X-Queue-Wait": f"{clip.stats.queue_wait_s or 0.0:.3f}",
        "X-Audio-Seconds": f"{clip.stats.audio_s:.3f}",
        "X-Time-To-First-Audio": f"{clip.stats.ttfa_s or 0.0:.3f}",
        "X-Real-Time-Factor": f"{clip.stats.rtf or 0.0:.3f}",
    }
    if clip.notes:
        headers["X-Output-Notes"] = header(" ".join(clip.notes))
    if clip.words is not None:  # `timestamps`: the clip in JSON with its words
        body = {"audio": base64.b64encode(clip.data).decode("ascii"), "format": clip.fmt, **clip.words}
        return JSONResponse(body, headers=headers)
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
        return error_for(exc).response()


@router.get("/audio/voices")
def list_voices(request: Request, model: str | None = None) -> JSONResponse:
    """Every engine's voices (or one model's with `?model=`), and what OpenAI's voice names map to;
    saved voices: only the calling key's."""
    try:
        owner = caller(request).owner
        engine_ids = [resolve_model(model)] if model else list(registry.ENGINES)
        data, aliases = [], {}
        for engine_id in engine_ids:
            info = registry.info(engine_id)
            data += voices(engine_id, info, owner)
            aliases[engine_id] = openai_voices(engine_id, info)
        return JSONResponse({"object": "list", "data": data, "openai_voices": aliases})
    except Exception as exc:
        return error_for(exc).response()


def _model(engine_id: str) -> dict:
    info = registry.info(engine_id)
    return {
        "id": engine_id, "object": "model", "created": CREATED, "owned_by": "tts-compare",
        "name": info.name, "available": info.available, "reason": info.reason,
        "follows_instructions": info.follows_instructions,
        "capabilities": registry.capabilities(engine_id).as_dict(),  # what it can do and its defaults
    }  # fmt: skip


@dataclass(frozen=True)
class Clip:
    """An encoded answer and what the headers say about it."""

    data: bytes
    fmt: str
    voice: str
    stats: RunStats
    notes: list[str]
    words: dict | None = None  # with `timestamps`: `speech_stream.WORD_KEYS` of the clip


def _speak(body: SpeechBody, who: Caller, cancelled: Callable[[], bool] | None = None) -> Clip | None:
    """Blocking: check the request, synthesize in the engine's turn, post-process, encode; None when
    `cancelled()` (the client left) stopped it."""
    plan = prepare(body, who.owner)
    audio, _, stats = speak.synthesize(who, plan.engine_id, plan.request, cancelled)
    if stats.cancelled:
        return None
    audio, notes = process(audio, SAMPLE_RATE, plan.settings)
    words, word_notes = aligned_words(plan, audio) if plan.timestamps else (None, [])
    data = encode(audio, plan.fmt, SAMPLE_RATE)
    # the engine's notes (runaway guard), then post-processing's, then the word check's
    return Clip(data, plan.fmt, plan.request.voice, stats, [*plan.notes, *stats.notes, *notes, *word_notes], words)
