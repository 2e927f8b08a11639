"""Streamed answers of `POST /v1/audio/speech` (`stream_format`): chunked audio and Server-Sent Events.

A worker thread waits for the engine's turn, runs the synthesis, levels each chunk
(`engines.audio.StreamLeveler`) and encodes it (`engines.audio.StreamEncoder`), and hands the bytes
to the event loop. The status and headers wait for the first piece of audio, so an engine failure
before it is still a JSON error; after it only the body can tell: SSE sends an error event and ends,
raw audio just ends (and the server logs it). The synthesis stops whenever the response ends: done,
failed or the client gone. With `timestamps` (SSE): where the engine times its words itself (its
chunks carry `words`: Kokoro on PyTorch), each delta carries the words of the audio it brings, in
seconds from the stream's first sample, and the done event all of them (`"words_source": "model"`);
otherwise the clip's words are aligned to the text by the speech recogniser once the engine's turn is
over (`aligned_words`) and the done event carries them (`"words_source": "asr"`). Also here: what both
kinds of answer share (`header`, `watch_disconnect`, `aligned_words`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import closing

import numpy as np
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from engines.audio import MEDIA_TYPES, StreamEncoder, StreamLeveler
from engines.base import SAMPLE_RATE, EngineError
from engines.runtime import registry
from engines.runtime.timing import RunStats, timed_stream
from evaluation.alignment import align_clip
from evaluation.captions import model_words
from service import speech
from service.caller import Caller

from .errors import error_for
from .speech_request import Plan

log = logging.getLogger(__name__)

DISCONNECT_POLL_S = 0.25  # how often a request looks whether its client is still there


WORD_KEYS = ("words", "inserted", "repeated", "error_rate", "error_unit")  # what `timestamps` adds to an answer
# ... and `words_source`: "asr" (the recogniser's alignment, checked), "model" (the engine's own durations,
# unchecked: `status`, `heard` and the check's keys are null) or null (no words)


def aligned_words(plan: Plan, audio: np.ndarray) -> tuple[dict, list[str]]:
    """Blocking: the clip's words aligned to the request's text (`evaluation.alignment`), as the
    `WORD_KEYS` of an answer, and a note for the answer when the speech recogniser could not run."""
    none = {**dict.fromkeys(WORD_KEYS), "words_source": None}
    try:
        # the clip came from the engine: the language it spoke, never a recogniser's guess
        spoken = registry.spoken_language(plan.engine_id, plan.request) or plan.request.language
        found = align_clip(audio, SAMPLE_RATE, plan.request.text, spoken).as_dict()
    except EngineError as exc:
        return none, [f"timestamps unavailable: {exc}"]
    except Exception:
        log.exception("Alignment failed")
        return none, ["timestamps unavailable: the speech recogniser failed on this clip."]
    return {**{key: found[key] for key in WORD_KEYS}, "words_source": "asr"}, []


def header(text: str) -> str:
    """A header value made of printable ASCII only (caller text may hold anything)."""
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text)[:200]


async def watch_disconnect(request: Request, gone: threading.Event) -> None:
    """Set `gone` when the client disconnects (polled while its request is waited for or synthesized)."""
    while not await request.is_disconnected():
        await asyncio.sleep(DISCONNECT_POLL_S)
    gone.set()


async def stream_response(plan: Plan, request: Request, who: Caller) -> Response:
    """Start synthesis and answer once its first audio is there: an engine failure before that is
    still a JSON error; after it, the status is sent and only the body can tell (SSE) or end. A client
    that leaves while waiting for its turn gives up its place in line."""
    stream = _SpeechStream(plan, asyncio.get_running_loop(), who)
    watcher = asyncio.create_task(watch_disconnect(request, stream._cancelled))
    try:
        first = await stream.next()
    except BaseException:
        stream.cancel()
        raise
    finally:
        watcher.cancel()  # from here the streamed response itself sees the client go
    headers = {
        "X-Voice": header(plan.request.voice), "Cache-Control": "no-store", "X-Accel-Buffering": "no",
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
        log.warning("Streamed speech ended early: %s", error_for(exc).message)


async def _sse_events(stream: _SpeechStream, first: bytes | None) -> AsyncIterator[bytes]:
    """The SSE body: one delta event per piece, then the done event, or an error event."""
    piece = first
    try:
        while piece is not None:
            delta = {"type": "speech.audio.delta", "audio": base64.b64encode(piece).decode("ascii")}
            if words := stream.take_words():  # the model's words of the audio this delta brings
                delta["words"] = words
            yield _event(delta)
            piece = await stream.next()
    except Exception as exc:
        error = error_for(exc)
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
        **stream.words,  # with `timestamps`: the words (`WORD_KEYS` and `words_source`)
    })  # fmt: skip


def _event(data: dict) -> bytes:
    """One Server-Sent Event with a JSON payload."""
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


_END = object()  # the producer's last item after the audio


class _Words(list):
    """A queue item: the model's words of the audio written next (before its bytes, so that they reach
    the delta that brings that audio, or an earlier one when an encoder holds bytes back)."""


class _SpeechStream:
    """One streamed synthesis: a worker thread waits for the engine's turn, runs it, levels and encodes
    each chunk and hands the bytes to the event loop through an asyncio queue."""

    def __init__(self, plan: Plan, loop: asyncio.AbstractEventLoop, who: Caller) -> None:
        self.plan, self.loop, self.who = plan, loop, who
        self.stats = RunStats(engine=plan.engine_id)
        self.notes: list[str] = []
        self.words: dict = {}  # with `timestamps`: the done event's words (`WORD_KEYS`, `words_source`)
        self._ready_words: list[dict] = []  # the model's words that no delta has carried yet
        self._queue: asyncio.Queue = asyncio.Queue()
        self._cancelled = threading.Event()
        threading.Thread(target=self._produce, name=f"speech-stream-{plan.engine_id}", daemon=True).start()

    async def next(self) -> bytes | None:
        """The next piece of encoded audio; None at the end; raises what stopped the synthesis."""
        item = await self._queue.get()
        while isinstance(item, _Words):
            self._ready_words += item
            item = await self._queue.get()
        if item is _END:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def take_words(self) -> list[dict]:
        """The model's words that came with the audio so far and no delta has carried yet."""
        words, self._ready_words = self._ready_words, []
        return words

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
        sent, timed = self._speak()
        if not self.plan.timestamps or not sent or self._cancelled.is_set():
            return
        if timed is not None:  # every chunk came with the model's word times: no recogniser needed
            words = [{**w, "status": None, "heard": None} for w in timed]
            self.words = {**dict.fromkeys(WORD_KEYS), "words": words, "words_source": "model"}
        else:  # after the engine's turn is over
            self.words, notes = aligned_words(self.plan, np.concatenate(sent))
            self.notes += notes

    def _speak(self) -> tuple[list[np.ndarray], list[dict] | None]:
        """The synthesis in the engine's turn: the levelled audio sent (kept with `timestamps` only), and
        the model's word times of the whole clip (None unless every chunk carried them)."""
        sent: list[np.ndarray] = []
        timed: list[dict] = []  # with `timestamps`: the model's words so far, in the stream's time
        complete = True  # every chunk so far came with the model's word times
        offset = 0  # samples of the engine's audio before this chunk (levelling keeps the length)
        # the caller's turn (fair across callers): BusyError at once past MAX_WAITING or the caller's share,
        # RateLimited past its allowances; give up if the client left
        with speech.enter(self.who, self.plan.engine_id, self.plan.request, self._cancelled.is_set) as ticket:
            if not ticket.wait_turn():
                return [], None
            leveler = StreamLeveler(self.plan.settings)
            keep = sent.append if self.plan.timestamps else (lambda _: None)
            with StreamEncoder(self.plan.fmt, self._put) as encoder:
                # in the caller's turn, taken (and admitted) by `service.speech.enter` above
                stream = timed_stream(self.plan.engine_id, self.plan.request, self.stats, ticket=ticket)
                with closing(stream) as chunks:
                    for chunk in chunks:
                        if self._cancelled.is_set():
                            return [], None
                        if self.plan.timestamps and chunk.words:
                            timed += (words := model_words([chunk], offset / SAMPLE_RATE))
                            self._put(_Words(words))
                        complete = complete and (bool(chunk.words) or not len(chunk.audio))
                        offset += len(chunk.audio)
                        keep(piece := leveler.feed(chunk.audio))
                        encoder.write(piece)
                keep(piece := leveler.flush())
                encoder.write(piece)
                encoder.close()
                self.notes = [*self.plan.notes, *self.stats.notes, *leveler.notes]
        return sent, timed if self.plan.timestamps and complete and timed else None
