"""What every tab shares: user-facing errors, status lines, clip files, engine banners."""

from __future__ import annotations

import functools
import inspect
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import gradio as gr
import numpy as np

from engines import registry
from engines.audio import write
from engines.base import EngineError
from engines.timing import RunStats

log = logging.getLogger(__name__)
OUTPUT_DIR = Path(os.environ.get("TTS_OUTPUT_DIR") or Path(tempfile.gettempdir()) / "tts-compare")


def user_errors(fn: Callable) -> Callable:
    """Turn engine errors into one-sentence gr.Error toasts; never show a traceback, an exception
    class or a path. The handler is marked `starts_work`: `api.guard`'s per-client rate limit counts
    the events whose handler carries the mark (app.py reads it)."""

    def fail(exc: Exception) -> gr.Error:
        if isinstance(exc, EngineError):
            return gr.Error(str(exc))
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


def status_line(engine_id: str, stats: RunStats, done: bool = False) -> str:
    info = registry.info(engine_id)
    state = "Finished" if done else "Streaming"
    ttfa = f"{stats.ttfa_s:.2f} s" if stats.ttfa_s is not None else "–"
    rtf = f"{stats.rtf:.2f}" if stats.rtf is not None else "–"
    return (
        f"{state} · back-end **{info.backend}** on **{info.device}** · weights: {info.weights_source} · "
        f"time to first audio **{ttfa}** · real-time factor **{rtf}** · "
        f"{stats.audio_s:.1f} s of audio in {stats.chunks} chunks"
    )


def banner(engine_id: str) -> str:
    info = registry.info(engine_id)
    if not info.available:
        return f"**{info.name} is unavailable:** {info.reason}"
    state = f"on {info.device}" if info.loaded else "loads on first use"
    count = sum(v.available for v in info.voices)
    voices = f" · {count} of {len(info.voices)} voices available now" if info.voices else ""
    return f"**{info.name}** · {info.backend} back-end · {state} · weights: {info.weights_source}{voices}"


def clip_path(audio: np.ndarray, prefix: str, fmt: str = "wav") -> str:
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f"{prefix}-", suffix=f".{fmt}", dir=OUTPUT_DIR)
    os.close(handle)
    return str(write(Path(name), audio, fmt))
