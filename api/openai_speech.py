"""OpenAI-compatible speech API: `POST /v1/audio/speech`, `GET /v1/models`, `GET /v1/audio/voices`.

The speech endpoint takes OpenAI's JSON body (`model`, `input`, `voice`, `response_format`, `speed`,
`stream_format`, `instructions`) plus extensions (`language`, `lufs`, and for whole files
`peak_normalize`, `trim`, `denoise`, `fade`: the page's Output section) and synthesizes through the
engine registry in a worker thread, first come, first served per engine (`engines.work_queue`).
`instructions` reach a model that follows them (`EngineInfo.follows_instructions`: Qwen3-TTS
CustomVoice 1.7B); any other model speaks without them and the answer says so (`X-Output-Notes`, or
the SSE done event's `notes`).
Every error is OpenAI's JSON shape `{"error": {"message", "type", "param", "code"}}` with one
sentence (never a path, command line or exception class): 400 bad input (the body is read by
`api.strict_json`: not UTF-8, too deep, numbers too long, duplicate keys, wrong types), 404 unknown
model or voice, 413 input over the limit, 415 a body that is not `application/json`, 503 engine
unavailable (`engine_unavailable`) or busy (`server_busy`, with `Retry-After`: more requests already
wait for the engine than `MAX_WAITING`), 500 anything unexpected (logged). Keys and the rate limit
(401, 429) are `api.guard`'s. Every answer with audio carries `X-Queue-Wait`, the seconds it waited in
the engine's line before synthesis began.

Without `stream_format` the answer is the whole clip, post-processed (`engines.audio.process`) and
encoded, with the run's measured figures in headers (`X-Audio-Seconds`, `X-Time-To-First-Audio`,
`X-Real-Time-Factor`).

With `stream_format` the audio is sent while it is generated (chunked transfer):

- `"audio"`: the bytes of `response_format` as they come. `pcm` (raw s16le mono 24 kHz) and `wav` (a
  header whose RIFF and data sizes are 0xFFFFFFFF, "unknown", then PCM frames) are written here;
  `mp3`, `opus` (Ogg Opus) and `ogg` (Vorbis) go through an ffmpeg pipe. A piped MP3 has no Xing
  header, so decoders keep the encoder's delay and padding (~50 ms more than the clip). `flac` does
  not stream (400): a streamed FLAC cannot carry its length in its header, and common readers such
  as libsndfile refuse such a file; ask for the whole file instead.
- `"sse"`: Server-Sent Events, `data: {"type": "speech.audio.delta", "audio": "<base64>"}` for each
  piece, then `data: {"type": "speech.audio.done", "usage": {...}, "figures": {...}, ...}`. The
  deltas carry base64 PCM when `response_format` is left out (what OpenAI streams in SSE); a
  `response_format` that is given means the deltas are base64 pieces of that format's stream, the
  same bytes `"audio"` would send. `usage` keeps OpenAI's shape, but no tokens are counted here (all
  zeros); the measured figures (`audio_s`, `ttfa_s`, `rtf`, ...) are under `figures`.

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
import json
import logging
import shutil
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from dataclasses import dataclass

import numpy as np
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictStr, ValidationError

from engines import registry
from engines.audio import FORMATS, MEDIA_TYPES, OPUS_ARGS, OutputSettings, StreamLeveler, encode, process, to_int16
from engines.base import (
    MAX_TEXT_CHARS,
    SAMPLE_RATE,
    BusyError,
    EngineError,
    InputError,
    SynthesisRequest,
    UnavailableError,
)
from engines.timing import RunStats, enter, synthesize, timed_stream

from .strict_json import BadJson
from .strict_json import parse as parse_json
from .voices import UnknownName, openai_voices, owner_of, resolve_model, resolve_voice, voices

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible speech"])

MAX_BODY_BYTES = 256 * 1024  # 5,000 characters, even \u-escaped, fit with room to spare
CREATED = int(time.time())  # OpenAI's `created` for the models: when this server started
DISCONNECT_POLL_S = 0.25  # how often a whole-file request looks whether its client is still there

STREAM_FORMATS = ("audio", "sse")
WHOLE_FILE_OPTIONS = ("peak_normalize", "trim", "denoise", "fade")  # `OutputSettings` fields a stream can't do
# ffmpeg output options of the formats streamed through a pipe; Ogg pages every 0.2 s, not 1 s
_FFMPEG_STREAMS: dict[str, list[str]] = {
    "mp3": ["-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3"],
    "opus": [*OPUS_ARGS, "-page_duration", "200000"],
    "ogg": ["-c:a", "libvorbis", "-q:a", "4", "-f", "ogg", "-page_duration", "200000"],
}
STREAMED_FORMATS = ("pcm", "wav", *_FFMPEG_STREAMS)


class SpeechBody(BaseModel):
    """The JSON body of `POST /v1/audio/speech`; unknown fields are ignored, as OpenAI clients expect."""

    model_config = ConfigDict(extra="ignore")

    model: StrictStr
    input: StrictStr
    voice: StrictStr
    response_format: StrictStr = "mp3"
    speed: StrictFloat = 1.0  # a JSON number (an integer too); "1.0" as a string is a 400
    stream_format: StrictStr | None = None  # "audio" or "sse": stream; left out: the whole file
    instructions: StrictStr | None = None  # a style instruction, for a model that follows them
    language: StrictStr | None = None  # extension: the text's language (engine's names; default Auto)
    lufs: StrictFloat | None = None  # extension: loudness target of the clip, peak-guarded
    # extensions, whole files only: what the page's Output section does
    peak_normalize: StrictBool = False
    trim: StrictBool = False
    denoise: StrictBool = False
    fade: StrictBool = False


class ApiError(Exception):
    """An error answered as OpenAI's JSON error object."""

    TYPES = {
        400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
        404: "invalid_request_error", 409: "invalid_request_error", 413: "invalid_request_error",
        415: "invalid_request_error", 429: "requests",
    }  # fmt: skip

    def __init__(
        self, status: int, message: str, code: str, param: str | None = None, headers: dict | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.headers = headers or {}

    def body(self) -> dict:
        """OpenAI's error object: message, type, param, code."""
        kind = self.TYPES.get(self.status, "server_error")
        return {"message": self.message, "type": kind, "param": self.param, "code": self.code}

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.body()}, status_code=self.status, headers=self.headers)


