"""The Ray Serve application: one deployment per engine of the registry, and the HTTP ingress.

`EngineReplica` wraps one registry engine (the same `Engine` classes the app runs in-process: no second
copy of model code) and streams its chunks as frames of the wire format in `engines/runtime/wire.py`; it keeps
no visitor state (a saved voice comes with the request). `Ingress` answers HTTP:

- `POST /synthesize/<engine id>`: a JSON request in, framed chunks out (see `engines/runtime/wire.py`); every
  error, a replica lost mid-request included, arrives as one error frame with one sentence;
- `POST /clone_prompt/<engine id>`: a reference clip in, the clone prompt out as JSON
  `{"meta": {...}, "tensors": base64 safetensors}` (or `{"error": {"kind", "message"}}`), for saving a voice;
- `GET /info`: `{"engines": {id: EngineInfo as JSON + "replicas" (running) + "concurrent_requests" (of all replicas)}}`,
  answered within seconds whatever is still starting: an engine with no running replica is reported as
  not available (its reason says so), and the replicas are asked at once, each for a few seconds at most.

With `ENGINE_SERVER_TOKEN` set where the ingress runs, every request needs `Authorization: Bearer <token>`
(the app's `engines.runtime.remote` sends it; 401 and one sentence without it). A request body over
`ENGINE_SERVER_MAX_BODY_MB` (default 32: a minute of reference clip and a saved voice are under 16) is
refused with 413 before it is read whole.

Deployment options (replicas, CPUs/GPUs per replica, autoscaling, health checks, `max_ongoing_requests`)
come from `serve/config.yaml`, read by `application`, so `serve run serve/config.yaml`, `python -m engines
serve` and the KubeRay manifest run the same thing.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hmac
import json
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import yaml
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from engines.base import EngineError, InputError
from engines.runtime import registry, wire
from engines.settings import settings

log = logging.getLogger("serve.app")

CONFIG = Path(__file__).resolve().parent / "config.yaml"
APP_NAME = "tts"
INGRESS = "ingress"
FRAMES_TYPE = "application/x-tts-frames"
DETAILS_TTL_S = 2.0
INFO_TTL_S = 10.0  # how long a replica's info (voices, backend, device, speed) is reused
INFO_WAIT_S, FIRST_INFO_WAIT_S = 0.5, 4.0  # how long /info waits for a replica busy with a request
DETAILS_WAIT_S = 3.0  # how long /info waits for Serve's replica states


def load_config(path: Path = CONFIG) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def deployment_options(config: dict) -> dict[str, dict]:
    """Per deployment name: its options from the config's first application (name dropped)."""
    application = config["applications"][0]
    return {d["name"]: {k: v for k, v in d.items() if k != "name"} for d in application.get("deployments", [])}


class EngineReplica:
    """One replica of one engine: loads it at start, streams frames, reports its info and health."""

    def __init__(self, engine_id: str) -> None:
        # a replica runs the engine itself, never another server: the variable goes from this replica's
        # environment, so that `settings()` (which `engines.runtime.registry` asks) sees it unset
        os.environ.pop("ENGINE_SERVER", None)
        self.engine_id = engine_id
        self.reason = ""
        self.replica = serve.get_replica_context().replica_id.unique_id  # named in each chunk frame
        try:
            registry.get(engine_id)
        except EngineError as exc:  # the replica stays up and says why in /info and in each answer
            self.reason = str(exc)
            log.warning("Engine %s is unavailable in this replica: %s", engine_id, exc)

    def check_health(self) -> None:
        """Serve restarts a replica whose loaded engine has lost its model."""
        if not self.reason and not registry.info(self.engine_id).loaded:
            raise RuntimeError(f"engine {self.engine_id} is no longer loaded")

    def info(self) -> dict:
        info = registry.info(self.engine_id)
        if self.reason:
            info.available, info.reason = False, self.reason
        return asdict(info)

    def stream(self, body: dict) -> Iterator[bytes]:
        try:
            request = wire.request_from_json(body)
            for chunk in registry.get(self.engine_id).stream(request):
                yield wire.chunk_frame(chunk, self.replica)
        except EngineError as exc:
            yield wire.error_frame(exc)
            return
        except Exception as exc:  # an engine bug: one sentence out, the details in this replica's log
            log.exception("Synthesis failed in %s", self.engine_id)
            yield wire.error_frame(exc)
            return
        yield wire.END_FRAME

    def clone_prompt(self, body: dict) -> dict:
        from engines.voice_library import prompt_to_stored

        try:
            request = wire.request_from_json({**body, "text": body.get("text") or "-"})
            engine = registry.get(self.engine_id)
            make = getattr(engine, "clone_prompt", None)
            if make is None or request.reference is None:
                raise InputError("This engine does not clone voices from a reference clip.")
            meta, data = prompt_to_stored(make(request.reference, request.reference_text, request.x_vector_only))
            return {"meta": meta, "tensors": base64.b64encode(data).decode("ascii")}
        except EngineError as exc:
            return {"error": _error_json(exc)}
        except Exception as exc:
            log.exception("Clone prompt failed in %s", self.engine_id)
            return {"error": _error_json(exc)}


