"""An engine served by the engine tier (`serve/`, Ray Serve) over HTTP: the `Engine` protocol, remotely.

`registry` builds a `RemoteEngine` for each engine id when `ENGINE_SERVER` names the tier's HTTP address
(e.g. `http://head:8000`). `info()` comes from the server's `GET /info` (cached for a moment: voices,
backend, device, live replicas and the requests it takes at once); `stream()` posts the request and reads
the framed chunks back (`engines/runtime/wire.py`, which documents the format). A saved clone voice is loaded here,
from this app's own voice library after its owner check, and sent with the request (a found Kokoro voice's
style table likewise): replicas keep no visitor state. Errors arrive as the engines' own error types with
their one sentence; a lost replica or an unreachable server is one sentence too. With `ENGINE_SERVER_TOKEN`
set, every request carries it as `Authorization: Bearer <token>` (the tier refuses requests without it).
Depends on nothing above `engines/`.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import numpy as np

from engines.audio import join
from engines.base import (
    AudioChunk,
    Capabilities,
    EngineError,
    EngineInfo,
    InputError,
    SynthesisRequest,
    UnavailableError,
    VoiceInfo,
)
from engines.runtime.wire import REPLICA_FAILED, SERVER_UNREACHABLE, read_frames, request_to_json
from engines.settings import settings

log = logging.getLogger(__name__)

INFO_TTL_S = 2.0
TIMEOUT = httpx.Timeout(connect=5.0, read=600.0, write=60.0, pool=60.0)


class RemoteEngine:
    """Engine `engine_id` as served at `base_url`; the tabs cannot tell it from a local one."""

    def __init__(self, engine_id: str, base_url: str, capabilities: Capabilities | None = None) -> None:
        self.engine_id = engine_id
        self.base_url = base_url.rstrip("/")
        self.CAPABILITIES = capabilities or Capabilities(name=engine_id)  # the local class's (`registry`)
        self.name = self.CAPABILITIES.name
        token = settings().engine_server_token  # the tier's own token (serve/app.py), when it has one
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
        self._client = httpx.Client(base_url=self.base_url, timeout=TIMEOUT, headers=headers)
        self._info: tuple[float, EngineInfo] | None = None
        self._info_lock = threading.Lock()

    # ----- registry protocol -------------------------------------------------------------
    def info(self) -> EngineInfo:
        with self._info_lock:
            if self._info is not None and time.monotonic() - self._info[0] < INFO_TTL_S:
                return self._info[1]
            info = self._fetch_info()
            self._info = (time.monotonic(), info)
            return info

    def load(self, device: str) -> None:  # the replicas load; here only check that they can serve
        with self._info_lock:
            self._info = None
        info = self.info()
        if not info.available:
            raise UnavailableError(info.reason or SERVER_UNREACHABLE)

    def unload(self) -> None:
        with self._info_lock:
            self._info = None

    def synthesize_batch(self, requests: list[SynthesisRequest]) -> list[np.ndarray]:
        """Whole clips for a batch file's group: each request streamed from the tier in turn (a Qwen
        replica's batcher shares its sentence steps with whatever else it serves)."""
        return [join(self.stream(request)) for request in requests]

    def stream(self, request: SynthesisRequest) -> Iterator[AudioChunk]:
        saved = None
        if (
            self.CAPABILITIES.saved_voices
            and request.reference is None
            and request.clone_prompt is None
            and request.voice
        ):
            from engines.voice_library import stored_voice  # the owner check stays in this app

            saved = stored_voice(request.voice, request.owner)
        if self.CAPABILITIES.found_voices and request.style_table is None and request.voice and request.owner:
            from engines.kokoro.voices import load_found_voice  # the owner check stays in this app

            table = load_found_voice(request.voice, request.owner)
            if table is not None:
                request = replace(request, style_table=table)
        body = request_to_json(request, saved)
        try:
            with self._client.stream("POST", f"/synthesize/{self.engine_id}", json=body) as response:
                if response.status_code != 200:
                    log.warning("Engine server answered HTTP %s for %s", response.status_code, self.engine_id)
                    raise UnavailableError(SERVER_UNREACHABLE)
                yield from read_frames(response.iter_bytes())
        except httpx.TransportError as exc:
            log.warning("Engine server failed mid-request for %s: %r", self.engine_id, exc)
            unreachable = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
            raise EngineError(SERVER_UNREACHABLE if unreachable else REPLICA_FAILED) from None

    # ----- cloning (saving a voice) ------------------------------------------------------
    def clone_prompt(self, reference, reference_text: str | None, x_vector_only: bool) -> list:
        """The clone prompt for a reference clip, made by a replica (the app then saves it)."""
        from engines.voice_library import prompt_from_stored

        request = SynthesisRequest(
            text="-", voice="", reference=reference, reference_text=reference_text, x_vector_only=x_vector_only
        )
        try:
            response = self._client.post(f"/clone_prompt/{self.engine_id}", json=request_to_json(request))
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("Clone prompt from the engine server failed: %r", exc)
            raise UnavailableError(SERVER_UNREACHABLE) from None
        error = answer.get("error") if isinstance(answer, dict) else {"kind": "failed"}
        if error:
            kind = {"input": InputError, "unavailable": UnavailableError}.get(error.get("kind"), EngineError)
            raise kind(str(error.get("message") or REPLICA_FAILED))
        return prompt_from_stored(answer["meta"], base64.b64decode(answer["tensors"]))

    # ----- the server's /info ------------------------------------------------------------
    def _fetch_info(self) -> EngineInfo:
        try:
            response = self._client.get("/info", timeout=10.0)
            response.raise_for_status()
            served = response.json()["engines"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning("Engine server info for %s unavailable: %r", self.engine_id, exc)
            return EngineInfo(id=self.engine_id, name=self.name, available=False, reason=SERVER_UNREACHABLE)
        data = served.get(self.engine_id) if isinstance(served, dict) else None
        if not isinstance(data, dict):
            reason = f"The engine server does not run {self.name}."
            return EngineInfo(id=self.engine_id, name=self.name, available=False, reason=reason)
        voices = [VoiceInfo(**v) for v in data.pop("voices", []) or []]
        known = set(EngineInfo.__dataclass_fields__)
        return EngineInfo(**{k: v for k, v in data.items() if k in known}, voices=voices)