@router.post("/audio/speech", response_class=Response)
async def speech(request: Request) -> Response:
    """Speak `input` with `model` and `voice`: the clip in `response_format`, whole or streamed
    (`stream_format`: `audio` or `sse`)."""
    try:
        owner = owner_of(request)  # whose saved voices `voice` may name
        body = _parse(await _read_json(request))
        if body.stream_format is not None:
            plan = await run_in_threadpool(_prepare, body, owner)  # engine look-ups block: off the event loop
            return await _stream_response(plan, request)
        gone = threading.Event()
        watcher = asyncio.create_task(_watch_disconnect(request, gone))
        try:
            clip = await run_in_threadpool(_speak, body, owner, gone.is_set)  # synthesis blocks: off the event loop
        finally:
            watcher.cancel()
    except Exception as exc:  # every failure becomes one JSON sentence; the server stays up
        return _error(exc).response()
    if clip is None:  # the client has gone: nobody reads this answer
        return Response(status_code=499)
    headers = {
        "X-Voice": _header(clip.voice),
        "X-Queue-Wait": f"{clip.stats.queue_wait_s or 0.0:.3f}",
        "X-Audio-Seconds": f"{clip.stats.audio_s:.3f}",
        "X-Time-To-First-Audio": f"{clip.stats.ttfa_s or 0.0:.3f}",
        "X-Real-Time-Factor": f"{clip.stats.rtf or 0.0:.3f}",
    }
    if clip.notes:
        headers["X-Output-Notes"] = _header(" ".join(clip.notes))
    return Response(content=clip.data, media_type=MEDIA_TYPES[clip.fmt], headers=headers)


