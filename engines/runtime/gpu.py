"""Model work on a ZeroGPU Space goes through `spaces.GPU`; everywhere else it is a direct call.

ZeroGPU attaches a GPU only while a function decorated with `spaces.GPU` runs, in a forked worker
process, for a duration asked for up front. So an engine's whole stream (`stream`) and its other
GPU work (`call`: batch rendering, clone prompts) run inside module-level GPU functions that receive
the engine id and the request (both pickle) and look the engine up in the worker. The duration asked
for (`duration_s`) follows the request: its characters times the engine's measured seconds per
character (its work queue's figure), with a margin, within `MIN_S`..`MAX_S`.

When ZeroGPU refuses the GPU (the visitor's quota is used up, or no GPU is free) `spaces` raises a
gradio Error before any audio: an engine that runs well on the CPU (`cpu_fallback`, e.g. Kokoro,
which keeps a CPU copy of its model on ZeroGPU) then runs there with a notice, as the upstream
Kokoro Space does; any other engine says in one sentence when to come back (the time is taken from
the quota message). Off ZeroGPU, or for an engine that did not load on CUDA (ONNX), nothing here
changes anything: `stream` returns `engine.stream(request)` itself. gradio and `spaces` are imported
only on ZeroGPU.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import sys
from collections.abc import Iterator
from contextlib import closing

from engines import base
from engines.base import AudioChunk, Engine, EngineError, SynthesisRequest, UnavailableError
from engines.runtime import device, registry, work_queue

log = logging.getLogger(__name__)

MIN_S = 10  # the shortest GPU call asked for: the worker's start and the first chunk fit in it
MAX_S = 120  # the longest: ZeroGPU refuses longer calls for visitors without a PRO account
DEFAULT_S = 60  # until the engine's speed is measured (the `spaces` package's own default)
MARGIN = 2.0  # asked for = twice the measured compute, plus the worker's start
STARTUP_S = 5.0  # a fresh worker forks and moves the weights to the GPU before the first step
_TRY_AGAIN = re.compile(r"Try again in (?:(\d+) days?, )?(\d+):(\d{2}):(\d{2})")


def duration_s(engine_id: str, chars: int) -> int:
    """Seconds of GPU to ask for `chars` characters of text on the engine (see the module's note)."""
    s_per_char = work_queue.line(engine_id).s_per_char
    if not s_per_char:
        return DEFAULT_S
    return int(min(MAX_S, max(MIN_S, math.ceil(STARTUP_S + MARGIN * s_per_char * chars))))


def on_gpu(engine: Engine) -> bool:
    """Whether `engine`'s work goes through `spaces.GPU`: on ZeroGPU, for an engine loaded on CUDA."""
    return device.zero_gpu() and engine.info().device.startswith("cuda")


def cpu_fallback(engine: Engine) -> bool:
    """Whether the engine runs on the CPU when ZeroGPU refuses it the GPU (its capabilities say)."""
    capabilities = getattr(engine, "CAPABILITIES", None)
    return bool(capabilities and capabilities.cpu_fallback)


# ----- what runs in ZeroGPU's worker process --------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Failure:
    """An exception raised in the worker, carried back as a value: `spaces` would keep only its class
    name, and an engine's message is the one sentence the visitor must see."""

    name: str
    message: str
    engine_error: bool

    @classmethod
    def of(cls, exc: Exception) -> _Failure:
        if not isinstance(exc, EngineError):
            log.exception("GPU call failed")
        return cls(type(exc).__name__, str(exc), isinstance(exc, EngineError))

    def reraise(self):
        if not self.engine_error:
            raise RuntimeError(f"{self.name} in the GPU worker: {self.message}")
        kind = getattr(base, self.name, EngineError)
        try:
            error = kind(self.message) if isinstance(kind, type) and issubclass(kind, EngineError) else None
        except TypeError:  # an error type that takes more than its message
            error = None
        raise error or EngineError(self.message)


def _stream_in_worker(engine_id: str, request: SynthesisRequest) -> Iterator[AudioChunk | _Failure]:
    """The GPU function for streams: the engine's whole stream, in one GPU call."""
    try:
        yield from registry.get(engine_id).stream(request)
    except Exception as exc:
        yield _Failure.of(exc)


def _call_in_worker(engine_id: str, method: str, args: tuple):
    """The GPU function for single calls: `engine.<method>(*args)`, its tensors moved to the CPU."""
    try:
        return _to_cpu(getattr(registry.get(engine_id), method)(*args))
    except Exception as exc:
        return _Failure.of(exc)


def _stream_duration(engine_id: str, request: SynthesisRequest) -> int:
    return duration_s(engine_id, len(request.text))


def _call_duration(engine_id: str, method: str, args: tuple) -> int:
    return duration_s(engine_id, sum(len(r.text) for r in _requests(args)))


def _requests(value) -> Iterator[SynthesisRequest]:
    if isinstance(value, SynthesisRequest):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _requests(item)


def _to_cpu(value):
    """`value` with every torch tensor in it (lists, tuples, dicts, dataclasses) moved to the CPU,
    so that it crosses back to the main process, which has no GPU on ZeroGPU."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(
            value, **{f.name: _to_cpu(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        )
    return value


_gpu_stream = _stream_in_worker
_gpu_call = _call_in_worker


def decorate() -> None:
    """On ZeroGPU, wrap the GPU functions with `spaces.GPU` (at import: ZeroGPU looks for them when the
    app launches); elsewhere they stay plain functions."""
    global _gpu_stream, _gpu_call
    if device.zero_gpu():
        import spaces

        _gpu_stream = spaces.GPU(duration=_stream_duration)(_stream_in_worker)
        _gpu_call = spaces.GPU(duration=_call_duration)(_call_in_worker)
    else:
        _gpu_stream, _gpu_call = _stream_in_worker, _call_in_worker


decorate()


# ----- what the main process calls -----------------------------------------------------------
def stream(engine: Engine, request: SynthesisRequest) -> Iterator[AudioChunk]:
    """The engine's chunks for `request`: on ZeroGPU in one GPU call, elsewhere `engine.stream` itself."""
    if not on_gpu(engine):
        return engine.stream(request)
    return _zero_stream(engine, request)


def call(engine: Engine, method: str, *args):
    """`engine.<method>(*args)`, on ZeroGPU in one GPU call (tensors in the result come back on the CPU)."""
    if not on_gpu(engine):
        return getattr(engine, method)(*args)
    info = engine.info()
    try:
        result = _gpu_call(info.id, method, args)
    except Exception as exc:
        refusal = _refusal(exc)
        if refusal is None:
            raise
        if not cpu_fallback(engine):
            raise UnavailableError(come_back(info.name, refusal)) from None
        _notify(info.name, refusal)
        return getattr(engine, method)(*args)
    if isinstance(result, _Failure):
        result.reraise()
    return result


def _zero_stream(engine: Engine, request: SynthesisRequest) -> Iterator[AudioChunk]:
    info = engine.info()
    started = False
    with closing(_gpu_stream(info.id, request)) as chunks:
        while True:
            try:
                item = next(chunks)
            except StopIteration:
                return
            except Exception as exc:
                refusal = _refusal(exc)
                if refusal is None:
                    raise
                if started:  # the GPU call was cut off part way (it ran past the time asked for)
                    raise EngineError(
                        f"{info.name} ran out of GPU time part way through; please send a shorter text."
                    ) from None
                if not cpu_fallback(engine):
                    raise UnavailableError(come_back(info.name, refusal)) from None
                break
            if isinstance(item, _Failure):
                item.reraise()
            started = True
            yield item
    _notify(info.name, refusal)
    yield from engine.stream(request)  # outside a GPU call: on the CPU copy of the model


def _refusal(exc: Exception) -> str | None:
    """The message of the gradio Error that `spaces` raises when it gives no GPU (quota used up, no GPU
    free, call too long, worker aborted); None for any other exception."""
    if not device.zero_gpu():
        return None
    try:
        import gradio as gr
    except ImportError:
        return None
    return str(exc.message) if isinstance(exc, gr.Error) else None


def come_back(name: str, refusal: str) -> str:
    """One sentence for a visitor whom ZeroGPU refused the GPU, with when to come back if it said so."""
    if "larger than the maximum" in refusal:
        return f"{name} would need more GPU time for this text than this Space may ask for; please shorten it."
    found = _TRY_AGAIN.search(refusal)
    if found:
        days, hours, minutes, seconds = (int(g or 0) for g in found.groups())
        wait = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
        return f"{_upper(_reason(refusal))}; {name} needs the GPU, so please come back in {_spoken(wait)}."
    return f"{_upper(_reason(refusal))}; {name} needs the GPU, so please try again later."


def _reason(refusal: str) -> str:
    lowered = refusal.lower()
    if "quota" in lowered or "limit" in lowered or "credits" in lowered:
        return "your GPU quota on this Space is used up for now"
    return "no GPU was free on this Space just now"


def _upper(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


def _spoken(seconds: int) -> str:
    if seconds < 90:
        return f"about {max(1, seconds)} seconds"
    if seconds < 90 * 60:
        return f"about {math.ceil(seconds / 60)} minutes"
    return f"about {round(seconds / 3600)} hours"


def _notify(name: str, refusal: str) -> None:
    """Tell the visitor (a toast on the page; a warning in the log elsewhere) that this runs on the CPU."""
    sentence = f"{_upper(_reason(refusal))}: {name} runs on the CPU instead, more slowly."
    log.warning("%s", sentence)
    try:
        import gradio as gr

        gr.Warning(sentence)
    except Exception:  # outside a Gradio event: the log line above is the notice
        pass
