"""Stable engine ids mapped to engines: lazy loading under a lock, device choice, status, unload,
and what each engine can do (`capabilities`).

`ENGINES` is the one place engine ids are listed. Engines are imported only when first asked for, so
the page starts fast and a missing optional dependency disables only its own engine (with the reason
in `status()`). An engine class declares its `CAPABILITIES` (`engines.base.Capabilities`: display
name, default voices, languages, blends, clones, saved voices, batches, OpenAI names ...): every tab,
`/v1`, the CLI, batch files and compare list the engines of `ENGINES` and ask these, never an id, so
a new engine is one module with its class and one line in `ENGINES`. Only these are engines (what
`/v1/models` lists): a name outside `ENGINES`, such as a slot the browser renders itself, is no
engine (`info` says it is unavailable, `name` is the name itself). Each engine loads on the device
`engines.runtime.device` resolves (`TTS_DEVICE`, CUDA when present, ZeroGPU). `ENGINE_SERVER` (the engine
tier's HTTP address) makes every engine a `RemoteEngine` served by Ray Serve replicas.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Iterator, Mapping

from engines.base import Capabilities, Engine, EngineError, EngineInfo, SynthesisRequest, UnavailableError, shown
from engines.runtime import device
from engines.settings import settings

log = logging.getLogger(__name__)

# id -> "module:Class". Adding an engine means one folder under engines/ and one line here. The first is the
# default engine (for a CLI call or a batch file that names none).
ENGINES: dict[str, str] = {
    "kokoro": "engines.kokoro.engine:KokoroEngine",
    "qwen-custom": "engines.qwen.engine:QwenCustomEngine",
    "qwen-clone": "engines.qwen.engine:QwenCloneEngine",
    "qwen-design": "engines.qwen.design:QwenDesignEngine",
}

_lock = threading.Lock()
_instances: dict[str, Engine] = {}
_loaded: set[str] = set()
_load_locks: dict[str, threading.Lock] = {}
# One engine loads at a time: two loading at once import transformers (Kokoro's and Qwen3-TTS's
# packages both do) from two threads, and one of them can see the package half-initialised ("cannot
# import name 'AutoConfig' from 'transformers'"; seen when the arena loaded Qwen3-TTS during Kokoro's load).
_one_load_at_a_time = threading.Lock()


def default_engine() -> str:
    """The engine a request that names none gets: the first of `ENGINES`."""
    return next(iter(ENGINES))


def _engine_class(engine_id: str) -> type:
    if engine_id not in ENGINES:
        known = ", ".join(ENGINES)
        raise EngineError(f"Unknown engine {shown(engine_id)}; choose one of: {known}.")
    module_name, class_name = ENGINES[engine_id].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def capabilities(engine_id: str) -> Capabilities:
    """What the engine can do and its defaults, from its class (the model is not loaded). An engine
    whose module cannot be imported here (a missing package) still has a name: its id."""
    try:
        return _engine_class(engine_id).CAPABILITIES
    except ImportError:
        return Capabilities(name=engine_id)


def spoken_language(engine_id: str, request: SynthesisRequest) -> str | None:
    """The ISO 639-1 code of the language the engine speaks `request` in (its G2P's or its model's),
    decided without synthesis and without loading the model; None where the engine leaves it to the
    model (detect it then) or cannot say. The one home of "which language was spoken": the
    chunks carry the same code (`AudioChunk.language`)."""
    try:
        decide = getattr(_engine_class(engine_id), "spoken_language", None)
        return decide(request) if decide is not None else None
    except (ImportError, EngineError):
        return None


def check(engine_id: str, request: SynthesisRequest) -> None:
    """Refuse `request` with the engine's own sentence where the engine can tell without its model
    (e.g. an unknown voice), so nobody waits for a model to load to hear it; a no-op for an engine
    that cannot tell before it loads."""
    check_request = getattr(_instance(engine_id), "check", None)
    if check_request is not None:
        check_request(request)


def name(engine_id: str) -> str:
    """The engine's display name (its id for an unknown engine)."""
    return capabilities(engine_id).name if engine_id in ENGINES else engine_id


def browser_engine() -> str | None:
    """The engine a visitor's browser can render (`Capabilities.renders_in_browser`), if any."""
    return next(iter(engines_that("renders_in_browser")), None)


def engines_that(capability: str) -> list[str]:
    """The engine ids whose capability `capability` (a `Capabilities` field, e.g. "clones") is true,
    in `ENGINES` order."""
    return [engine_id for engine_id in ENGINES if getattr(capabilities(engine_id), capability)]


class _Names(Mapping):
    """engine id -> display name, read from the capabilities (kept for callers of `ENGINE_NAMES`)."""

    def __getitem__(self, engine_id: str) -> str:
        if engine_id not in ENGINES:
            raise KeyError(engine_id)
        return name(engine_id)

    def __iter__(self) -> Iterator[str]:
        return iter(list(ENGINES))

    def __len__(self) -> int:
        return len(ENGINES)


ENGINE_NAMES: Mapping[str, str] = _Names()


def _instance(engine_id: str) -> Engine:
    if engine_id not in ENGINES:
        known = ", ".join(ENGINES)
        raise EngineError(f"Unknown engine {shown(engine_id)}; choose one of: {known}.")
    with _lock:
        server = settings().engine_server
        if engine_id not in _instances and server:
            from engines.runtime.remote import (
                RemoteEngine,  # the engine tier (`serve/`) runs the model; see engines/runtime/remote.py
            )

            _instances[engine_id] = RemoteEngine(engine_id, server, capabilities(engine_id))
        if engine_id not in _instances:
            try:
                cls = _engine_class(engine_id)
            except ImportError as exc:
                raise UnavailableError(
                    f"The {name(engine_id)} engine needs a package that is not installed ({exc.name})."
                ) from exc
            _instances[engine_id] = cls()
        return _instances[engine_id]


def _load_lock(engine_id: str) -> threading.Lock:
    with _lock:
        return _load_locks.setdefault(engine_id, threading.Lock())


def get(engine_id: str) -> Engine:
    """The engine, loaded on first use (one engine loads at a time)."""
    engine = _instance(engine_id)
    if engine_id in _loaded:
        return engine
    with _load_lock(engine_id):
        if engine_id not in _loaded:
            log.info("Loading engine %s", engine_id)
            try:
                with _one_load_at_a_time:
                    engine.load(device.resolve())
            except EngineError:
                raise
            except Exception as exc:  # a damaged or unreadable model file: one sentence, the details in the log
                log.exception("Loading %s failed", engine_id)
                raise UnavailableError(
                    f"{name(engine_id)} could not be loaded: its model files are missing, damaged or "
                    "unreadable (the server log says which)."
                ) from exc
            _loaded.add(engine_id)
    return engine


def info(engine_id: str) -> EngineInfo:
    """What the engine reports about itself without loading it (with its capabilities), or why it
    cannot be used."""
    try:
        found = _instance(engine_id).info()
    except EngineError as exc:
        found = EngineInfo(id=engine_id, name=name(engine_id), available=False, reason=str(exc))
    if engine_id in ENGINES:
        found.capabilities = capabilities(engine_id)
    return found


def status() -> list[EngineInfo]:
    return [info(engine_id) for engine_id in ENGINES]


def unload(engine_id: str) -> None:
    """Free an engine's model; the next `get` loads it again."""
    with _load_lock(engine_id):
        if engine_id in _loaded:
            _instances[engine_id].unload()
            _loaded.discard(engine_id)