async def _watch_disconnect(request: Request, gone: threading.Event) -> None:
    """Set `gone` when the client of a whole-file request disconnects (polled while it is synthesized)."""
    while not await request.is_disconnected():
        await asyncio.sleep(DISCONNECT_POLL_S)
    gone.set()


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
def list_voices(request: Request, model: str | None = None) -> JSONResponse:
    """Every engine's voices (or one model's with `?model=`), and what OpenAI's voice names map to;
    saved voices: only the calling key's."""
    try:
        owner = owner_of(request)
        engine_ids = [resolve_model(model)] if model else list(registry.ENGINES)
        data, aliases = [], {}
        for engine_id in engine_ids:
            info = registry.info(engine_id)
            data += voices(engine_id, info, owner)
            aliases[engine_id] = openai_voices(engine_id, info)
        return JSONResponse({"object": "list", "data": data, "openai_voices": aliases})
    except Exception as exc:
        return _error(exc).response()


def _model(engine_id: str) -> dict:
    info = registry.info(engine_id)
    return {
        "id": engine_id, "object": "model", "created": CREATED, "owned_by": "tts-compare",
        "name": info.name, "available": info.available, "reason": info.reason,
        "follows_instructions": info.follows_instructions,
        "capabilities": registry.capabilities(engine_id).as_dict(),  # what it can do and its defaults
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


@dataclass(frozen=True)
class Plan:
    """A checked request: which engine, what to synthesize, and how to send it."""

    engine_id: str
    request: SynthesisRequest
    fmt: str
    settings: OutputSettings
    stream: str | None  # None (the whole file), "audio" or "sse"
    notes: tuple[str, ...] = ()  # what the answer should say about the request (an ignored field)


def _prepare(body: SpeechBody, owner: str | None = None) -> Plan:
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
    settings = OutputSettings(lufs=body.lufs, **{name: getattr(body, name) for name in WHOLE_FILE_OPTIONS})
    info = registry.info(engine_id)
    voice = resolve_voice(engine_id, body.voice, info, owner)  # voices are known without loading the model
    instruct, notes = (body.instructions or "").strip() or None, ()
    if instruct and not info.follows_instructions:
        instruct, notes = None, (f"instructions ignored: {info.name} does not follow style instructions.",)
    request = SynthesisRequest(
        text=body.input, voice=voice, speed=body.speed, language=body.language, instruct=instruct, owner=owner
    )
    if not info.available:
        raise UnavailableError(info.reason)
    if stream and fmt in _FFMPEG_STREAMS and shutil.which("ffmpeg") is None:
        raise UnavailableError(f"Streaming {fmt} needs ffmpeg, which is not installed here; stream pcm or wav.")
    return Plan(engine_id, request, fmt, settings, stream, notes)


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


def _speak(body: SpeechBody, owner: str | None = None, cancelled: Callable[[], bool] | None = None) -> Clip | None:
    """Blocking: check the request, synthesize in the engine's turn, post-process, encode; None when
    `cancelled()` (the client left) stopped it."""
    plan = _prepare(body, owner)
    audio, _, stats = synthesize(plan.engine_id, plan.request, cancelled)
    if stats.cancelled:
        return None
    audio, notes = process(audio, SAMPLE_RATE, plan.settings)
    return Clip(encode(audio, plan.fmt, SAMPLE_RATE), plan.fmt, plan.request.voice, stats, [*plan.notes, *notes])


# ----- streamed answers ---------------------------------------------------------------------------


async def _stream_response(plan: Plan, request: Request) -> Response:
    """Start synthesis and answer once its first audio is there: an engine failure before that is
    still a JSON error; after it, the status is sent and only the body can tell (SSE) or end. A client
    that leaves while waiting for its turn gives up its place in line."""
    stream = _SpeechStream(plan, asyncio.get_running_loop())
    watcher = asyncio.create_task(_watch_disconnect(request, stream._cancelled))
    try:
        first = await stream.next()
    except BaseException:
        stream.cancel()
        raise
    finally:
        watcher.cancel()  # from here the streamed response itself sees the client go
    headers = {
        "X-Voice": _header(plan.request.voice), "Cache-Control": "no-store", "X-Accel-Buffering": "no",
        "X-Queue-Wait": f"{stream.stats.queue_wait_s or 0.0:.3f}",  # known: the first audio is here
    }  # fmt: skip
    if plan.stream == "sse":
        return _StreamedSpeech(stream, _sse_events(stream, first), "text/event-stream", headers)
    return _StreamedSpeech(stream, _audio_pieces(stream, first), MEDIA_TYPES[plan.fmt], headers)


class _StreamedSpeech(StreamingResponse):
    """A streamed answer that stops its synthesis whenever the response ends: done, failed or the
    client gone (starlette cancels the response when it sees the disconnect)."""

    def __init__(self, stream: _SpeechStream, content: AsyncIterator[bytes], media_type: str, headers: dict) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self.stream = stream

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.stream.cancel()


async def _audio_pieces(stream: _SpeechStream, first: bytes | None) -> AsyncIterator[bytes]:
    """The raw audio body; a failure mid-stream can only end it (and is logged)."""
    piece = first
    try:
        while piece is not None:
            yield piece
            piece = await stream.next()
    except Exception as exc:
        log.warning("Streamed speech ended early: %s", _error(exc).message)


async def _sse_events(stream: _SpeechStream, first: bytes | None) -> AsyncIterator[bytes]:
    """The SSE body: one delta event per piece, then the done event, or an error event."""
    piece = first
    try:
        while piece is not None:
            yield _event({"type": "speech.audio.delta", "audio": base64.b64encode(piece).decode("ascii")})
            piece = await stream.next()
    except Exception as exc:
        error = _error(exc)
        log.warning("Streamed speech ended early: %s", error.message)
        yield _event({"type": "error", "error": error.body()})
        return
    yield _event({
        "type": "speech.audio.done",
        "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0},  # OpenAI's shape; not counted here
        # measured: audio_s, total_s, ttfa_s, rtf, chunks, and the wait in the engine's line
        "figures": {**stream.stats.summary(), "queue_wait_s": round(stream.stats.queue_wait_s or 0.0, 3)},
        "voice": stream.plan.request.voice,
        "notes": stream.notes,
    })  # fmt: skip


def _event(data: dict) -> bytes:
    """One Server-Sent Event with a JSON payload."""
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


_END = object()  # the producer's last item after the audio


class _SpeechStream:
    """One streamed synthesis: a worker thread waits for the engine's turn, runs it, levels and encodes
    each chunk and hands the bytes to the event loop through an asyncio queue."""

    def __init__(self, plan: Plan, loop: asyncio.AbstractEventLoop) -> None:
        self.plan, self.loop = plan, loop
        self.stats = RunStats(engine=plan.engine_id)
        self.notes: list[str] = []
        self._queue: asyncio.Queue = asyncio.Queue()
        self._cancelled = threading.Event()
        threading.Thread(target=self._produce, name=f"speech-stream-{plan.engine_id}", daemon=True).start()

    async def next(self) -> bytes | None:
        """The next piece of encoded audio; None at the end; raises what stopped the synthesis."""
        item = await self._queue.get()
        if item is _END:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def cancel(self) -> None:
        """Stop generating after the chunk in progress (the lock is then released)."""
        self._cancelled.set()

    def _put(self, item: object) -> None:
        try:
            self.loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            self._cancelled.set()

    def _produce(self) -> None:
        """Worker thread: the whole synthesis; every outcome ends with `_END` or the exception."""
        try:
            self._synthesize()
        except BaseException as exc:
            self._put(exc)
        else:
            self._put(_END)

    def _synthesize(self) -> None:
        # first come, first served per engine: BusyError at once past MAX_WAITING; give up if the client left
        with enter(self.plan.engine_id, self.plan.request, self._cancelled.is_set) as ticket:
            if not ticket.wait_turn():
                return
            leveler = StreamLeveler(self.plan.settings)
            encoder = _encoder(self.plan.fmt, self._put)
            try:
                stream = timed_stream(self.plan.engine_id, self.plan.request, self.stats, ticket=ticket)
                with closing(stream) as chunks:
                    for chunk in chunks:
                        if self._cancelled.is_set():
                            return
                        encoder.write(leveler.feed(chunk.audio))
                encoder.write(leveler.flush())
                encoder.close()
                self.notes = [*self.plan.notes, *leveler.notes]
            finally:
                encoder.abort()


def _encoder(fmt: str, put: Callable[[bytes], None]) -> _PcmEncoder | _FfmpegEncoder:
    """The streaming encoder of a format in `STREAMED_FORMATS`, handing its bytes to `put`."""
    if fmt in _FFMPEG_STREAMS:
        return _FfmpegEncoder(fmt, put)
    return _PcmEncoder(put, _wav_stream_header(SAMPLE_RATE) if fmt == "wav" else b"")


def _wav_stream_header(sample_rate: int) -> bytes:
    """A 16-bit mono WAV header for a stream: the RIFF and data sizes say "unknown" (0xFFFFFFFF)."""
    unknown = 0xFFFFFFFF
    fmt_chunk = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, sample_rate, 2 * sample_rate, 2, 16)
    return struct.pack("<4sI4s", b"RIFF", unknown, b"WAVE") + fmt_chunk + struct.pack("<4sI", b"data", unknown)