def _error_json(exc: BaseException) -> dict:
    header = json.loads(wire.error_frame(exc)[8:].decode("utf-8"))
    return {"kind": header["kind"], "message": header["message"]}


class Ingress:
    """HTTP in front of the engine deployments (one handle per engine id)."""

    def __init__(self, engines: dict) -> None:
        self.handles = engines
        self._details: tuple[float, dict] = (0.0, {})
        self._infos: dict[str, tuple[float, dict]] = {}  # engine id -> (when, a replica's last info)
        token = settings().engine_server_token
        self._authorization = f"Bearer {token.get_secret_value()}".encode() if token else None
        self._max_body = int(settings().engine_server_max_body_mb * 2**20)
        if not token:
            log.warning("ENGINE_SERVER_TOKEN is not set: anyone who can reach this engine tier may use it.")

    async def __call__(self, request: Request) -> Response:
        if not self._authorized(request):
            message = "This engine server needs its token: send Authorization: Bearer <ENGINE_SERVER_TOKEN>."
            return JSONResponse({"error": {"kind": "input", "message": message}}, 401)
        parts = [p for p in request.url.path.split("/") if p]
        if request.method == "GET" and parts == ["info"]:
            return JSONResponse({"engines": await self._info()})
        if request.method == "POST" and len(parts) == 2 and parts[0] in ("synthesize", "clone_prompt"):
            engine_id = parts[1]
            if engine_id not in self.handles:
                return JSONResponse({"error": {"kind": "input", "message": f"Unknown engine {engine_id!r}."}}, 404)
            raw = await self._body(request)
            if raw is None:
                message = f"The request body is over {self._max_body / 2**20:.3g} MB."
                return JSONResponse({"error": {"kind": "input", "message": message}}, 413)
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                body = None
            if parts[0] == "clone_prompt":
                try:
                    answer = await self.handles[engine_id].clone_prompt.remote(body if isinstance(body, dict) else {})
                except Exception as exc:  # the replica died
                    log.warning("Clone prompt on %s failed: %r", engine_id, exc)
                    answer = {"error": _error_json(exc)}
                return JSONResponse(answer)
            return StreamingResponse(self._frames(engine_id, body), media_type=FRAMES_TYPE)
        return JSONResponse({"error": {"kind": "input", "message": "Not found."}}, 404)

    def _authorized(self, request: Request) -> bool:
        if self._authorization is None:
            return True
        sent = request.headers.get("authorization", "").encode("latin-1", "replace")
        return hmac.compare_digest(sent, self._authorization)

    async def _body(self, request: Request) -> bytes | None:
        """The body, or None when it is (or says it is) over the cap; never more than the cap is held."""
        try:
            if int(request.headers.get("content-length") or 0) > self._max_body:
                return None
        except ValueError:
            return None
        body = bytearray()
        async for piece in request.stream():
            body += piece
            if len(body) > self._max_body:
                return None
        return bytes(body)

    async def _frames(self, engine_id: str, body: object):
        if not isinstance(body, dict):
            yield wire.error_frame(InputError("The request must be a JSON object."))
            return
        try:
            async for piece in self.handles[engine_id].options(stream=True).stream.remote(body):
                yield piece
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the replica died or was lost mid-request
            log.warning("Request on %s failed in its replica: %r", engine_id, exc)
            yield wire.error_frame(exc)

    async def _info(self) -> dict:
        try:  # Serve's controller answers in milliseconds when idle; a busy one must not hold /info up
            details = await asyncio.wait_for(asyncio.to_thread(self._serve_details), DETAILS_WAIT_S)
        except TimeoutError:
            details = {}
        deployments = details.get("applications", {}).get(APP_NAME, {}).get("deployments", {})

        async def one(engine_id: str, handle) -> dict:
            deployment = deployments.get(engine_id)
            if deployment is None:  # Serve's details unavailable: the replica count is unknown
                return {**await self._engine_info(engine_id, handle), "replicas": None}
            running = sum(r.get("state") == "RUNNING" for r in deployment.get("replicas", []))
            per_replica = (deployment.get("deployment_config") or {}).get("max_ongoing_requests") or 1
            if running:
                info = await self._engine_info(engine_id, handle)
            else:  # starting, waiting for resources, or every replica lost: asking would wait for one
                info = {"id": engine_id, "name": registry.ENGINE_NAMES.get(engine_id, engine_id)}
                info.update(available=False, reason=wire.NO_REPLICA)
            return {**info, "replicas": running, "concurrent_requests": max(1, running) * per_replica}

        # every engine at once: one busy or starting engine never holds up the others' answers
        answers = await asyncio.gather(*(one(engine_id, handle) for engine_id, handle in self.handles.items()))
        return dict(zip(self.handles, answers, strict=True))

    async def _engine_info(self, engine_id: str, handle) -> dict:
        """A replica's info, asked at most every `INFO_TTL_S`: a replica busy with a request answers
        only after it (Kokoro takes one at a time), so then the last answer stands."""
        at, cached = self._infos.get(engine_id, (0.0, None))
        if cached is not None and time.monotonic() - at < INFO_TTL_S:
            return cached
        try:
            info = await asyncio.wait_for(handle.info.remote(), INFO_WAIT_S if cached else FIRST_INFO_WAIT_S)
        except Exception as exc:  # busy (the wait ran out) or lost
            log.info("Info from %s not fresh: %r", engine_id, exc)
            if cached is not None:
                return cached
            info = {"id": engine_id, "name": registry.ENGINE_NAMES.get(engine_id, engine_id)}
            info.update(available=False, reason=wire.SERVER_BUSY)
            return info
        self._infos[engine_id] = (time.monotonic(), info)
        return info

    def _serve_details(self) -> dict:
        """Serve's instance details (replica states, deployment configs), cached for a moment."""
        at, details = self._details
        if time.monotonic() - at > DETAILS_TTL_S:
            from ray.serve.context import _get_global_client

            try:
                details = _get_global_client().get_serve_details()
            except Exception as exc:
                log.warning("Serve details unavailable: %r", exc)
                details = {}
            self._details = (time.monotonic(), details)
        return details


