"""What every tab shares: user-facing errors, status lines, waiting in an engine's line, clip files,
engine banners."""

from __future__ import annotations

import errno
import functools
import inspect
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Generator
from pathlib import Path

import gradio as gr
import numpy as np

from engines.audio import write
from engines.base import EngineError, SynthesisRequest
from engines.kokoro.voices import list_found_voices
from engines.runtime import registry, stop
from engines.runtime.timing import RunStats
from service import janitor, speech
from service.janitor import output_dir
from service.speech import Ticket

from .caller import caller

log = logging.getLogger(__name__)
_FULL = "The server's disk is full, so the result could not be saved; please try again in a few minutes."
_READ_ONLY = "The server cannot save results right now (its output folder is not writable); please try again later."
NO_FFMPEG = (
    "Streamed audio through the API needs ffmpeg, which is not installed on this server; "
    "the whole-file endpoint still works."
)
DISK_ERRORS = {errno.ENOSPC: _FULL, errno.EDQUOT: _FULL, errno.EROFS: _READ_ONLY, errno.EACCES: _READ_ONLY}


def user_errors(fn: Callable) -> Callable:
    """Turn engine errors (and a full or read-only disk) into one-sentence gr.Error toasts; never show a
    traceback, an exception class or a path. The handler is marked `starts_work` (the list of events that
    run use cases, for the table of ways in); the limits are the service's, met where the work starts."""

    def fail(exc: Exception) -> gr.Error:
        if stop.stopped():  # cut short by the visitor's Stop (`ui.stopping`): nobody waits for this answer
            return gr.Error("Stopped.")
        if isinstance(exc, EngineError):
            return gr.Error(str(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_ERRORS:
            log.error("%s could not write its output: %s", fn.__name__, exc)
            janitor.written()  # a sweep may free room
            return gr.Error(DISK_ERRORS[exc.errno])
        log.exception("%s failed", fn.__name__)
        return gr.Error("Synthesis failed unexpectedly; please try again.")

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as exc:
                raise fail(exc) from None

        generator.starts_work = True
        return generator

    @functools.wraps(fn)
    def plain(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:
            raise fail(exc) from None

    plain.starts_work = True
    return plain


def needs_ffmpeg(fn: Callable) -> Callable:
    """For the events that stream a `gr.Audio` (the Gradio API and MCP stream endpoints): Gradio encodes
    each piece with ffmpeg, so without it the event is refused at once, before any work. The page's own
    player (`ui.player`) takes raw PCM and needs no ffmpeg."""

    @functools.wraps(fn)  # keeps `starts_work`
    def generator(*args, **kwargs):
        if shutil.which("ffmpeg") is None:
            log.error("ffmpeg is not installed: streamed gr.Audio answers cannot be encoded")
            raise gr.Error(NO_FFMPEG)
        yield from fn(*args, **kwargs)

    return generator


WAIT_UPDATE_S = 1.0  # how often a waiting visitor's place in line is refreshed
STARTING = "Starting: the first audio is being made…"


def wait_for_turn(
    engine_id: str, request: SynthesisRequest, show: Callable[[str], tuple]
) -> Generator[tuple, None, Ticket]:
    """Join the engine's line (refused in one sentence when it is full); while waiting, yield
    `show(line)` about once a second with the place in line and the estimated wait. Returns the
    ticket whose turn has come, for `timed_stream(..., ticket=...)`; a visitor who leaves (the
    generator is closed) gives up the place."""
    ticket = speech.enter(caller(), engine_id, request)  # the event's caller: its share of the line, admitted
    try:
        timeout = 0.0
        while not ticket.wait(timeout):
            yield show(speech.wait_line(ticket))
            timeout = WAIT_UPDATE_S
        yield show(STARTING)  # the turn has come: said at once, before the first audio is made
    except BaseException:
        ticket.leave()
        raise
    return ticket


def speed_words(rtf: float | None) -> str:
    """A real-time factor (seconds of compute per second of audio) as a person reads it."""
    if rtf is None or rtf <= 0:
        return "speed **–**"
    if rtf <= 1:
        return f"**{1 / rtf:.1f}×** faster than real time"
    return f"**{rtf:.1f}×** slower than real time"


def status_line(engine_id: str, stats: RunStats, done: bool = False) -> str:
    info = registry.info(engine_id)
    state = "Finished" if done else "Streaming"
    ttfa = f"{stats.ttfa_s:.2f} s" if stats.ttfa_s is not None else "–"
    # waiting in line and synthesis apart, so that a first-audio figure under load can be explained
    waited = f"waited **{stats.queue_wait_s:.1f} s** in line · " if stats.queue_wait_s is not None else ""
    served = f" · served by **{info.replicas}** {_replicas(info.replicas)}" if info.replicas else ""  # ENGINE_SERVER
    return (
        f"{state} · {waited}on **{info.device or '–'}**{served} · "
        f"time to first audio **{ttfa}** on the server · {speed_words(stats.rtf)} · "
        f"{stats.audio_s:.1f} s of audio in {stats.total_s:.1f} s, {_count(stats.chunks, 'piece')}"
        + "".join(f" · {note}" for note in stats.notes)  # e.g. the Qwen3-TTS runaway guard's stops
    )


def _replicas(count: int) -> str:
    return "replica" if count == 1 else "replicas"


def banner(engine_id: str) -> str:
    info = registry.info(engine_id)
    if not info.available:
        return f"**{info.name} is unavailable:** {info.reason}"
    state = f"on {info.device}" if info.loaded else "loads on first use"
    if info.replicas:
        state += f", served by {info.replicas} {_replicas(info.replicas)}"
    count = sum(v.available for v in info.voices)
    voices = f" · {count} of {len(info.voices)} voices available now" if info.voices else ""
    return f"**{info.name}** · {info.backend} back-end · {state} · weights: {info.weights_source}{voices}"


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def can_do(engine_id: str) -> str:
    """What an engine can do on this server, in a visitor's words (no variables, paths or back-ends)."""
    info = registry.info(engine_id)
    caps = info.capabilities or registry.capabilities(engine_id)
    if not info.available:
        return f"**{info.name}**: not available on this server (its model is not installed here)."
    deeds = []
    if info.voices:
        ready = sum(v.available for v in info.voices)
        if ready == len(info.voices):
            deeds.append(f"speaks with {_count(ready, 'voice')}")
        else:
            deeds.append(f"speaks with {ready} of its {len(info.voices)} voices (the others need the model hub)")
    if caps.clones:
        deeds.append("speaks in the voice of a short clip you give it")
    if caps.streams:
        deeds.append("starts playing before the whole text is done")
    if info.follows_instructions:
        deeds.append("follows a style instruction")
    return f"**{info.name}**: " + ", ".join(deeds or ["ready"]) + "."


def unavailable_sentence(engine_id: str) -> str | None:
    """One visitor sentence for an engine that cannot speak here (None when it can): why Generate is off."""
    info = registry.info(engine_id)
    if info.available:
        return None
    return f"{info.name} is not available on this server (its model is not installed here), so Generate is off."


def off_notice(engine_id: str, elem_id: str) -> gr.Markdown:
    """Next to an engine's Generate (which the caller builds with `interactive=info.available`): the one
    sentence why it is off, shown at once on the page; nothing when the engine can speak."""
    sentence = unavailable_sentence(engine_id)
    return gr.Markdown(sentence or "", visible=sentence is not None, elem_id=elem_id, elem_classes=["tts-off"])


def found_voice_choices(owner: str | None) -> list[tuple[str, str]]:
    """(label, name) of `owner`'s found Kokoro voices ("Find a Kokoro voice"), for a voice list."""
    return [(f"Found: {name}", name) for name in list_found_voices(owner)]


def blend_hint() -> str | None:
    """How to type a blend, with two voices that speak here, for the first engine that blends (None
    when no engine has two voices to blend here)."""
    for engine_id in registry.engines_that("blends"):
        ready = [v.id for v in registry.info(engine_id).voices if v.available]
        if len(ready) >= 2:
            return f"A blend of two voices can be typed, e.g. {ready[0]}:0.7,{ready[1]}:0.3"
    return None


def header() -> str:
    """The page's header: one line per engine, what it can do here."""
    return "\n".join(f"- {can_do(engine_id)}" for engine_id in registry.ENGINES)


def owner_details() -> str:
    """For the Space's owner (a collapsed box): each engine's back-end, device, weights, and why one is off
    (these name variables and paths, which a visitor needs not read)."""
    lines = []
    for engine_id in registry.ENGINES:
        info = registry.info(engine_id)
        if info.available:
            lines.append(f"- {banner(engine_id)}")
        else:
            lines.append(f"- **{info.name}** (`{engine_id}`) is off: {info.reason}")
    return "\n".join(lines)


def clip_path(audio: np.ndarray, prefix: str, fmt: str = "wav") -> str:
    """Write a clip for download into `output_dir()` (kept for `OUTPUT_TTL_S`); a failed write leaves nothing."""
    output_dir().mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f"{prefix}-", suffix=f".{fmt}", dir=output_dir())
    os.close(handle)
    try:
        path = str(write(Path(name), audio, fmt))
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    janitor.written()
    return path