class _PcmEncoder:
    """Raw s16le pieces, after an optional header (sent with the first audio, or alone at the end)."""

    def __init__(self, put: Callable[[bytes], None], header: bytes = b"") -> None:
        self.put, self.header = put, header

    def write(self, audio: np.ndarray) -> None:
        if len(audio):
            self.put(self.header + to_int16(audio).astype("<i2").tobytes())
            self.header = b""

    def close(self) -> None:
        if self.header:
            self.put(self.header)
            self.header = b""

    def abort(self) -> None:
        """Nothing to release."""


class _FfmpegEncoder:
    """An ffmpeg process encoding s16le from its stdin; a reader thread hands on what it writes."""

    def __init__(self, fmt: str, put: Callable[[bytes], None]) -> None:
        self.fmt, self.put = fmt, put
        command = [
            shutil.which("ffmpeg") or "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
            "-f", "s16le", "-ar", str(SAMPLE_RATE), "-ac", "1", "-i", "pipe:0",
            *_FFMPEG_STREAMS[fmt], "-flush_packets", "1", "pipe:1",
        ]  # fmt: skip
        self.errors = tempfile.TemporaryFile()  # a file, not a pipe: a chatty ffmpeg can never block on it
        try:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors)
        except OSError as exc:
            self.errors.close()
            log.warning("ffmpeg could not start: %s", exc)
            raise EngineError(f"The {fmt} stream encoder could not start.") from None
        self.reader = threading.Thread(target=self._read, name=f"ffmpeg-{fmt}-reader", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while piece := self.process.stdout.read1(1 << 16):
            self.put(piece)

    def write(self, audio: np.ndarray) -> None:
        if not len(audio):
            return
        try:
            self.process.stdin.write(to_int16(audio).astype("<i2").tobytes())
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise self._failure() from None

    def close(self) -> None:
        """Finish the stream: ffmpeg writes what it holds, then must exit cleanly."""
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        self.reader.join()
        if self.process.wait() != 0:
            raise self._failure()

    def abort(self) -> None:
        """Stop ffmpeg if it still runs (harmless after `close`)."""
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
        self.reader.join()
        self.process.wait()
        self.process.stdout.close()
        self.errors.close()

    def _failure(self) -> EngineError:
        self.process.wait()
        self.errors.seek(0)
        detail = self.errors.read().decode("utf-8", "replace").strip().splitlines()
        log.warning("ffmpeg (%s stream) failed: %s", self.fmt, detail[-1] if detail else "no output")
        return EngineError(f"The {self.fmt} stream encoder failed.")


async def _read_json(request: Request) -> object:
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
    if isinstance(exc, BusyError):
        retry = max(1, int(round(exc.retry_after_s)))
        return ApiError(503, str(exc), "server_busy", headers={"Retry-After": str(retry)})
    if isinstance(exc, UnavailableError):
        return ApiError(503, str(exc), "engine_unavailable")
    if isinstance(exc, EngineError):
        log.warning("Speech request failed: %s", exc)
        return ApiError(500, str(exc), "engine_error")
    log.exception("Speech request failed unexpectedly")
    return ApiError(500, "Synthesis failed unexpectedly; please try again.", "internal_error")