def build_app(args: dict | None = None):
    """The application for `serve run`/`serve deploy` (`import_path: serve.app:build_app`; Serve calls
    an application builder with exactly one argument, the config's `args`)."""
    return application(args, load_config())


def application(args: dict | None = None, config: dict | None = None):
    """The application: `args` may name `engines` (ids, default all), `replicas` (a fixed number per
    engine, or per engine id in a dict, instead of autoscaling), `gpus: false` (drop the GPU asks) and
    `env_vars` for the replicas;
    each deployment's options come from `config` (default `serve/config.yaml`)."""
    args = args or {}
    options = deployment_options(config or load_config())
    engine_ids = args.get("engines") or list(registry.ENGINES)
    env_vars = {str(k): str(v) for k, v in (args.get("env_vars") or {}).items()}
    engine_options = {}
    for engine_id in engine_ids:
        if engine_id not in registry.ENGINES:
            raise ValueError(f"unknown engine {engine_id!r}")
        opts = copy.deepcopy(options.get(engine_id, {}))
        replicas = args.get("replicas")
        replicas = replicas.get(engine_id) if isinstance(replicas, dict) else replicas
        if replicas:  # a fixed number of replicas instead of the autoscaling bounds
            opts.pop("autoscaling_config", None)
            opts["num_replicas"] = int(replicas)
        if args.get("gpus") is False:  # a cluster without GPUs: the replicas run on CPU
            opts.setdefault("ray_actor_options", {})["num_gpus"] = 0
        if env_vars:
            actor = opts.setdefault("ray_actor_options", {})
            runtime_env = actor.setdefault("runtime_env", {})
            runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), **env_vars}
        engine_options[engine_id] = opts
    ingress = copy.deepcopy(options.get(INGRESS, {}))
    if args.get("cpus"):  # one machine: every replica asked for must fit its CPUs, or it never starts
        fit_to_cpus(engine_options, float(args["cpus"]))
        ingress.setdefault("ray_actor_options", {})["num_cpus"] = 0  # HTTP routing only: never waits for a CPU
    handles = {
        engine_id: serve.deployment(EngineReplica).options(name=engine_id, **opts).bind(engine_id)
        for engine_id, opts in engine_options.items()
    }
    return serve.deployment(Ingress).options(name=INGRESS, **ingress).bind(handles)


def starting_replicas(opts: dict) -> int:
    """How many replicas a deployment starts with: `num_replicas`, or its autoscaling's initial/minimum."""
    autoscaling = opts.get("autoscaling_config") or {}
    return int(opts.get("num_replicas") or autoscaling.get("initial_replicas") or autoscaling.get("min_replicas") or 1)


def fit_to_cpus(engine_options: dict[str, dict], cpus: float) -> None:
    """Scale the replicas' CPU asks down so that every replica a deployment starts with fits `cpus` (Ray's
    CPU asks are for scheduling only; each replica runs one intra-op thread). `--replicas 2` of three
    engines at the config's 0.5 CPU each ask for 3 CPUs: on a 2-core machine two replicas never started
    and the application was never running. Asks that already fit are kept."""
    asks = {e: float((o.get("ray_actor_options") or {}).get("num_cpus", 1.0)) for e, o in engine_options.items()}
    total = sum(asks[e] * starting_replicas(o) for e, o in engine_options.items())
    room = cpus * 0.95
    if total <= room or total == 0:
        return
    scale = room / total
    for engine_id, opts in engine_options.items():
        opts.setdefault("ray_actor_options", {})["num_cpus"] = math.floor(asks[engine_id] * scale * 1000) / 1000
